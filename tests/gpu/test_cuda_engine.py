"""The CUDA engine (csrc/cuda/paillier.cu over csrc/lane/lane.hpp, driven by
pyimgenc/math/cuda.py) against the Python reference: every primitive, both arithmetics
(Montgomery modulo N and radix-n pairs for N = n^2), public and secret exponents, batches
larger than the grid, and its input checks.  Runs on the CPU stand-in everywhere and on a
device when there is one (fixture ``cuda_engine``)."""
from __future__ import annotations

import random

import gmpy2
import numpy as np
import pytest

from pyimgenc import backend
from pyimgenc.math import FixedBase, Modulus, ints_to_limbs, limbs_to_ints, multiexp, mulmod, powmod
from pyimgenc.paillier import keygen

_RNG = random.Random(18)


def _prime(bits: int) -> int:
    return int(gmpy2.next_prime(_RNG.getrandbits(bits) | (1 << (bits - 1))))


N_ODD = _prime(200) * _prime(190)                      # Montgomery modulo N (L = 7: runtime-L kernels)
_n = _prime(160) * _prime(150)
N_SQ = Modulus(_n * _n, root=_n)                        # radix-n pairs (K = 5: runtime-L kernels)
N_ODD8 = _prime(260) * _prime(250)                     # L = 8: a fixed-size instance
_n8 = _prime(260) * _prime(250)
N_SQ8 = Modulus(_n8 * _n8, root=_n8)                    # K = 8: fixed-size pairs
MODULI = [N_ODD, N_SQ, N_ODD8, N_SQ8]
IDS = ["montgomery", "pairs", "montgomery-L8", "pairs-K8"]


def _rand(m: int, k: int) -> list[int]:
    return [_RNG.randrange(m) for _ in range(k)]


@pytest.mark.parametrize("mod", MODULI, ids=IDS)
def test_powmod_matches_reference(cuda_engine, mod):
    m = mod if isinstance(mod, Modulus) else Modulus(mod)
    if isinstance(mod, Modulus):
        assert m.native.radix_limbs > 0          # the pairs arithmetic is the one under test
    xs = _rand(m.value, 40)
    es = [0, 1, 2, 3, (1 << 64) - 1, 1 << 300] + [_RNG.getrandbits(_RNG.choice([5, 64, 200, 700])) for _ in range(34)]
    got = powmod(ints_to_limbs(xs, m.nlimbs), es, m)
    assert limbs_to_ints(got) == [pow(x, e, m.value) for x, e in zip(xs, es)]
    e = _RNG.getrandbits(400)                     # one exponent shared by the batch, public and secret
    for secret in (False, True):
        got = powmod(ints_to_limbs(xs, m.nlimbs), [e], m, secret_exponent=secret)
        assert limbs_to_ints(got) == [pow(x, e, m.value) for x in xs]


def test_batch_larger_than_the_grid(cuda_engine):
    # the stand-in has one multiprocessor: 8 blocks of 128 threads, so 1500 elements stride
    m = Modulus(N_ODD)
    xs = _rand(N_ODD, 1500)
    es = [_RNG.getrandbits(40) for _ in xs]
    got = powmod(ints_to_limbs(xs, m.nlimbs), es, m)
    assert limbs_to_ints(got) == [pow(x, e, N_ODD) for x, e in zip(xs, es)]
    ys = _rand(N_ODD, 1500)
    got = mulmod(ints_to_limbs(xs, m.nlimbs), ints_to_limbs(ys, m.nlimbs), m)
    assert limbs_to_ints(got) == [x * y % N_ODD for x, y in zip(xs, ys)]


def test_mulmod_and_empty_batches(cuda_engine):
    m = Modulus(N_ODD)
    xs, ys = _rand(N_ODD, 30) + [N_ODD - 1, 0], _rand(N_ODD, 30) + [N_ODD - 1, 5]
    got = mulmod(ints_to_limbs(xs, m.nlimbs), ints_to_limbs(ys, m.nlimbs), m)
    assert limbs_to_ints(got) == [x * y % N_ODD for x, y in zip(xs, ys)]
    empty = np.zeros((0, m.nlimbs), dtype=np.uint64)
    assert powmod(empty, [3], m).shape == (0, m.nlimbs)
    assert mulmod(empty, empty, m).shape == (0, m.nlimbs)


