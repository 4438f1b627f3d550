"""multiexp (Straus, signed int64 exponents) against Python's pow and gmpy2.invert."""
from __future__ import annotations

import math
import random

import gmpy2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyimgenc.math import Modulus, ints_to_limbs, limbs_to_ints, multiexp, nlimbs_for

BATCHES = (0, 1, 7, 8, 9, 17)
I64_MAX = 2 ** 63 - 1


def enc(values, n):
    return ints_to_limbs(values, nlimbs_for(n))


def rand_odd(rng: random.Random, bits: int) -> int:
    return rng.getrandbits(bits) | (1 << (bits - 1)) | 1


def oracle(bases, idx, exps, n):
    out = []
    for row_i, row_e in zip(idx.tolist(), exps.tolist()):
        acc = 1 % n
        for k, e in zip(row_i, row_e):
            acc = acc * pow(bases[k], e, n) % n  # negative e: Python inverts
        out.append(acc)
    return out


def inverses(bases, n):
    return [int(gmpy2.invert(b, n)) for b in bases]


@st.composite
def multiexp_cases(draw):
    bits = draw(st.integers(2, 1100))
    n = draw(st.integers(2 ** (bits - 1), 2 ** bits - 1)) | 1
    k = draw(st.integers(1, 6))
    m = draw(st.sampled_from(BATCHES))
    t = draw(st.integers(1, 6))
    signed = draw(st.booleans())
    unit = st.integers(1, n - 1).filter(lambda b: math.gcd(b, n) == 1) if n > 3 else st.just(1)
    base = unit if signed else st.one_of(st.sampled_from([0, 1, n - 1]), st.integers(0, n - 1))
    bases = draw(st.lists(st.one_of(st.sampled_from([1, n - 1]), base), min_size=k, max_size=k))
    lo = -I64_MAX if signed else 0
    mag = draw(st.sampled_from([2 ** 4, 2 ** 20, I64_MAX]))
    exp = st.one_of(st.sampled_from([0, 1, -1 if signed else 2]), st.integers(max(lo, -mag), mag))
    idx = np.array(draw(st.lists(st.lists(st.integers(0, k - 1), min_size=t, max_size=t),
                                 min_size=m, max_size=m)), dtype=np.int64).reshape(m, t)
    exps = np.array(draw(st.lists(st.lists(exp, min_size=t, max_size=t), min_size=m, max_size=m)),
                    dtype=np.int64).reshape(m, t)
    return n, bases, idx, exps, signed


@given(multiexp_cases())
def test_multiexp_matches_pow(kw, case):
    n, bases, idx, exps, signed = case
    inv = enc(inverses(bases, n), n) if signed else None
    out = multiexp(enc(bases, n), idx, exps, n, inv_bases=inv, **kw)
    assert out.dtype == np.uint64 and out.shape == (idx.shape[0], nlimbs_for(n))
    assert limbs_to_ints(out) == oracle(bases, idx, exps, n)


@pytest.mark.parametrize("bits", [3, 53, 64, 65, 128, 500, 1024, 1041])
def test_multiexp_shapes_and_edges(kw, bits):
    rng = random.Random(bits)
    n = rand_odd(rng, bits)
    while True:
        bases = [1, n - 1] + [rng.randrange(2, n) for _ in range(5)]
        if all(math.gcd(b, n) == 1 for b in bases):
            break
    bl, il = enc(bases, n), enc(inverses(bases, n), n)
    for m in BATCHES:
        for t in (1, 2, 8, 9):
            idx = np.array([[rng.randrange(7) for _ in range(t)] for _ in range(m)], dtype=np.int64)
            idx = idx.reshape(m, t)
            choices = [0, 1, -1, 2, -2, I64_MAX, -I64_MAX, 255, -256, 2 ** 32]
            exps = np.array([[rng.choice(choices) for _ in range(t)] for _ in range(m)],
                            dtype=np.int64).reshape(m, t)
            got = limbs_to_ints(multiexp(bl, idx, exps, n, inv_bases=il, **kw))
            assert got == oracle(bases, idx, exps, n), (m, t)
            pos = np.abs(exps)
            got = limbs_to_ints(multiexp(bl, idx, pos, n, **kw))  # no inverses needed
            assert got == oracle(bases, idx, pos, n), (m, t)


def test_multiexp_repeated_index_and_zero_exponents(kw):
    n = rand_odd(random.Random(5), 400)
    b = 0xDEADBEEF
    bases = enc([b, 0], n)
    inv = enc([int(gmpy2.invert(b, n)), 0], n)  # 0 is never used with a negative exponent
    idx = np.zeros((9, 4), dtype=np.int64)
    exps = np.array([[3, 5, -2, 7]] * 9, dtype=np.int64)
    exps[8] = [0, 0, 0, 0]
    idx[7] = [1, 1, 0, 0]
    exps[7] = [0, 3, 1, -1]  # 0^0 * 0^3 * b * b^-1 = 0
    got = limbs_to_ints(multiexp(bases, idx, exps, n, inv_bases=inv, **kw))
    assert got == [pow(b, 13, n)] * 7 + [0, 1]


def test_multiexp_empty_cases(kw):
    n = 2 ** 127 + 45
    bases = enc([3, 5], n)
    out = multiexp(bases, np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3), dtype=np.int64), n, **kw)
    assert out.shape == (0, 2)
    out = multiexp(bases, np.zeros((9, 0), dtype=np.int64), np.zeros((9, 0), dtype=np.int64), n, **kw)
    assert limbs_to_ints(out) == [1] * 9  # empty product


