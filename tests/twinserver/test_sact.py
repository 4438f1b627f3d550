"""SACT: one-round secure ReLU equals relu on the plaintexts, including 0 and the bound; S2's views."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from pyimgenc import paillier
from pyimgenc.twinserver.channel import in_process_pair
from pyimgenc.twinserver.literal import sact_literal as sact
from pyimgenc.twinserver.messages import SACT_REQUEST
from pyimgenc.twinserver.smp import KeyServer, unpack_tensors


@pytest.fixture(scope="module")
def keys():
    return paillier.keygen(512, insecure=True)


def _serve(sk):
    a, b = in_process_pair(timeout_s=30)
    srv = KeyServer(sk)
    threading.Thread(target=srv.serve, args=(b,), daemon=True).start()
    return a, srv


def test_sact_is_relu(keys):
    pk, sk = keys
    ch, _ = _serve(sk)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(-(2**60), 2**60, 200), [0, 1, -1, 2**60 - 1, -(2**60 - 1)]])
    got = sk.decrypt(sact(ch, pk.encrypt(x.reshape(5, 41)), bound_bits=60)).reshape(-1)
    assert [int(v) for v in got] == [max(int(v), 0) for v in x]
    assert ch.stats.rounds == 1


def test_key_server_sees_coin_flips_and_masks(keys):
    pk, sk = keys
    ch, srv = _serve(sk)
    seen = []
    orig = srv.handle

    def spy(mtype, body):
        if mtype == SACT_REQUEST:
            y, z = unpack_tensors(body, pk, 2)
            seen.append((sk.decrypt(y), sk.decrypt(z)))
        return orig(mtype, body)

    srv.handle = spy
    x = np.full(400, 5, dtype=np.int64)        # all positive: signs S2 sees must still be mixed
    sact(ch, pk.encrypt(x), bound_bits=8)
    y, z = seen[0]
    pos = int(sum(int(v) > 0 for v in y))
    assert 140 < pos < 260                      # ~ Binomial(400, 1/2)
    assert all(abs(int(v)) > 2**20 for v in y)  # |x| = 5 is multiplied by a 40-bit alpha
    assert len({int(v) for v in z}) == 400      # every x + r differs although every x is 5


def test_bound_too_large_for_the_key(keys):
    pk, sk = keys
    ch, _ = _serve(sk)
    with pytest.raises(ValueError, match="no room"):
        sact(ch, pk.encrypt([1]), bound_bits=500)
