"""mulmod and reduce (both in pyimgenc/math/modexp.py) against Python integers."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyimgenc.math import Modulus, ints_to_limbs, limbs_to_ints, mulmod, nlimbs_for, reduce

BATCHES = (0, 1, 7, 8, 9, 15, 16, 17)


def enc(values, n, width=None):
    return ints_to_limbs(values, width or nlimbs_for(n))


def rand_odd(rng: random.Random, bits: int) -> int:
    return rng.getrandbits(bits) | (1 << (bits - 1)) | 1


@st.composite
def mulmod_cases(draw):
    bits = draw(st.integers(2, 4200))
    n = draw(st.integers(2 ** (bits - 1), 2 ** bits - 1)) | 1
    batch = draw(st.sampled_from(BATCHES))
    val = st.one_of(st.sampled_from([0, 1, n - 1, 2 ** (bits - 1) % n]), st.integers(0, n - 1))
    a = draw(st.lists(val, min_size=batch, max_size=batch))
    b = draw(st.lists(val, min_size=batch, max_size=batch))
    return n, a, b


@given(mulmod_cases())
def test_mulmod_matches_int(kw, case):
    n, a, b = case
    out = mulmod(enc(a, n), enc(b, n), n, **kw)
    assert out.dtype == np.uint64 and out.shape == (len(a), nlimbs_for(n))
    assert limbs_to_ints(out) == [x * y % n for x, y in zip(a, b)]


@pytest.mark.parametrize("bits", [2, 3, 52, 53, 63, 64, 65, 104, 105, 127, 128, 500, 1024, 2048,
                                  2049, 4096, 4097, 4160, 4161])
def test_mulmod_sizes_and_edges(kw, bits):
    rng = random.Random(bits)
    n = rand_odd(rng, bits)
    edges = [0, 1, n - 1, (n - 1) // 2, 2 ** (bits - 1) % n, 2 ** min(64, bits - 1) % n]
    a = edges * 3
    b = [e for e in edges for _ in range(3)]  # every pair of edge values
    a += [rng.randrange(n) for _ in range(17)]
    b += [rng.randrange(n) for _ in range(17)]
    for batch in BATCHES + (len(a),):
        out = mulmod(enc(a[:batch], n), enc(b[:batch], n), n, **kw)
        assert limbs_to_ints(out) == [x * y % n for x, y in zip(a[:batch], b[:batch])], batch


def test_mulmod_is_commutative_and_squares(kw):
    rng = random.Random(3)
    n = rand_odd(rng, 1000)
    a = enc([rng.randrange(n) for _ in range(9)], n)
    b = enc([rng.randrange(n) for _ in range(9)], n)
    m = Modulus(n)
    assert np.array_equal(mulmod(a, b, m, **kw), mulmod(b, a, m, **kw))
    assert limbs_to_ints(mulmod(a, a, m, **kw)) == [x * x % n for x in limbs_to_ints(a)]


@pytest.mark.slow
@pytest.mark.parametrize("bits", [6144, 8192, 16384])
def test_mulmod_large_moduli(kw, bits):
    rng = random.Random(bits)
    n = rand_odd(rng, bits)
    a = [n - 1, 0, 1] + [rng.randrange(n) for _ in range(14)]
    b = [n - 1, n - 1, n - 1] + [rng.randrange(n) for _ in range(14)]
    assert limbs_to_ints(mulmod(enc(a, n), enc(b, n), n, **kw)) == [x * y % n for x, y in zip(a, b)]


N_SMALL = (1 << 127) + 45


@pytest.mark.parametrize("a,exc,msg", [
    (np.zeros((2, 2), dtype=np.int64), TypeError, "a must have dtype uint64"),
    (np.zeros((2, 2), dtype=np.float32), TypeError, "a must have dtype uint64"),
    ([[0, 0], [0, 0]], TypeError, "a must be a numpy uint64 array"),
    (np.zeros((2, 3), dtype=np.uint64), ValueError, "a must have 2 limbs"),
    (np.zeros((2, 2, 2), dtype=np.uint64), ValueError, r"a must have shape \(batch, limbs\)"),
    (np.zeros((3, 2), dtype=np.uint64), ValueError, "operand shapes differ"),
])
def test_mulmod_rejects_bad_operand(kw, a, exc, msg):
    b = np.zeros((2, 2), dtype=np.uint64)
    with pytest.raises(exc, match=msg):
        mulmod(a, b, N_SMALL, **kw)


def test_mulmod_rejects_bad_second_operand(kw):
    a = np.zeros((2, 2), dtype=np.uint64)
    with pytest.raises(TypeError, match="b must have dtype uint64"):
        mulmod(a, a.astype(np.int64), N_SMALL, **kw)


@pytest.mark.parametrize("which", ["a", "b"])
@pytest.mark.parametrize("bad", [N_SMALL, 2 ** 128 - 1])
def test_mulmod_rejects_unreduced(kw, which, bad):
    good = enc(list(range(9)), N_SMALL)
    worse = enc(list(range(8)) + [bad], N_SMALL)  # in the tail lane after one 8-group
    args = (worse, good) if which == "a" else (good, worse)
    with pytest.raises(ValueError, match=f"{which}: .*not reduced modulo N"):
        mulmod(*args, N_SMALL, **kw)


@pytest.mark.parametrize("n", [0, 1, 6, -3])
def test_mulmod_rejects_bad_modulus(kw, n):
    z = np.zeros((1, 1), dtype=np.uint64)
    with pytest.raises(ValueError, match="odd integer greater than 1"):
        mulmod(z, z, n, **kw)


# --- reduce --------------------------------------------------------------------

@st.composite
def reduce_cases(draw):
    bits = draw(st.integers(2, 4200))
    n = draw(st.integers(2 ** (bits - 1), 2 ** bits - 1)) | 1
    L = nlimbs_for(n)
    width = draw(st.integers(1, 2 * L))
    # the contract: x < N * 2^(64 L), which binds only at the full width 2L
    top = min(2 ** (64 * width), n << (64 * L)) - 1
    val = st.one_of(st.sampled_from([min(v, top) for v in (0, 1, n - 1, n, n + 1, top)]),
                    st.integers(0, top))
    xs = draw(st.lists(val, max_size=17))
    return n, width, xs


@given(reduce_cases())
def test_reduce_matches_int(backend_name, case):
    n, width, xs = case
    out = reduce(ints_to_limbs(xs, width), n, backend_name=backend_name)
    assert out.dtype == np.uint64 and out.shape == (len(xs), nlimbs_for(n))
    assert limbs_to_ints(out) == [x % n for x in xs]


@pytest.mark.parametrize("bits", [2, 3, 63, 64, 65, 127, 128, 500, 1024, 2048, 2049, 4096, 4097])
def test_reduce_sizes_and_edges(backend_name, bits):
    rng = random.Random(bits)
    n = rand_odd(rng, bits)
    L = nlimbs_for(n)
    for width in sorted({1, L, L + 1, 2 * L - 1, 2 * L} - {0}):
        top = min(2 ** (64 * width), n << (64 * L)) - 1
        xs = [0, 1, n - 1, top, top - 1, (n - 1) << (64 * (width - L)) if width >= L else 0]
        xs += [rng.randrange(top + 1) for _ in range(11)]
        xs = [x for x in xs if x.bit_length() <= 64 * width]
        out = reduce(ints_to_limbs(xs, width), n, backend_name=backend_name)
        assert limbs_to_ints(out) == [x % n for x in xs], width


@pytest.mark.parametrize("bits", [2, 64, 65, 1024])
def test_reduce_rejects_value_at_or_above_n_times_r(backend_name, bits):
    rng = random.Random(bits)
    n = rand_odd(rng, bits)
    L = nlimbs_for(n)
    for bad in (n << (64 * L), 2 ** (128 * L) - 1):
        x = ints_to_limbs([5, bad], 2 * L)
        with pytest.raises(ValueError, match=r"not below N \* 2\^\(64 L\)"):
            reduce(x, n, backend_name=backend_name)


def test_reduce_rejects_too_many_limbs(backend_name):
    n = (1 << 127) + 45
    with pytest.raises(ValueError, match="x has 5 limbs per number; at most 4 allowed"):
        reduce(np.zeros((1, 5), dtype=np.uint64), n, backend_name=backend_name)


@pytest.mark.parametrize("x,exc,msg", [
    (np.zeros((2, 2), dtype=np.int64), TypeError, "x must have dtype uint64"),
    (np.zeros((2, 2), dtype=np.float64), TypeError, "x must have dtype uint64"),
    (np.zeros((2, 2, 2), dtype=np.uint64), ValueError, r"x must have shape \(batch, limbs\)"),
])
def test_reduce_rejects_bad_input(backend_name, x, exc, msg):
    with pytest.raises(exc, match=msg):
        reduce(x, (1 << 127) + 45, backend_name=backend_name)


def test_reduce_empty_batch(backend_name):
    assert reduce(np.zeros((0, 3), dtype=np.uint64), 2 ** 127 + 45, backend_name=backend_name).shape == (0, 2)
