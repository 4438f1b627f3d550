"""FixedBase (precomputed window tables) against Python's pow."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyimgenc.math import FixedBase, Modulus, ints_to_limbs, limbs_to_ints, nlimbs_for

BATCHES = (0, 1, 7, 8, 9, 17)


def rand_odd(rng: random.Random, bits: int) -> int:
    return rng.getrandbits(bits) | (1 << (bits - 1)) | 1


@st.composite
def fixed_base_cases(draw):
    bits = draw(st.integers(2, 1100))
    n = draw(st.integers(2 ** (bits - 1), 2 ** bits - 1)) | 1
    g = draw(st.one_of(st.sampled_from([0, 1, 2, n - 1]), st.integers(0, n - 1))) % n
    window = draw(st.integers(1, 10))
    # table size is ceil(exp_bits / w) * 2^w entries: keep wide windows to short exponents
    exp_bits = draw(st.integers(1, 600 if window <= 6 else 96))
    batch = draw(st.sampled_from(BATCHES))
    e = st.one_of(st.sampled_from([0, 1, 2 ** exp_bits - 1, 2 ** (exp_bits - 1)]),
                  st.integers(0, 2 ** exp_bits - 1))
    exps = draw(st.lists(e, min_size=batch, max_size=batch))
    return n, g, exp_bits, window, exps


@given(fixed_base_cases())
def test_fixed_base_matches_pow(kw, case):
    n, g, exp_bits, window, exps = case
    fb = FixedBase(g, n, exp_bits, window, **kw)
    out = fb.pow(exps)
    assert out.dtype == np.uint64 and out.shape == (len(exps), nlimbs_for(n))
    assert limbs_to_ints(out) == [pow(g, e, n) for e in exps]


@pytest.mark.parametrize("bits", [2, 3, 53, 64, 65, 128, 500, 1041])
@pytest.mark.parametrize("window", [1, 2, 3, 5, 8, 10])
def test_fixed_base_sizes_and_windows(kw, bits, window):
    rng = random.Random(bits * 100 + window)
    n = rand_odd(rng, bits)
    g = rng.randrange(2, n) if n > 3 else 2
    exp_bits = 130 if window < 10 else 65  # > 2 limbs / > 1 limb, not a multiple of w
    exps = [0, 1, 2, 2 ** exp_bits - 1, 2 ** (exp_bits - 1), 2 ** 64 - 1, 2 ** 64]
    exps += [rng.getrandbits(exp_bits) for _ in range(17 - len(exps))]
    fb = FixedBase(g, Modulus(n), exp_bits, window, **kw)
    for batch in BATCHES:
        got = limbs_to_ints(fb.pow(exps[:batch]))
        assert got == [pow(g, e, n) for e in exps[:batch]], batch


def test_fixed_base_exponent_forms(kw):
    rng = random.Random(11)
    n = rand_odd(rng, 300)
    g = rng.randrange(n)
    fb = FixedBase(g, n, 100, **kw)  # default window
    es = [rng.getrandbits(100) for _ in range(9)]
    want = [pow(g, e, n) for e in es]
    assert limbs_to_ints(fb.pow(es)) == want
    assert limbs_to_ints(fb.pow(ints_to_limbs(es, 2))) == want
    assert limbs_to_ints(fb.pow(ints_to_limbs(es, 5))) == want  # extra zero limbs are fine
    small = [e & 0x7FFFFFFF for e in es]
    assert limbs_to_ints(fb.pow(np.array(small, dtype=np.int64))) == [pow(g, e, n) for e in small]
    assert limbs_to_ints(fb.pow(12345)) == [pow(g, 12345, n)]


def test_fixed_base_table_bytes(kw):
    fb = FixedBase(3, 2 ** 127 + 45, 64, 4, **kw)
    if kw["backend_name"] == "python":
        assert fb.table_bytes == 0
    else:  # 16 windows of 2^4 entries, at least 2 words each
        assert fb.table_bytes >= 16 * 16 * 2 * 8


@pytest.mark.slow
def test_fixed_base_2048_bit(kw):
    rng = random.Random(2048)
    n = rand_odd(rng, 2048)
    g = rng.randrange(n)
    fb = FixedBase(g, n, 2048, **kw)  # default window (8 bits)
    es = [0, 1, 2 ** 2048 - 1] + [rng.getrandbits(2048) for _ in range(14)]
    assert limbs_to_ints(fb.pow(es)) == [pow(g, e, n) for e in es]


@pytest.mark.slow
def test_fixed_base_4096_bit_modulus(kw):
    rng = random.Random(4096)
    n = rand_odd(rng, 4097)
    g = rng.randrange(n)
    fb = FixedBase(g, n, 512, 6, **kw)
    es = [0, 2 ** 512 - 1] + [rng.getrandbits(512) for _ in range(7)]
    assert limbs_to_ints(fb.pow(es)) == [pow(g, e, n) for e in es]


# --- bad input -----------------------------------------------------------------

N_SMALL = (1 << 127) + 45


@pytest.mark.parametrize("exp_bits", [1, 7, 64, 65, 130])
def test_fixed_base_rejects_exponent_over_exp_bits(kw, exp_bits):
    fb = FixedBase(5, N_SMALL, exp_bits, 3, **kw)
    ok = 2 ** exp_bits - 1
    assert limbs_to_ints(fb.pow([ok])) == [pow(5, ok, N_SMALL)]
    with pytest.raises(ValueError, match="exceeds"):
        fb.pow([1] * 8 + [2 ** exp_bits])  # offender in the tail lane
    with pytest.raises(ValueError, match="exceeds"):
        fb.pow(ints_to_limbs([2 ** (exp_bits + 70)], 4))


@pytest.mark.parametrize("base", [N_SMALL, N_SMALL + 1, -1])
def test_fixed_base_rejects_unreduced_base(kw, base):
    with pytest.raises(ValueError, match=r"base must be in \[0, N\)"):
        FixedBase(base, N_SMALL, 64, **kw)


@pytest.mark.parametrize("exp_bits", [0, -3, 16385, True])
def test_fixed_base_rejects_bad_exp_bits(kw, exp_bits):
    with pytest.raises(ValueError, match="exp_bits must be an int in 1..16384"):
        FixedBase(3, N_SMALL, exp_bits, **kw)


@pytest.mark.parametrize("window", [-1, 13, 64])
def test_fixed_base_rejects_bad_window(kw, window):
    with pytest.raises(ValueError, match="window"):
        FixedBase(3, N_SMALL, 64, window, **kw)


@pytest.mark.parametrize("n", [0, 1, 2, 2 ** 64])
def test_fixed_base_rejects_bad_modulus(kw, n):
    with pytest.raises(ValueError, match="odd integer greater than 1"):
        FixedBase(0, n, 8, **kw)


def test_fixed_base_rejects_bad_exponents(kw):
    fb = FixedBase(3, N_SMALL, 64, **kw)
    with pytest.raises(ValueError, match="non-negative"):
        fb.pow([1, -1])
    with pytest.raises(TypeError, match="exps"):
        fb.pow(np.array([1.5, 2.0]))  # must not be truncated to 1