def test_multiexp_index_dtypes_agree(kw):
    n = rand_odd(random.Random(6), 200)
    bases = [7, 11, 13]
    idx = np.array([[0, 1, 2], [2, 2, 1]])
    exps = np.array([[1, 2, 3], [4, 0, 9]])
    want = oracle(bases, idx, exps, n)
    for dt in (np.int64, np.int32, np.uint8, np.uint64):
        got = multiexp(enc(bases, n), idx.astype(dt), exps.astype(dt), Modulus(n), **kw)
        assert limbs_to_ints(got) == want, dt


@pytest.mark.slow
def test_multiexp_2048_bit(kw):
    rng = random.Random(2048)
    n = rand_odd(rng, 2048)
    bases = [rng.randrange(n) for _ in range(16)]
    bases = [b for b in bases if math.gcd(b, n) == 1]
    k = len(bases)
    idx = np.array([[rng.randrange(k) for _ in range(16)] for _ in range(17)], dtype=np.int64)
    exps = np.array([[rng.randrange(-2 ** 20, 2 ** 20) for _ in range(16)] for _ in range(17)],
                    dtype=np.int64)
    got = multiexp(enc(bases, n), idx, exps, n, inv_bases=enc(inverses(bases, n), n), **kw)
    assert limbs_to_ints(got) == oracle(bases, idx, exps, n)


# --- bad input -----------------------------------------------------------------

N_SMALL = 2 ** 127 + 45
B2 = ints_to_limbs([3, 5], 2)
INV2 = ints_to_limbs([int(gmpy2.invert(3, N_SMALL)), int(gmpy2.invert(5, N_SMALL))], 2)


def _i(rows):
    return np.array(rows, dtype=np.int64)


def test_multiexp_negative_needs_inverses(kw):
    idx = _i([[0, 1]] * 9)
    exps = _i([[1, 1]] * 8 + [[1, -1]])
    with pytest.raises(ValueError, match="negative exponent needs inv_bases"):
        multiexp(B2, idx, exps, N_SMALL, **kw)


@pytest.mark.parametrize("bad", [2, -1, 2 ** 40])
def test_multiexp_index_out_of_range(kw, bad):
    idx = _i([[0, 1]] * 8 + [[1, bad]])
    with pytest.raises(ValueError, match="index out of range"):
        multiexp(B2, idx, _i([[1, 1]] * 9), N_SMALL, **kw)


def test_multiexp_index_into_empty_bases(kw):
    with pytest.raises(ValueError, match="index out of range"):
        multiexp(np.zeros((0, 2), dtype=np.uint64), _i([[0]]), _i([[1]]), N_SMALL, **kw)


def test_multiexp_rejects_int64_min_exponent(kw):
    # |-2^63| does not fit in int64; the core refuses it rather than compute base^(2^63)
    with pytest.raises(ValueError, match="2\\^63"):
        multiexp(B2, _i([[0]]), _i([[-2 ** 63]]), N_SMALL, inv_bases=INV2, **kw)


@pytest.mark.parametrize("idx,exps,exc,msg", [
    (np.array([[0.0, 1.0]]), _i([[1, 1]]), TypeError, "idx must be a 2-D integer"),
    (_i([0, 1]), _i([[1, 1]]), TypeError, "idx must be a 2-D integer"),
    (_i([[0, 1]]), np.array([[1.0, 2.0]]), TypeError, "exps must be a 2-D integer"),
    (_i([[0, 1]]), [[1, 1]], TypeError, "exps must be a 2-D integer"),
    (_i([[0, 1]]), _i([[1, 1, 1]]), ValueError, "idx shape .* != exps shape"),
])
def test_multiexp_rejects_bad_idx_exps(kw, idx, exps, exc, msg):
    with pytest.raises(exc, match=msg):
        multiexp(B2, idx, exps, N_SMALL, **kw)


@pytest.mark.parametrize("bases,exc,msg", [
    (B2.astype(np.int64), TypeError, "bases must have dtype uint64"),
    (B2.astype(np.float64), TypeError, "bases must have dtype uint64"),
    (np.zeros((2, 3), dtype=np.uint64), ValueError, "bases must have 2 limbs"),
    (ints_to_limbs([3, N_SMALL], 2), ValueError, "not reduced modulo N"),
])
def test_multiexp_rejects_bad_bases(kw, bases, exc, msg):
    with pytest.raises(exc, match=msg):
        multiexp(bases, _i([[0, 1]]), _i([[1, 1]]), N_SMALL, **kw)


@pytest.mark.parametrize("inv,exc,msg", [
    (INV2.astype(np.int64), TypeError, "inv_bases must have dtype uint64"),
    (np.zeros((2, 3), dtype=np.uint64), ValueError, "inv_bases must have 2 limbs"),
    (INV2[:1], ValueError, "inv_bases must match"),
    (np.concatenate([INV2, INV2]), ValueError, "inv_bases must match"),
    (ints_to_limbs([1, N_SMALL], 2), ValueError, "inv_bases.*not reduced modulo N"),
])
def test_multiexp_rejects_bad_inv_bases(kw, inv, exc, msg):
    with pytest.raises(exc, match=msg):
        multiexp(B2, _i([[0, 1]]), _i([[-1, -1]]), N_SMALL, inv_bases=inv, **kw)


@pytest.mark.parametrize("n", [1, 4, 0])
def test_multiexp_rejects_bad_modulus(kw, n):
    with pytest.raises(ValueError, match="odd integer greater than 1"):
        multiexp(np.zeros((1, 1), dtype=np.uint64), _i([[0]]), _i([[1]]), n, **kw)
