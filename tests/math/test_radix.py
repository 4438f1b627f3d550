"""The radix-n path modulo N = n^2 (``Modulus(n*n, root=n)``) against the oracle.

On the IFMA path x is held as ``a + b n`` with lazily reduced a, b and Barrett
splits; these tests hit its edges: values that are multiples of n, n^2 - 1,
tiny and huge exponents, batch tails, every primitive that uses it, and sizes
where the representation is (not) eligible.
"""
from __future__ import annotations

import random

import gmpy2
import numpy as np
import pytest
from hypothesis import given, strategies as st

from pyimgenc import math as pm

SIZES = [60, 100, 101, 130, 530, 1000, 1024, 1030, 1036, 1037, 1536, 2048]


def _odd(bits: int, rng: random.Random) -> int:
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1))


def _edge_values(n: int, rng: random.Random, count: int) -> list[int]:
    n2 = n * n
    pool = [0, 1, 2, n - 1, n, n + 1, 2 * n, 3 * n - 1, 4 * n + 3, n2 - 1, n2 - n, n2 - 2 * n - 1,
            (n - 1) * n + n - 1]
    return [rng.choice(pool) if rng.random() < 0.5 else rng.randrange(n2) for _ in range(count)]


def _modulus(n: int) -> pm.Modulus:
    m = pm.Modulus(n * n, root=n, radix_min_digits=2)
    return m


@pytest.mark.parametrize("bits", SIZES)
def test_radix_eligible_sizes_use_radix(bits):
    rng = random.Random(bits)
    m = _modulus(_odd(bits, rng))
    k = (bits + 51) // 52
    assert m.native.radix_digits == (k if 52 * k - bits >= 4 else 0)
    limbs = (bits + 63) // 64  # the portable paths' pairs: from 4 limbs of n
    assert m.native.radix_limbs == (limbs if limbs >= 4 else 0)


