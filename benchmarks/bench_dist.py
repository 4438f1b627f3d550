"""pyimgenc.dist: in-process against a 2-worker Dask LocalCluster (127.0.0.1), same run.

1. Paillier: encrypt a 100,000-element vector, multiply it by a 100,000 x 16 plaintext
   matrix (``x @ W``), decrypt the 16 results — in-process (``pk.encrypt``, ``@``,
   ``sk.decrypt``) and distributed (``dist.encrypt``, ``@`` as per-chunk multi-exponentiations
   and a tree of additions, ``.compute()``, decrypt here).  2048-bit keys.
2. System B: images/s of ``RNSClassifier.classify`` in-process against ``dist.classify`` on the
   cluster (1,000 MNIST test images; the cluster's time includes shipping the images).

    PYIMGENC_BENCH_DIST_N=100000 python -m pytest benchmarks/bench_dist.py \\
        --benchmark-json=benchmarks/results/dist.json
    python benchmarks/summarize.py benchmarks/results/dist.json

Each worker is one process with one thread (``PYIMGENC_NUM_THREADS=1`` inside it); the
in-process side runs with one thread too, so the ratio is the efficiency of two workers
against one core.  Wall-clock time (``time.perf_counter``); one round each (minutes).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="pip install 'pyimgenc[dask]'")

import pyimgenc  # noqa: E402
from pyimgenc import dist  # noqa: E402
from pyimgenc.paillier import keygen  # noqa: E402
from pyimgenc.rns import RNSClassifier  # noqa: E402

N = int(os.environ.get("PYIMGENC_BENCH_DIST_N", "100000"))
M = 16
IMAGES = int(os.environ.get("PYIMGENC_BENCH_DIST_IMAGES", "1000"))


@pytest.fixture(scope="module")
def cluster():
    os.environ["PYIMGENC_NUM_THREADS"] = "1"           # inherited by the worker processes
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c, distributed.Client(c) as client:
        yield client


def _record(benchmark, op, inproc_s, dist_s, nops):
    benchmark.group = f"dist-{op}"
    benchmark.extra_info.update(paired_op=op, bits=2048, ours_median=nops / dist_s, phe_median=nops / inproc_s,
                                peer="in-process", ratio_median=inproc_s / dist_s, ratio_min=inproc_s / dist_s,
                                ratio_max=inproc_s / dist_s, inproc_s=inproc_s, dist_s=dist_s)


def test_encrypt_matmul_decrypt(benchmark, cluster):
    pyimgenc.set_num_threads(1)
    pk, sk = keygen(2048)
    rng = np.random.default_rng(1)
    x = rng.integers(-2**20, 2**20, size=N)
    W = rng.integers(-2**15, 2**15, size=(N, M))
    want = x @ W

    def inproc():
        return sk.decrypt(pk.encrypt(x) @ W)

    def distributed_run():
        return sk.decrypt((dist.encrypt(pk, x, chunks=max(1, N // 16)) @ W).compute())

    def both():
        t0 = time.perf_counter()
        a = inproc()
        t1 = time.perf_counter()
        b = distributed_run()
        t2 = time.perf_counter()
        return a, b, t1 - t0, t2 - t1

    a, b, ti, td = benchmark.pedantic(both, rounds=1, iterations=1)
    assert np.array_equal(a, want) and np.array_equal(b, want)
    _record(benchmark, f"enc+matmul+dec n={N}", ti, td, N)


def test_system_b_images_per_second(benchmark, cluster):
    from pyimgenc.datasets import load_mnist
    pyimgenc.set_num_threads(1)
    x = load_mnist()[0][:IMAGES]
    clf = RNSClassifier.pretrained()
    clf.classify(x[:8])                                      # JIT warm-up outside the timing
    dist.classify("mnist-avgpool", x[:16], chunk=8).compute()

    def both():
        t0 = time.perf_counter()
        a = clf.classify(x)
        t1 = time.perf_counter()
        b = dist.classify("mnist-avgpool", x, chunk=max(1, IMAGES // 8)).compute()
        t2 = time.perf_counter()
        return a, b, t1 - t0, t2 - t1

    a, b, ti, td = benchmark.pedantic(both, rounds=1, iterations=1)
    assert (a == b).all()
    _record(benchmark, f"System B images={IMAGES}", ti, td, IMAGES)
