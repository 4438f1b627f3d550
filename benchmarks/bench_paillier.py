"""Paillier throughput: pyimgenc vs python-paillier (phe, with gmpy2), same run.

Same key (phe's key objects are built from pyimgenc's p, q), same plaintexts,
batches of 256 (``PYIMGENC_BENCH_BATCH``), 2048- and 3072-bit keys.  Each
benchmark's ``extra_info`` records ops per round so that
``benchmarks/summarize.py`` can print operations/s and the pyimgenc/phe ratio.
For single-core figures run with ``PYIMGENC_NUM_THREADS=1``.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

phe = pytest.importorskip("phe")
from phe import paillier as phe_paillier  # noqa: E402

from pyimgenc import paillier  # noqa: E402

BITS = [2048, 3072]
MATVEC_ROWS = 16
_keys: dict[int, tuple] = {}


def keys(bits):
    if bits not in _keys:
        pk, sk = paillier.keygen(bits)
        ppk = phe_paillier.PaillierPublicKey(pk.n)
        psk = phe_paillier.PaillierPrivateKey(ppk, sk.p, sk.q)
        _keys[bits] = (pk, sk, ppk, psk)
    return _keys[bits]


@pytest.fixture(scope="module", params=BITS, ids=lambda b: f"{b}bit")
def setup(request, batch_size):
    bits = request.param
    pk, sk, ppk, psk = keys(bits)
    rng = random.Random(bits)
    vals = [rng.randrange(-(2**40), 2**40) for _ in range(batch_size)]
    k16 = [rng.randrange(0, 2**16) for _ in range(batch_size)]
    kfull = [rng.randrange(pk.n // 8, pk.n // 3) for _ in range(batch_size)]
    W = np.array([[rng.randrange(-(2**15), 2**15) for _ in range(batch_size)] for _ in range(MATVEC_ROWS)],
                 dtype=np.int64)
    ours = pk.encrypt(np.array(vals, dtype=np.int64))
    theirs = [ppk.encrypt(v) for v in vals]
    return dict(bits=bits, pk=pk, sk=sk, ppk=ppk, psk=psk, vals=vals, k16=k16, kfull=kfull, W=W,
                ours=ours, theirs=theirs, n=batch_size)


def _run(benchmark, op, impl, setup, fn, nops, rounds=3):
    benchmark.group = f"{op}-{setup['bits']}"
    benchmark.extra_info.update(op=op, impl=impl, bits=setup["bits"], ops_per_round=nops)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["pyimgenc", "phe"])
def test_encrypt(benchmark, setup, impl):
    vals = setup["vals"]
    if impl == "pyimgenc":
        arr = np.array(vals, dtype=np.int64)
        out = _run(benchmark, "encrypt", impl, setup, lambda: setup["pk"].encrypt(arr), len(vals), rounds=7)
        assert np.array_equal(setup["sk"].decrypt(out), arr)
    else:
        ppk = setup["ppk"]
        _run(benchmark, "encrypt", impl, setup, lambda: [ppk.encrypt(v) for v in vals], len(vals), rounds=2)


@pytest.mark.parametrize("impl", ["pyimgenc", "phe"])
def test_decrypt(benchmark, setup, impl):
    if impl == "pyimgenc":
        out = _run(benchmark, "decrypt", impl, setup, lambda: setup["sk"].decrypt(setup["ours"]), setup["n"],
                   rounds=7)
        assert out.tolist() == setup["vals"]
    else:
        psk, cts = setup["psk"], setup["theirs"]
        out = _run(benchmark, "decrypt", impl, setup, lambda: [psk.decrypt(c) for c in cts], setup["n"])
        assert out == setup["vals"]


@pytest.mark.parametrize("impl", ["pyimgenc", "phe"])
def test_add(benchmark, setup, impl):
    if impl == "pyimgenc":
        a = setup["ours"]
        b = a[::-1]
        out = _run(benchmark, "add", impl, setup, lambda: a + b, setup["n"], rounds=20)
        assert setup["sk"].decrypt(out).tolist() == [x + y for x, y in zip(setup["vals"], setup["vals"][::-1])]
    else:
        a = setup["theirs"]
        b = a[::-1]
        _run(benchmark, "add", impl, setup, lambda: [x + y for x, y in zip(a, b)], setup["n"], rounds=20)


@pytest.mark.parametrize("impl", ["pyimgenc", "phe"])
@pytest.mark.parametrize("kind", ["mul16", "mulfull"])
def test_scalar_mul(benchmark, setup, impl, kind):
    ks = setup["k16" if kind == "mul16" else "kfull"]
    rounds = 7 if kind == "mul16" else 5
    if impl == "pyimgenc":
        karr = np.array(ks, dtype=np.int64) if kind == "mul16" else np.array(ks, dtype=object)
        ct = setup["ours"]
        out = _run(benchmark, kind, impl, setup, lambda: ct * karr, setup["n"], rounds=rounds)
        n = setup["pk"].n
        expect = [(v * k) % n for v, k in zip(setup["vals"], ks)]
        got = [int(x) % n for x in setup["sk"].decrypt(out).tolist()]
        assert got == expect
    else:
        cts = setup["theirs"]
        _run(benchmark, kind, impl, setup, lambda: [c * k for c, k in zip(cts, ks)], setup["n"], rounds=3)


@pytest.mark.parametrize("impl", ["pyimgenc", "phe"])
def test_matvec(benchmark, setup, impl):
    """y = W x with W 16 x B signed 16-bit weights, x encrypted (B multiply-accumulates per row)."""
    W = setup["W"]
    nmac = W.size
    if impl == "pyimgenc":
        x = setup["ours"]
        out = _run(benchmark, "matvec", impl, setup, lambda: W @ x, nmac)
        assert setup["sk"].decrypt(out).tolist() == (W.astype(object) @ np.array(setup["vals"], dtype=object)).tolist()
    else:
        cts = setup["theirs"]
        rows = [[int(w) for w in row] for row in W]

        def mv():
            out = []
            for row in rows:
                acc = cts[0] * row[0]
                for c, w in zip(cts[1:], row[1:]):
                    acc = acc + c * w
                out.append(acc)
            return out
        _run(benchmark, "matvec", impl, setup, mv, nmac, rounds=1)


@pytest.mark.parametrize("impl", ["pyimgenc", "phe"])
def test_keygen(benchmark, setup, impl):
    bits = setup["bits"]
    benchmark.group = f"keygen-{bits}"
    benchmark.extra_info.update(op="keygen", impl=impl, bits=bits, ops_per_round=1)
    if impl == "pyimgenc":
        benchmark.pedantic(lambda: paillier.keygen(bits), rounds=3, iterations=1)
    else:
        benchmark.pedantic(lambda: phe_paillier.generate_paillier_keypair(n_length=bits), rounds=3, iterations=1)


PAIRED_OPS = ["encrypt", "decrypt", "add", "mul16", "mulfull"]


@pytest.mark.parametrize("op", PAIRED_OPS)
def test_paired(benchmark, setup, op):
    """pyimgenc and phe rounds interleaved (A B A B ...) on a shared, noisy machine.

    Each round times one batch of each library back to back, so both see the same
    background load; ``extra_info`` holds the median rate of each and the median of
    the per-round ratios (what ``summarize.py`` prints as the paired ratio).
    """
    import statistics
    import time

    pk, sk, ppk, psk = setup["pk"], setup["sk"], setup["ppk"], setup["psk"]
    vals, n = setup["vals"], setup["n"]
    ours, theirs = setup["ours"], setup["theirs"]
    arr = np.array(vals, dtype=np.int64)
    k16 = np.array(setup["k16"], dtype=np.int64)
    kfull_o = np.array(setup["kfull"], dtype=object)
    fns = {
        "encrypt": (lambda: pk.encrypt(arr), lambda: [ppk.encrypt(v) for v in vals]),
        "decrypt": (lambda: sk.decrypt(ours), lambda: [psk.decrypt(c) for c in theirs]),
        "add": (lambda: ours + ours[::-1], lambda: [x + y for x, y in zip(theirs, theirs[::-1])]),
        "mul16": (lambda: ours * k16, lambda: [c * k for c, k in zip(theirs, setup["k16"])]),
        "mulfull": (lambda: ours * kfull_o, lambda: [c * k for c, k in zip(theirs, setup["kfull"])]),
    }
    ours_fn, theirs_fn = fns[op]
    rounds = 5 if op in ("encrypt", "mulfull") else 9
    reps = 20 if op == "add" else 1
    clock = time.process_time

    def paired():
        ro, rt = [], []
        for _ in range(rounds):
            t0 = clock()
            for _ in range(reps):
                ours_fn()
            t1 = clock()
            for _ in range(reps):
                theirs_fn()
            t2 = clock()
            ro.append(reps * n / (t1 - t0))
            rt.append(reps * n / (t2 - t1))
        return ro, rt

    ro, rt = benchmark.pedantic(paired, rounds=1, iterations=1)
    benchmark.group = f"paired-{setup['bits']}"
    benchmark.extra_info.update(
        paired_op=op, bits=setup["bits"], ours_median=statistics.median(ro),
        phe_median=statistics.median(rt),
        ratio_median=statistics.median(a / b for a, b in zip(ro, rt)),
        ratio_min=min(a / b for a, b in zip(ro, rt)), ratio_max=max(a / b for a, b in zip(ro, rt)))
