"""Limb packing helpers and the Modulus object (pure Python, no backend)."""
from __future__ import annotations

import gmpy2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyimgenc.math import Modulus, int_to_limbs, ints_to_limbs, limbs_to_ints, nlimbs_for
from pyimgenc.math.limbs import as_exponent_limbs, check_limbs


@st.composite
def ints_and_width(draw):
    width = draw(st.integers(1, 70))
    values = draw(st.lists(st.integers(0, 2 ** (64 * width) - 1), max_size=17))
    return values, width


@given(ints_and_width())
def test_ints_round_trip(case):
    values, width = case
    arr = ints_to_limbs(values, width)
    assert arr.dtype == np.uint64
    assert arr.shape == (len(values), width)
    assert arr.flags.c_contiguous
    assert limbs_to_ints(arr) == values


@given(st.integers(0, 2 ** 4200))
def test_int_round_trip_minimal_width(v):
    n = nlimbs_for(v)
    assert n == max(1, -(-v.bit_length() // 64))
    one = int_to_limbs(v, n)
    assert one.shape == (n,)
    assert limbs_to_ints(one) == [v]
    if n > 1:  # one limb fewer never suffices
        with pytest.raises(ValueError, match="does not fit"):
            int_to_limbs(v, n - 1)


def test_limbs_are_little_endian():
    assert int_to_limbs(5 + (7 << 64), 3).tolist() == [5, 7, 0]
    assert limbs_to_ints(np.array([[1, 2]], dtype=np.uint64)) == [1 + (2 << 64)]


@pytest.mark.parametrize("v,n", [(0, 1), (1, 1), (2 ** 64 - 1, 1), (2 ** 64, 2), (2 ** 128 - 1, 2),
                                 (2 ** 128, 3)])
def test_nlimbs_for_boundaries(v, n):
    assert nlimbs_for(v) == n


def test_nlimbs_for_negative():
    with pytest.raises(ValueError, match="non-negative"):
        nlimbs_for(-1)


@pytest.mark.parametrize("bad,msg", [(-1, "is negative"), (2 ** 128, "does not fit"),
                                     (-(2 ** 200), "is negative")])
def test_ints_to_limbs_rejects(bad, msg):
    with pytest.raises(ValueError, match=msg):
        ints_to_limbs([3, bad, 4], 2)


def test_empty_batch():
    arr = ints_to_limbs([], 4)
    assert arr.shape == (0, 4) and arr.dtype == np.uint64
    assert limbs_to_ints(arr) == []


@given(st.lists(st.integers(0, 2 ** 128 - 1), min_size=6, max_size=6))
def test_limbs_to_ints_flattens_row_major(values):
    arr = ints_to_limbs(values, 2).reshape(2, 3, 2)
    assert limbs_to_ints(arr) == values


def test_limbs_to_ints_rejects_scalar():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., L\)"):
        limbs_to_ints(np.uint64(3))


# --- check_limbs: the validator every primitive uses ---------------------------

@pytest.mark.parametrize("arr,exc,msg", [
    ([[1, 2]], TypeError, "numpy uint64 array"),
    (np.zeros((2, 2), dtype=np.int64), TypeError, "dtype uint64"),
    (np.zeros((2, 2), dtype=np.float64), TypeError, "dtype uint64"),
    (np.zeros((2, 2), dtype=np.uint32), TypeError, "dtype uint64"),
    (np.zeros((2, 2, 2), dtype=np.uint64), ValueError, r"shape \(batch, limbs\)"),
    (np.zeros((), dtype=np.uint64), ValueError, r"shape \(batch, limbs\)"),
    (np.zeros((2, 3), dtype=np.uint64), ValueError, "must have 2 limbs"),
])
def test_check_limbs_rejects(arr, exc, msg):
    with pytest.raises(exc, match=msg):
        check_limbs("xs", arr, nlimbs=2)


def test_check_limbs_names_argument():
    with pytest.raises(TypeError, match="^bases "):
        check_limbs("bases", np.zeros((1, 1), dtype=np.int64))


def test_check_limbs_max_limbs():
    with pytest.raises(ValueError, match="at most 4 allowed"):
        check_limbs("x", np.zeros((1, 5), dtype=np.uint64), max_limbs=4)
    assert check_limbs("x", np.zeros((1, 4), dtype=np.uint64), max_limbs=4).shape == (1, 4)


def test_check_limbs_promotes_1d_and_makes_contiguous():
    assert check_limbs("x", np.arange(3, dtype=np.uint64)).shape == (1, 3)
    strided = np.arange(12, dtype=np.uint64).reshape(3, 4)[:, ::2]
    out = check_limbs("x", strided, nlimbs=2)
    assert out.flags.c_contiguous
    assert np.array_equal(out, strided)


# --- exponents -----------------------------------------------------------------

@given(st.lists(st.integers(0, 2 ** 300), max_size=9))
def test_exponent_ints_round_trip(es):
    arr = as_exponent_limbs("e", es)
    assert arr.dtype == np.uint64 and arr.shape[0] == len(es)
    assert limbs_to_ints(arr) == es


def test_exponent_forms_agree():
    es = [0, 1, 2 ** 63, 12345]
    want = limbs_to_ints(as_exponent_limbs("e", es))
    assert limbs_to_ints(as_exponent_limbs("e", np.array(es, dtype=np.uint64))) == want
    assert limbs_to_ints(as_exponent_limbs("e", np.array(es[:2] + es[3:], dtype=np.int64))) == \
        [0, 1, 12345]
    assert limbs_to_ints(as_exponent_limbs("e", 7)) == [7]


@pytest.mark.parametrize("bad", [[-1], np.array([3, -2], dtype=np.int64), -5])
def test_negative_exponents_rejected(bad):
    with pytest.raises(ValueError, match="non-negative"):
        as_exponent_limbs("exps", bad)


# --- Modulus -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-3, -1, 0, 1, 2, 4, 2 ** 64, 2 ** 1024])
def test_modulus_rejects_even_and_small(bad):
    with pytest.raises(ValueError, match="odd integer greater than 1"):
        Modulus(bad)


@pytest.mark.parametrize("bad", [3.0, "3", None, np.float64(3.0)])
def test_modulus_rejects_non_int(bad):
    with pytest.raises(TypeError, match="modulus must be an int"):
        Modulus(bad)


def test_modulus_bit_limit():
    assert Modulus(2 ** 16384 - 1).nlimbs == 256
    with pytest.raises(ValueError, match="at most 16384"):
        Modulus(2 ** 16384 + 1)


@given(st.integers(1, 16383).flatmap(lambda b: st.integers(2 ** b, 2 ** (b + 1) - 1)).map(lambda n: n | 1))
def test_modulus_attributes(n):
    m = Modulus(n)
    assert (m.value, m.bits, m.nlimbs) == (n, n.bit_length(), nlimbs_for(n))
    assert limbs_to_ints(m.limbs) == [n]
    assert m == Modulus(gmpy2.mpz(n)) and hash(m) == hash(Modulus(n))
    assert m != Modulus(n + 2)