@pytest.mark.parametrize("n", [2 ** 1024 - 3, 2 ** 1023 + 1, 2 ** 2048 - 2 ** 64 - 1, 2 ** 1024 - 1])
def test_portable_pairs_at_the_bounds(n, kw):
    # n close to R = 2^(64 K) (the corrections of fold() at their limits), n just above a
    # power of two, and n = R - 1 (pairs refused: R > n + 1 is needed; Montgomery instead)
    m = _modulus(n)
    assert m.native.radix_limbs == (0 if n == 2 ** 1024 - 1 else (n.bit_length() + 63) // 64)
    rng = random.Random(n)
    xs = _edge_values(n, rng, 12) + [n * n - 1, n * (n - 1), n - 1]
    es = [3, 2 ** 64 + 1, rng.getrandbits(n.bit_length())]
    x = pm.ints_to_limbs(xs, m.nlimbs)
    for e in es:
        got = pm.limbs_to_ints(pm.powmod(x, [e], m, **kw))
        assert got == [pow(a, e, n * n) for a in xs]
    secret = pm.limbs_to_ints(pm.powmod(x, [es[-1]], m, secret_exponent=True, **kw)) if kw["backend_name"] == "cpu" else None
    assert secret in (None, [pow(a, es[-1], n * n) for a in xs])
    assert pm.limbs_to_ints(pm.mulmod(x, x[::-1].copy(), m, **kw)) == [a * b % (n * n) for a, b in zip(xs, xs[::-1])]


@pytest.mark.parametrize("bits", SIZES)
@pytest.mark.parametrize("batch", [1, 8, 9, 17])
def test_radix_powmod_matches_pow(bits, batch, kw):
    rng = random.Random(bits * 100 + batch)
    n = _odd(bits, rng)
    m = _modulus(n)
    xs = _edge_values(n, rng, batch)
    es = [rng.choice([0, 1, 2, 3, 255, rng.getrandbits(64), rng.getrandbits(bits)]) for _ in range(batch)]
    x = pm.ints_to_limbs(xs, m.nlimbs)
    got = pm.limbs_to_ints(pm.powmod(x, pm.ints_to_limbs(es, pm.nlimbs_for(max(es + [1]))), m, **kw))
    assert got == [pow(a, e, n * n) for a, e in zip(xs, es)]
    shared = pm.limbs_to_ints(pm.powmod(x, [es[-1]], m, **kw))
    assert shared == [pow(a, es[-1], n * n) for a in xs]


@pytest.mark.parametrize("bits", [130, 1024, 2048])
def test_radix_mulmod_fixedbase_multiexp(bits, kw):
    rng = random.Random(bits)
    n = _odd(bits, rng)
    N = n * n
    m = _modulus(n)
    xs = [v for v in _edge_values(n, rng, 40) if gmpy2.gcd(v, n) == 1][:11]
    x = pm.ints_to_limbs(xs, m.nlimbs)
    y = x[::-1].copy()
    assert pm.limbs_to_ints(pm.mulmod(x, y, m, **kw)) == [a * b % N for a, b in zip(xs, xs[::-1])]
    fb = pm.FixedBase(xs[-1], m, 200, 5, **kw)
    es = [rng.getrandbits(200) for _ in range(11)] + [0]
    assert pm.limbs_to_ints(fb.pow(es)) == [pow(xs[-1], e, N) for e in es]
    K = len(xs)
    idx = np.array([[rng.randrange(K) for _ in range(6)] for _ in range(9)], dtype=np.int64)
    ex = np.array([[rng.randrange(-999, 1000) for _ in range(6)] for _ in range(9)], dtype=np.int64)
    inv = pm.ints_to_limbs([int(gmpy2.invert(v, N)) for v in xs], m.nlimbs)
    got = pm.limbs_to_ints(pm.multiexp(x, idx, ex, m, inv_bases=inv, **kw))
    ref = []
    for row_i, row_e in zip(idx.tolist(), ex.tolist()):
        acc = 1
        for i, e in zip(row_i, row_e):
            acc = acc * pow(xs[i], e, N) % N
        ref.append(acc)
    assert got == ref


@given(bits=st.integers(min_value=54, max_value=1300), data=st.data())
def test_radix_random_sizes(bits, data, kw):
    n = data.draw(st.integers(min_value=2 ** (bits - 1), max_value=2 ** bits - 1)) | 1
    m = _modulus(n)
    x = data.draw(st.lists(st.integers(min_value=0, max_value=n * n - 1), min_size=1, max_size=10))
    e = data.draw(st.integers(min_value=0, max_value=2 ** 130))
    got = pm.limbs_to_ints(pm.powmod(pm.ints_to_limbs(x, m.nlimbs), [e], m, **kw))
    assert got == [pow(v, e, n * n) for v in x]


def test_root_must_square_to_modulus():
    with pytest.raises(ValueError, match="root"):
        pm.Modulus(15 * 15, root=13)


def test_fixed_base_table_built_before_the_root_is_refused():
    # The pairs change the table layout: a table built on the bare modulus must not be read
    # as pairs once the root is set (only reachable through the private core).
    from pyimgenc import _ext
    if not _ext.HAVE_CORE:
        pytest.skip(f"native core not importable: {_ext.CORE_ERROR}")
    n = 2 ** 195 + 12345
    N = n * n
    nat = _ext._core.Modulus(pm.ints_to_limbs([N], pm.nlimbs_for(N))[0])
    fb = _ext._core.FixedBase(nat, pm.ints_to_limbs([3], pm.nlimbs_for(N))[0], 64, 4, 0, 1)
    ref = pm.Modulus(N, root=n, radix_min_digits=2)  # the constants set_root takes, computed by Python
    k = (n.bit_length() + 51) // 52
    mu = (1 << (104 * k)) // n
    r1 = (1 << (52 * k)) % N
    r2 = r1 * r1 % N
    pairs = [pm.ints_to_limbs([v], pm.nlimbs_for(v))[0] for v in (r1 % n, r1 // n, r2 % n, r2 // n)]
    nat.set_root(pm.ints_to_limbs([n], pm.nlimbs_for(n))[0], pm.ints_to_limbs([mu], pm.nlimbs_for(mu))[0], 2, pairs)
    assert nat.radix_limbs == ref.native.radix_limbs == 4
    with pytest.raises(ValueError, match="built before the modulus got its root"):
        fb.pow(pm.ints_to_limbs([5], 1), 1)
