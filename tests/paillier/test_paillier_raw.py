"""The raw layer for protocols (raw_obfuscators, raw_add_plain, linalg.multiexp,
rerandomize with a pool, add_mod) against Python-int references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyimgenc.math import ints_to_limbs, limbs_to_ints
from pyimgenc.paillier import EncryptedTensor, ObfuscatorPool, linalg

HYP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# plaintext operands of every size and sign: int64 edges, around n (256 bits), far beyond
anyint = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**600), 2**600),
                   st.sampled_from([0, 1, -1, 2**63, -(2**63), 2**64 + 5]))


def ciphertexts(pk, count, seed):
    """``count`` residues mod n^2 (raw operands need not be fresh encryptions)."""
    rng = np.random.default_rng(seed)
    return [int.from_bytes(rng.bytes(8 * pk.ct_limbs), "little") % pk.nsquare for _ in range(count)]


def centred(v, n):
    v %= n
    return v - n if v > n // 2 else v


# ----------------------------------------------------------------------------- raw_add_plain

@HYP
@given(m=st.lists(anyint, min_size=0, max_size=8), seed=st.integers(0, 2**32 - 1), as_array=st.booleans())
def test_raw_add_plain_is_c_times_1_plus_mn(on_backend, keypair, m, seed, as_array):
    pk, _ = keypair
    n, n2 = pk.n, pk.nsquare
    cs = ciphertexts(pk, len(m), seed)
    c = ints_to_limbs(cs, pk.ct_limbs) if cs else np.zeros((0, pk.ct_limbs), np.uint64)
    arg = np.array(m, dtype=object) if as_array else m
    out = pk.raw_add_plain(c, arg)
    assert out.shape == c.shape and out.dtype == np.uint64
    assert limbs_to_ints(out) == [ci * (1 + mi * n) % n2 for ci, mi in zip(cs, m)]
    assert limbs_to_ints(c) == cs                                   # the input is not modified


def test_raw_add_plain_takes_int64_arrays_and_shifts_plaintexts(on_backend, keypair):
    pk, sk = keypair
    x = np.array([5, -7, 0, 2**62], dtype=np.int64)
    m = np.array([-(2**63), 2**63 - 1, 3, -1], dtype=np.int64)
    e = pk.encrypt(x)
    out = EncryptedTensor(pk, pk.raw_add_plain(np.ascontiguousarray(e.limbs), m))
    assert list(sk.decrypt(out)) == [centred(int(a) + int(b), pk.n) for a, b in zip(x, m)]
    assert out.to_ints() == [c * (1 + int(b) * pk.n) % pk.nsquare for c, b in zip(e.to_ints(), m)]


def test_raw_add_plain_refuses_bad_arguments(keypair):
    pk, _ = keypair
    c = np.ascontiguousarray(pk.encrypt([1, 2]).limbs)
    with pytest.raises(TypeError, match="c must be a uint64"):
        pk.raw_add_plain(c.astype(np.int64), [1, 2])
    with pytest.raises(TypeError, match="c must be a uint64"):
        pk.raw_add_plain(pk.encrypt([1, 2]).to_ints(), [1, 2])
    with pytest.raises(ValueError, match=r"c must have shape \(B, "):
        pk.raw_add_plain(c[:, :-1], [1, 2])
    with pytest.raises(ValueError, match="m must hold one integer per row"):
        pk.raw_add_plain(c, [1, 2, 3])
    with pytest.raises(TypeError, match="m must"):
        pk.raw_add_plain(c, [1.5, 2])
    big = ints_to_limbs([pk.nsquare, 1], pk.ct_limbs)
    with pytest.raises(ValueError, match="c: row 0 is not below n"):
        pk.raw_add_plain(big, [1, 2])


# ----------------------------------------------------------------------------- raw_obfuscators

def test_raw_obfuscators_are_fresh_encryptions_of_zero(on_backend, keypair):
    pk, sk = keypair
    obf = pk.raw_obfuscators(6)
    assert obf.shape == (6, pk.ct_limbs) and obf.dtype == np.uint64
    vals = limbs_to_ints(obf)
    assert len(set(vals)) == 6 and all(0 < v < pk.nsquare and v != 1 for v in vals)
    assert list(sk.decrypt(EncryptedTensor(pk, obf))) == [0] * 6
    assert pk.raw_obfuscators(0).shape == (0, pk.ct_limbs)
    # a row of the pool with raw_add_plain is a fresh encryption of m
    enc = EncryptedTensor(pk, pk.raw_add_plain(obf, [3, -4, 2**70, 0, 1, -1]))
    assert list(sk.decrypt(enc)) == [3, -4, 2**70, 0, 1, -1]


def test_statistical_obfuscators_use_full_size_exponents(keypair, monkeypatch):
    """statistical=True draws r of |n| + 128 bits (checked by recomputing hs**r from the
    exponents drawn), and the rows are still encryptions of zero."""
    from pyimgenc.paillier import keys as keys_mod
    pk, sk = keypair
    drawn = []
    real = keys_mod.PublicKey._random_r

    def spy(self, count, bits=None):
        r = real(self, count, bits)
        drawn.append((bits, limbs_to_ints(r)))
        return r

    monkeypatch.setattr(keys_mod.PublicKey, "_random_r", spy)
    obf = pk.raw_obfuscators(64, statistical=True)
    bits, rs = drawn[-1]
    assert bits == pk.bits + keys_mod.STATISTICAL_R_EXTRA
    assert max(rs).bit_length() > pk.bits + 100            # full size, not DJN's |n|/2 bits
    assert limbs_to_ints(obf) == [pow(pk.hs, r, pk.nsquare) for r in rs]
    assert list(sk.decrypt(EncryptedTensor(pk, obf))) == [0] * 64
    pk.raw_obfuscators(8)
    assert drawn[-1][0] == pk.r_bits and max(drawn[-1][1]).bit_length() <= pk.r_bits


@pytest.mark.parametrize("count, exc", [(-1, ValueError), (2.0, TypeError), (True, TypeError), ("3", TypeError)])
def test_raw_obfuscators_refuses_bad_counts(keypair, count, exc):
    pk, _ = keypair
    with pytest.raises(exc, match="count must"):
        pk.raw_obfuscators(count)


# ----------------------------------------------------------------------------- rerandomize with a pool

@HYP
@given(x=st.lists(st.integers(-(2**40), 2**40), min_size=0, max_size=6))
def test_rerandomize_uses_exactly_the_pool_given(on_backend, keypair, x):
    pk, sk = keypair
    e = pk.encrypt(np.array(x, dtype=np.int64)).reshape(-1, 1) if x else pk.encrypt(np.zeros((0, 1), np.int64))
    pool = pk.raw_obfuscators(len(x))
    out = e.rerandomize(pool)
    assert out.shape == e.shape
    assert out.to_ints() == [c * r % pk.nsquare for c, r in zip(e.to_ints(), limbs_to_ints(pool))]
    assert [int(v) for v in sk.decrypt(out).ravel()] == x
    if x:
        assert set(out.to_ints()).isdisjoint(e.to_ints())
        fresh = e.rerandomize()
        assert [int(v) for v in sk.decrypt(fresh).ravel()] == x and fresh.to_ints() != out.to_ints()


def test_rerandomize_refuses_a_bad_pool(keypair):
    pk, _ = keypair
    e = pk.encrypt([1, 2, 3])
    with pytest.raises(ValueError, match=r"obfuscators must have shape \(3, "):
        e.rerandomize(pk.raw_obfuscators(2))
    with pytest.raises(TypeError, match="obfuscators must be a uint64"):
        e.rerandomize(pk.raw_obfuscators(3).astype(np.int64))
    pool = pk.raw_obfuscators(3)
    pool[1] = 0
    with pytest.raises(ValueError, match="obfuscators: row 1 is not in"):
        e.rerandomize(pool)


def test_obfuscator_pool_hands_out_encryptions_of_zero_once(keypair):
    pk, sk = keypair
    for statistical in (False, True):
        pool = ObfuscatorPool(pk, statistical=statistical, max_rows=8)
        assert pool.fill(5) == 5 and pool.fill(3) == 5 and pool.fill(100) == 8   # tops up, never past the cap
        rows = pool.take(10)                                  # 8 held, 2 drawn now
        assert rows.shape == (10, pk.ct_limbs) and len(pool) == 0 and pool.drawn_late == 2
        assert len({r.tobytes() for r in rows}) == 10         # each row once
        assert [int(v) for v in sk.decrypt(EncryptedTensor(pk, rows)).ravel()] == [0] * 10
        out = pk.encrypt([7, -7]).rerandomize(pool.take(2))
        assert [int(v) for v in sk.decrypt(out).ravel()] == [7, -7]
    with pytest.raises(ValueError, match="non-negative"):
        ObfuscatorPool(pk).fill(-1)
    with pytest.raises(TypeError, match="PublicKey"):
        ObfuscatorPool(sk)


# ----------------------------------------------------------------------------- add_mod

@HYP
@given(m=st.lists(anyint, min_size=3, max_size=3))
def test_add_mod_adds_any_integers_mod_n(on_backend, keypair, m):
    pk, sk = keypair
    x = np.array([[1, -2, 3], [40, 50, -60]], dtype=np.int64)
    e = pk.encrypt(x)
    out = e.add_mod(m)                                              # broadcast over the rows
    assert out.shape == (2, 3)
    want = [centred(int(v) + mi, pk.n) for row in x for v, mi in zip(row, m)]
    assert [int(v) for v in sk.decrypt(out).ravel()] == want
    ct = e.to_ints()
    assert out.to_ints() == [c * (1 + m[i % 3] * pk.n) % pk.nsquare for i, c in enumerate(ct)]


def test_add_mod_refuses_non_integers(keypair):
    pk, _ = keypair
    e = pk.encrypt([1, 2])
    with pytest.raises(TypeError, match="add_mod adds plaintext integers"):
        e.add_mod(e)
    with pytest.raises(TypeError, match="m must"):
        e.add_mod([0.5, 1])
    with pytest.raises(ValueError, match="cannot be broadcast"):
        e.add_mod([1, 2, 3])
    with pytest.raises(ValueError, match="outside the plaintext range"):   # + keeps its range check
        e + pk.n


# ----------------------------------------------------------------------------- linalg.multiexp

def multiexp_ref(bases, idx, exps, n2):
    out = []
    for row_i, row_e in zip(idx, exps):
        acc = 1
        for i, e in zip(row_i, row_e):
            if i >= 0:
                acc = acc * pow(bases[i], int(e), n2) % n2
        out.append(acc)
    return out


big_exp = st.one_of(st.integers(-(2**20), 2**20), st.integers(-(2**300), 2**300),
                    st.sampled_from([0, 2**63 - 1, -(2**63) + 1, -(2**63), 2**63, -(2**64)]))


@HYP
@given(k=st.integers(1, 5), m=st.integers(0, 4), t=st.integers(0, 4), data=st.data())
def test_multiexp_any_signed_exponents_and_skipped_indices(on_backend, keypair, k, m, t, data):
    pk, _ = keypair
    bases = pk.encrypt(np.arange(1, k + 1)).to_ints()            # units mod n^2: inverses exist
    idx = np.array(data.draw(st.lists(st.lists(st.integers(-1, k - 1), min_size=t, max_size=t),
                                      min_size=m, max_size=m)), dtype=np.int64).reshape(m, t)
    exps = data.draw(st.lists(st.lists(big_exp, min_size=t, max_size=t), min_size=m, max_size=m))
    e = np.empty((m, t), dtype=object)
    e.ravel()[:] = [v for row in exps for v in row]
    out = linalg.multiexp(pk, ints_to_limbs(bases, pk.ct_limbs), idx, e)
    assert out.shape == (m, pk.ct_limbs)
    assert limbs_to_ints(out) == multiexp_ref(bases, idx, e, pk.nsquare)


@HYP
@given(data=st.data())
def test_multiexp_int64_path_equals_the_object_path(on_backend, keypair, data):
    pk, sk = keypair
    x = np.arange(-3, 3)
    bases = np.ascontiguousarray(pk.encrypt(x).limbs)
    idx = np.array(data.draw(st.lists(st.integers(-1, 5), min_size=12, max_size=12))).reshape(3, 4)
    w = np.array(data.draw(st.lists(st.integers(-(2**62), 2**62), min_size=12, max_size=12)),
                 dtype=np.int64).reshape(3, 4)
    fast = linalg.multiexp(pk, bases, idx, w)
    assert limbs_to_ints(fast) == limbs_to_ints(linalg.multiexp(pk, bases, idx, w.astype(object).tolist()))
    assert limbs_to_ints(fast) == multiexp_ref(limbs_to_ints(bases), idx, w, pk.nsquare)
    want = [centred(sum(int(x[i]) * int(v) for i, v in zip(ri, rw) if i >= 0), pk.n) for ri, rw in zip(idx, w)]
    assert list(sk.decrypt(EncryptedTensor(pk, fast))) == want


def test_multiexp_edge_shapes(keypair):
    pk, _ = keypair
    bases = np.ascontiguousarray(pk.encrypt([2, 3]).limbs)
    assert linalg.multiexp(pk, bases, np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64)).shape == (0, pk.ct_limbs)
    assert limbs_to_ints(linalg.multiexp(pk, bases, np.zeros((2, 0), np.int64), np.zeros((2, 0), np.int64))) == [1, 1]
    none = np.zeros((0, pk.ct_limbs), np.uint64)
    assert limbs_to_ints(linalg.multiexp(pk, none, np.full((2, 3), -1), np.full((2, 3), 2**70, dtype=object))) == [1, 1]


def test_multiexp_refuses_bad_arguments(keypair):
    pk, _ = keypair
    bases = np.ascontiguousarray(pk.encrypt([2, 3]).limbs)
    idx = np.array([[0, 1]])
    with pytest.raises(ValueError, match=r"idx: index 2 is outside \[-1, 2\)"):
        linalg.multiexp(pk, bases, np.array([[0, 2]]), [[1, 1]])
    with pytest.raises(ValueError, match=r"idx: index -2 is outside"):
        linalg.multiexp(pk, bases, np.array([[-2, 0]]), [[1, 1]])
    with pytest.raises(ValueError, match="exps must have idx's shape"):
        linalg.multiexp(pk, bases, idx, [[1, 1, 1]])
    with pytest.raises(TypeError, match="exps must"):
        linalg.multiexp(pk, bases, idx, [[1.0, 1]])
    with pytest.raises(TypeError, match="idx must be a 2-D integer array"):
        linalg.multiexp(pk, bases, np.array([[0.0, 1.0]]), [[1, 1]])
    with pytest.raises(TypeError, match="bases must be a uint64"):
        linalg.multiexp(pk, bases.astype(np.int64), idx, [[1, 1]])
    with pytest.raises(ValueError, match=r"bases must have shape \(K, "):
        linalg.multiexp(pk, bases[:, :-1], idx, [[1, 1]])
