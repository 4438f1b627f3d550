"""SMAP equals torch's max_pool2d on the plaintexts (2x2 s2, 3x3 s1 pad 1, 3x3 s3), in ceil(log2(k*k)) rounds."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="torch is an optional extra (pip install 'pyimgenc[torch]'), not installed")

from pyimgenc import paillier
from pyimgenc.twinserver.channel import in_process_pair
from pyimgenc.twinserver.literal import smap_literal as smap
from pyimgenc.twinserver.smp import KeyServer


@pytest.fixture(scope="module")
def keys():
    return paillier.keygen(512, insecure=True)


@pytest.mark.parametrize("k, stride, pad", [(2, 2, 0), (3, 1, 1), (3, 3, 0)])
def test_smap_matches_max_pool(keys, k, stride, pad):
    pk, sk = keys
    a, b = in_process_pair(timeout_s=30)
    threading.Thread(target=KeyServer(sk).serve, args=(b,), daemon=True).start()
    rng = np.random.default_rng(k * 10 + pad)
    x = rng.integers(-(2**30), 2**30, (2, 6, 6))
    got = sk.decrypt(smap(a, pk.encrypt(x), k, stride, bound_bits=30, pad=pad))
    ref = torch.nn.functional.max_pool2d(torch.tensor(x, dtype=torch.float64)[None], k, stride, pad)[0]
    assert np.array_equal(got.astype(np.int64), ref.numpy().astype(np.int64))
    assert a.stats.rounds == math.ceil(math.log2(k * k))