@pytest.mark.parametrize("mod", MODULI, ids=IDS)
def test_fixed_base(cuda_engine, mod):
    m = mod if isinstance(mod, Modulus) else Modulus(mod)
    g = _RNG.randrange(2, m.value)
    fb = FixedBase(g, m, exp_bits=150, window=4)
    assert fb.table_bytes == 38 * 16 * 8 * (2 * m.native.radix_limbs or m.nlimbs)
    es = [0, 1, (1 << 150) - 1] + [_RNG.getrandbits(150) for _ in range(20)]
    assert limbs_to_ints(fb.pow(es)) == [pow(g, e, m.value) for e in es]
    with pytest.raises(ValueError, match="exceeds exp_bits"):
        fb.pow([1 << 150])


@pytest.mark.parametrize("mod", MODULI, ids=IDS)
def test_multiexp_signed(cuda_engine, mod):
    m = mod if isinstance(mod, Modulus) else Modulus(mod)
    K, M, T = 6, 25, 4
    bs = [_RNG.randrange(1, m.value) for _ in range(K)]
    bs = [b for b in bs if gmpy2.gcd(b, m.value) == 1]
    inv = [int(gmpy2.invert(b, m.value)) for b in bs]
    idx = np.array([[_RNG.randrange(len(bs)) for _ in range(T)] for _ in range(M)], dtype=np.int64)
    exps = np.array([[_RNG.randrange(-(1 << 20), 1 << 20) for _ in range(T)] for _ in range(M)], dtype=np.int64)
    exps[0] = 0
    got = multiexp(ints_to_limbs(bs, m.nlimbs), idx, exps, m, inv_bases=ints_to_limbs(inv, m.nlimbs))
    want = []
    for r in range(M):
        acc = 1
        for t in range(T):
            acc = acc * pow(bs[idx[r, t]], int(exps[r, t]), m.value) % m.value
        want.append(acc)
    assert limbs_to_ints(got) == want


def test_input_checks(cuda_engine):
    m = Modulus(N_ODD)
    bad = ints_to_limbs([N_ODD], m.nlimbs)
    with pytest.raises(ValueError, match="not reduced"):
        powmod(bad, [3], m)
    with pytest.raises(ValueError, match="not reduced"):
        mulmod(bad, bad, m)
    b = ints_to_limbs([2, 3], m.nlimbs)
    with pytest.raises(ValueError, match="index out of range"):
        multiexp(b, np.array([[0, 2]]), np.array([[1, 1]]), m)
    with pytest.raises(ValueError, match="needs inv_bases"):
        multiexp(b, np.array([[0, 1]]), np.array([[1, -1]]), m)


def test_paillier_on_the_cuda_backend_equals_the_cpu(cuda_engine):
    pk, sk = keygen(256, insecure=True)
    xs = np.array([0, 1, -1, 12345, -(1 << 60)], dtype=object)
    ct = pk.encrypt(xs)
    assert list(sk.decrypt(ct)) == list(xs)
    ct2 = ct * np.array([3, -7, 2, 0, 5], dtype=object)
    assert list(sk.decrypt(ct2)) == [0, -7, -2, 0, -5 * (1 << 60)]
    backend.set_backend("cpu")                    # the same ciphertexts decrypt alike on the CPU
    assert list(sk.decrypt(ct2)) == [0, -7, -2, 0, -5 * (1 << 60)]


def test_cuda_is_the_automatic_backend_when_a_device_is_present(cuda_engine):
    backend.set_backend(None)
    assert backend.available_backends()[0] == "cuda"
    assert backend.get_backend() == "cuda"
    assert backend.native_status()["cuda"] is True


def test_exponent_limb_counts_are_checked(cuda_engine):
    m = Modulus(N_ODD)
    b = ints_to_limbs([2, 3], m.nlimbs)
    for secret in (False, True):
        for e in (np.zeros((1, 0), dtype=np.uint64), np.ones((1, 257), dtype=np.uint64)):
            with pytest.raises(ValueError, match="1 to 256 limbs"):
                powmod(b, e, m, secret_exponent=secret)
    fb = FixedBase(3, m, exp_bits=64)
    with pytest.raises(ValueError, match="1 to 256 limbs"):
        fb.pow(np.zeros((2, 0), dtype=np.uint64))


def test_secret_moduli_constants_die_with_the_key(cuda_engine):
    import gc
    import weakref

    from pyimgenc.math import cuda
    pk, sk = keygen(256, insecure=True)
    assert list(sk.decrypt(pk.encrypt(np.array([5, -6])))) == [5, -6]
    secret = {sk.p * sk.p, sk.q * sk.q}
    held = [weakref.ref(d) for d in gc.get_objects() if type(d) is cuda._DevModulus
            and int.from_bytes(np.asarray(d.mont[:d.L]).tobytes(), "little") in secret]
    assert len(held) == 2                                  # decryption ran on the device, mod p^2 and q^2
    del sk
    gc.collect()
    assert all(r() is None for r in held)                  # nothing global kept p^2, q^2 (or p, q)
