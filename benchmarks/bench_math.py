"""Raw modular arithmetic: pyimgenc on each CPU path vs gmpy2 (GMP), paired in the same run.

``powmod``: random odd moduli of 1024, 2048 and 4096 bits, full-size random exponents
and bases, one call per batch for pyimgenc and one ``gmpy2.powmod`` per number (what
python-paillier does); ``mulmod``: ``a * b % N`` over a batch.  Each round times one
batch of each back to back (alternating), so both see the same background load; the
record holds the median rate of each and the median of the per-round ratios.

    PYIMGENC_NUM_THREADS=1 python -m pytest benchmarks/bench_math.py \\
        --benchmark-json=benchmarks/results/math-1core.json
    python benchmarks/summarize.py benchmarks/results/math-1core.json

Every CPU path of this machine is measured (``ifma`` where the CPU has AVX-512 IFMA,
``adx`` where it has BMI2/ADX, ``generic`` and ``lane`` everywhere); a path the CPU lacks is skipped
with the reason.
"""
from __future__ import annotations

import random
import statistics
import time

import pytest

gmpy2 = pytest.importorskip("gmpy2")

from pyimgenc import backend  # noqa: E402
from pyimgenc import math as pm  # noqa: E402

BITS = [1024, 2048, 4096]
PATHS = ["ifma", "adx", "generic", "lane"]  # lane: the GPU engine's per-lane code, on the CPU
BATCH = {1024: 192, 2048: 48, 4096: 8}   # ~0.1-0.2 s per batch on one core
ROUNDS = 9


def _paired(ours, theirs, n: int, reps: int = 1):
    ro, rt = [], []
    for _ in range(ROUNDS):
        t0 = time.process_time()
        for _ in range(reps):
            ours()
        t1 = time.process_time()
        for _ in range(reps):
            theirs()
        t2 = time.process_time()
        ro.append(reps * n / (t1 - t0))
        rt.append(reps * n / (t2 - t1))
    return ro, rt


def _record(benchmark, op, bits, path, ro, rt):
    ratios = [a / b for a, b in zip(ro, rt)]
    benchmark.group = f"paired-{bits}"
    benchmark.extra_info.update(
        paired_op=f"{op}-{path}", bits=bits, peer="gmpy2", cpu_path=path,
        ours_median=statistics.median(ro), phe_median=statistics.median(rt),
        ratio_median=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios))


def _need(path: str) -> None:
    if path not in backend.available_cpu_paths():
        pytest.skip(f"this CPU has no {path!r} path ({', '.join(backend.available_cpu_paths())} here)")


def _case(bits: int, n: int):
    rng = random.Random(bits)
    N = rng.getrandbits(bits) | 1 | (1 << (bits - 1))
    xs = [rng.randrange(N) for _ in range(n)]
    ys = [rng.randrange(N) for _ in range(n)]
    es = [rng.getrandbits(bits) | (1 << (bits - 1)) for _ in range(n)]
    return N, xs, ys, es


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bits", BITS)
def test_powmod(benchmark, bits, path):
    _need(path)
    n = BATCH[bits]
    N, xs, _, es = _case(bits, n)
    m = pm.Modulus(N)
    x, e = pm.ints_to_limbs(xs, m.nlimbs), pm.ints_to_limbs(es, m.nlimbs)
    gx, ge, gN = [gmpy2.mpz(v) for v in xs], [gmpy2.mpz(v) for v in es], gmpy2.mpz(N)
    got = pm.limbs_to_ints(pm.powmod(x, e, m, cpu_path=path))
    assert got == [int(gmpy2.powmod(a, b, gN)) for a, b in zip(gx, ge)]  # same answers, then time
    ro, rt = benchmark.pedantic(
        lambda: _paired(lambda: pm.powmod(x, e, m, cpu_path=path),
                        lambda: [gmpy2.powmod(a, b, gN) for a, b in zip(gx, ge)], n),
        rounds=1, iterations=1)
    _record(benchmark, "powmod", bits, path, ro, rt)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bits", BITS)
def test_mulmod(benchmark, bits, path):
    _need(path)
    n = 1024
    N, xs, ys, _ = _case(bits, n)
    m = pm.Modulus(N)
    x, y = pm.ints_to_limbs(xs, m.nlimbs), pm.ints_to_limbs(ys, m.nlimbs)
    gx, gy, gN = [gmpy2.mpz(v) for v in xs], [gmpy2.mpz(v) for v in ys], gmpy2.mpz(N)
    assert pm.limbs_to_ints(pm.mulmod(x, y, m, cpu_path=path)) == [a * b % N for a, b in zip(xs, ys)]
    ro, rt = benchmark.pedantic(
        lambda: _paired(lambda: pm.mulmod(x, y, m, cpu_path=path),
                        lambda: [a * b % gN for a, b in zip(gx, gy)], n, reps=5),
        rounds=1, iterations=1)
    _record(benchmark, "mulmod", bits, path, ro, rt)
