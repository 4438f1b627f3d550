"""Key generation, encryption/decryption round trips, DJN structure, phe interop."""
from __future__ import annotations

import gmpy2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from phe import paillier as phe

from pyimgenc.paillier import (EncryptedTensor, PublicKey, SecretKey, decrypt, encrypt, keygen)

HYP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_keygen_structure(keypair):
    pk, sk = keypair
    assert pk.n.bit_length() == pk.bits == 256
    assert sk.p * sk.q == pk.n and sk.p != sk.q
    assert gmpy2.is_prime(sk.p) and gmpy2.is_prime(sk.q)
    assert sk.p.bit_length() == sk.q.bit_length() == 128
    assert pk.g == pk.n + 1 and pk.nsquare == pk.n ** 2
    assert gmpy2.gcd(pk.n, (sk.p - 1) * (sk.q - 1)) == 1
    assert sk.public_key is pk


def test_keygen_rejects_bad_sizes():
    with pytest.raises(ValueError, match="insecure=True"):
        keygen(1024)
    with pytest.raises(ValueError, match="minimum of 128"):
        keygen(64, insecure=True)
    with pytest.raises(ValueError, match="even"):
        keygen(257, insecure=True)
    with pytest.raises(TypeError, match="bits must be an int"):
        keygen(2048.0)


def test_public_key_equality_is_by_n(keypair, other_keypair):
    pk, _ = keypair
    same = PublicKey(pk.n)  # fresh hs, same n
    assert same == pk and hash(same) == hash(pk) and same.hs != pk.hs
    assert pk != other_keypair[0]


def test_secret_key_rejects_wrong_factors(keypair, other_keypair):
    pk, sk = keypair
    with pytest.raises(ValueError, match="p \\* q == n"):
        SecretKey(pk, sk.p, other_keypair[1].q)
    with pytest.raises(TypeError, match="public_key"):
        SecretKey(pk.n, sk.p, sk.q)


def test_hs_is_an_encryption_of_zero(on_backend, keypair):
    pk, sk = keypair
    ct = EncryptedTensor.from_ints(pk, [pk.hs, pow(pk.hs, 12345, pk.nsquare)], (2,))
    assert sk.decrypt(ct).tolist() == [0, 0]


def test_raw_encrypt_known_answer(on_backend, keypair):
    pk, sk = keypair
    m = [0, 5, -5, (pk.n - 1) // 2]
    det = pk.raw_encrypt(m).to_ints()
    assert det == [(1 + (v % pk.n) * pk.n) % pk.nsquare for v in m]
    r = [0, 1, 2**pk.r_bits - 1, 2**(pk.r_bits + 40)]  # the last one exceeds the table
    got = pk.raw_encrypt(m, r).to_ints()
    assert got == [c * pow(pk.hs, ri, pk.nsquare) % pk.nsquare for c, ri in zip(det, r)]
    assert sk.decrypt(pk.raw_encrypt(m, r)).tolist() == m
    with pytest.raises(ValueError, match="non-negative"):
        pk.raw_encrypt([1], [-1])


def test_encrypt_is_randomised(on_backend, keypair):
    pk, sk = keypair
    a, b = pk.encrypt([7, 7]).to_ints()
    assert a != b
    assert sk.decrypt(EncryptedTensor.from_ints(pk, [a, b], (2,))).tolist() == [7, 7]


@HYP
@given(x=hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
def test_round_trip_int64(on_backend, keypair, x):
    pk, sk = keypair
    got = sk.decrypt(pk.encrypt(x))
    assert got.dtype == np.int64 and got.shape == x.shape
    np.testing.assert_array_equal(got, x)


@HYP
@given(vals=st.lists(st.integers(), min_size=1, max_size=6))
def test_round_trip_python_ints(on_backend, keypair512, vals):
    pk, sk = keypair512
    bound = (pk.n - 1) // 2
    vals = [max(-bound, min(bound, v * 2**200)) for v in vals]
    x = np.array(vals, dtype=object)
    got = decrypt(sk, encrypt(pk, x))
    assert [int(v) for v in got] == vals


def test_plaintext_range_boundaries(on_backend, keypair, exact):
    pk, sk = keypair
    bound = (pk.n - 1) // 2
    got = sk.decrypt(pk.encrypt(np.array([bound, -bound, 0], dtype=object)))
    assert got.dtype == object
    exact(got, [bound, -bound, 0])
    with pytest.raises(ValueError, match="outside the plaintext range"):
        pk.encrypt([bound + 1])
    with pytest.raises(ValueError, match="outside the plaintext range"):
        pk.encrypt(np.array([-bound - 1], dtype=object))


def test_scalar_and_list_inputs(keypair):
    pk, sk = keypair
    assert sk.decrypt(pk.encrypt(-3)).shape == ()
    assert int(sk.decrypt(pk.encrypt(-3))) == -3
    assert sk.decrypt(pk.encrypt([[1, 2], [3, 4]])).tolist() == [[1, 2], [3, 4]]
    assert sk.decrypt(pk.encrypt(np.array([True, False]))).tolist() == [1, 0]
    assert sk.decrypt(pk.encrypt(np.array([2**64 - 1], dtype=np.uint64))).tolist() == [2**64 - 1]
    assert sk.decrypt(pk.encrypt(np.zeros((0, 3), np.int64))).shape == (0, 3)


def _phe_keys(pk, sk):
    ppk = phe.PaillierPublicKey(pk.n)
    return ppk, phe.PaillierPrivateKey(ppk, sk.p, sk.q)


def test_phe_decrypts_ours(on_backend, keypair512):
    pk, sk = keypair512
    ppk, psk = _phe_keys(pk, sk)
    x = [0, 1, -1, 123456789, -(2**100)]
    ct = pk.encrypt(np.array(x, dtype=object))
    assert [psk.decrypt(phe.EncryptedNumber(ppk, c)) for c in ct.to_ints()] == x
    summed = (ct * 3 + 1).to_ints()
    assert [psk.decrypt(phe.EncryptedNumber(ppk, c)) for c in summed] == [3 * v + 1 for v in x]


def test_we_decrypt_phe(on_backend, keypair512):
    pk, sk = keypair512
    ppk, _ = _phe_keys(pk, sk)
    x = [0, 42, -42, 2**150, -(2**150)]
    cs = [ppk.encrypt(v).ciphertext() for v in x]
    ct = EncryptedTensor.from_ints(pk, cs, (5,))
    assert [int(v) for v in sk.decrypt(ct)] == x
    assert sk.decrypt(ct.sum()).tolist() == sum(x)


@pytest.mark.slow
@pytest.mark.parametrize("bits", [2048, 3072])
def test_full_size_round_trip_and_interop(bits):
    pk, sk = keygen(bits)
    assert pk.n.bit_length() == bits
    x = np.array([-(2**62), -1, 0, 1, 2**62], dtype=np.int64)
    ct = pk.encrypt(x)
    np.testing.assert_array_equal(sk.decrypt(ct), x)
    np.testing.assert_array_equal(sk.decrypt(ct * -2 + ct), -x)
    ppk, psk = _phe_keys(pk, sk)
    assert [psk.decrypt(phe.EncryptedNumber(ppk, c)) for c in ct.to_ints()] == x.tolist()
    back = EncryptedTensor.from_ints(pk, [ppk.encrypt(int(v)).ciphertext() for v in x], (5,))
    np.testing.assert_array_equal(sk.decrypt(back), x)
