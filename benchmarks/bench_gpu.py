"""The GPU engines against this machine's CPU engines, same run (run by benchmarks/gpu_check.sh).

    paillier_<op>[cuda|cpu]  2048-bit Paillier on batches of PYIMGENC_GPU_BATCH (65,536) on the GPU
                             and PYIMGENC_GPU_CPU_BATCH (4,096) on the CPU path (all cores):
                             encrypt, decrypt, ct x 16-bit scalar, ct x full-size scalar.  Every
                             round checks the GPU against the CPU: same ciphertexts for ct x k,
                             same plaintexts after decryption (encryption is randomised, so its
                             ciphertexts are checked by decrypting them on the CPU).
    rns_classify[cuda|numba] System B end to end (fresh key, encrypt, all 16 sub-images per image,
                             decrypt) on PYIMGENC_GPU_RNS_IMAGES (10,000) MNIST images, exact
                             against the plaintext integer model.
    twinserver[cuda|cpu]     System A: one MNIST image through both servers (2048-bit keys) with
                             the math backend on the GPU, then on the CPU; exact.

``extra_info`` holds operations (or images) per second, the targets of issue 18 and the device.
Skips without a CUDA device (gpu_check.sh fails first, saying so).
"""
from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest

from pyimgenc import backend, paillier

_OK, _WHY = backend.native_status()["cuda"], backend.native_status()["cuda_reason"]
pytestmark = pytest.mark.skipif(not _OK, reason=f"no CUDA device: {_WHY}")

GPU_BATCH = int(os.environ.get("PYIMGENC_GPU_BATCH", "65536"))
CPU_BATCH = int(os.environ.get("PYIMGENC_GPU_CPU_BATCH", "4096"))
RNS_IMAGES = int(os.environ.get("PYIMGENC_GPU_RNS_IMAGES", "10000"))
TARGETS = {"encrypt": 1_000_000, "decrypt": 200_000, "mul16": 5_000_000, "mulfull": None}


def _on(name: str):
    backend.set_backend(name)


@pytest.fixture(scope="module")
def key():
    pk, sk = paillier.keygen(2048)
    rng = random.Random(2048)
    n = max(GPU_BATCH, CPU_BATCH)
    vals = np.array([rng.randrange(-(2**40), 2**40) for _ in range(n)], dtype=np.int64)
    k16 = np.array([rng.randrange(0, 2**16) for _ in range(n)], dtype=np.int64)
    kfull = np.array([rng.randrange(pk.n // 8, pk.n // 3) for _ in range(n)], dtype=object)
    _on("cpu")
    ct = pk.encrypt(vals)
    yield dict(pk=pk, sk=sk, vals=vals, k16=k16, kfull=kfull, ct=ct)
    backend.set_backend(None)


@pytest.mark.parametrize("engine", ["cuda", "cpu"])
@pytest.mark.parametrize("op", ["encrypt", "decrypt", "mul16", "mulfull"])
def test_paillier(benchmark, key, engine, op):
    pk, sk = key["pk"], key["sk"]
    B = GPU_BATCH if engine == "cuda" else CPU_BATCH
    vals, ct = key["vals"][:B], key["ct"][:B]
    _on(engine)
    fn = {"encrypt": lambda: pk.encrypt(vals), "decrypt": lambda: sk.decrypt(ct),
          "mul16": lambda: ct * key["k16"][:B], "mulfull": lambda: ct * key["kfull"][:B]}[op]
    out = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    # same results as the CPU path
    _on("cpu")
    m = min(B, 1024)
    if op == "encrypt":
        assert np.array_equal(sk.decrypt(out[:m]), vals[:m])
    elif op == "decrypt":
        assert np.array_equal(out, vals)
    else:
        want = ct[:m] * (key["k16"][:m] if op == "mul16" else key["kfull"][:m])
        assert np.array_equal(np.asarray(sk.decrypt(out[:m]), dtype=object), np.asarray(sk.decrypt(want), dtype=object))
        assert np.array_equal(out[:m].limbs, want.limbs)
    med = benchmark.stats.stats.median
    benchmark.extra_info.update(engine=engine, op=op, key_bits=2048, batch=B, ops_per_s=B / med,
                                target_ops_per_s=TARGETS[op] if engine == "cuda" else None,
                                device=_WHY if engine == "cuda" else "cpu:" + backend.cpu_path_reason())


@pytest.fixture(scope="module")
def mnist():
    from pyimgenc import datasets
    try:
        x, _ = datasets.load_mnist("test")
    except (FileNotFoundError, ValueError):
        x, _ = datasets.load_mnist(sample=True)           # the device machine has only the shipped digits
    reps = -(-RNS_IMAGES // len(x))
    return np.concatenate([x] * reps)[:RNS_IMAGES]


@pytest.mark.parametrize("engine", ["cuda", "numba"])
def test_rns_classify(benchmark, mnist, engine):
    from pyimgenc import rns
    n = RNS_IMAGES if engine == "cuda" else min(RNS_IMAGES, 2000)
    clf = rns.RNSClassifier.pretrained(engine=engine, seed=1, batch=n)
    x = mnist[:n]
    got = benchmark.pedantic(lambda: clf.classify(x), rounds=3, iterations=1, warmup_rounds=1)
    assert np.array_equal(got[:200], clf.reference_logits(x[:200]))
    med = benchmark.stats.stats.median
    benchmark.extra_info.update(engine=engine, images=n, images_per_s=n / med,
                                target_images_per_s=20_000 if engine == "cuda" else None)


@pytest.mark.parametrize("engine", ["cuda", "cpu"])
def test_twinserver(benchmark, mnist, engine):
    from pyimgenc.twinserver import SecureClassifier
    _on(engine)
    clf = SecureClassifier.pretrained(key_bits=2048)
    try:
        x = mnist[:1]
        t0 = time.perf_counter()
        got = benchmark.pedantic(lambda: clf.classify(x), rounds=1 if engine == "cpu" else 2, iterations=1)
        assert (got == clf.reference_logits(x)).all()
        last = clf.last
        benchmark.extra_info.update(engine=engine, key_bits=2048, offline_s=last.offline_s, online_s=last.online_s,
                                    total_s=last.offline_s + last.online_s, wall_s=time.perf_counter() - t0,
                                    target_total_s=3.0 if engine == "cuda" else None)
    finally:
        clf.close()
        backend.set_backend(None)
