"""Bad inputs raise TypeError/ValueError naming the problem, never a wrong answer."""
from __future__ import annotations

import numpy as np
import pytest

from pyimgenc.paillier import EncryptedTensor, PublicKey, concatenate, decrypt, encrypt


def test_mixing_keys(keypair, other_keypair):
    (pk, sk), (pk2, sk2) = keypair, other_keypair
    a, b = pk.encrypt([1, 2]), pk2.encrypt([1, 2])
    for op in (lambda: a + b, lambda: a - b, lambda: concatenate([a, b])):
        with pytest.raises(ValueError, match="different public keys"):
            op()
    with pytest.raises(ValueError, match="different public key"):
        sk2.decrypt(a)
    with pytest.raises(ValueError, match="different public keys"):
        pk.encrypt(np.zeros((1, 2, 2), np.int64)).conv2d(np.ones((1, 1, 1, 1), np.int64), bias=pk2.encrypt([1]))


def test_float_inputs_are_type_errors(keypair):
    pk, sk = keypair
    e = pk.encrypt([1, 2])
    with pytest.raises(TypeError, match="x must be an integer array"):
        pk.encrypt(np.array([1.5]))
    with pytest.raises(TypeError, match="x must be an integer array"):
        pk.encrypt(1.0)
    with pytest.raises(TypeError, match="other must be an integer array"):
        e + 1.5
    with pytest.raises(TypeError, match="other must be an integer array"):
        e - np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="other must be an integer array"):
        e * 2.0
    with pytest.raises(TypeError, match="other must be an integer array"):
        e @ np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="other must contain only integers"):
        e + np.array([1, "a"], dtype=object)
    with pytest.raises(TypeError, match="bool"):
        pk.encrypt(True)
    with pytest.raises(TypeError, match="m must"):
        pk.raw_encrypt([0.5])


def test_out_of_range_plaintexts(keypair):
    pk, _ = keypair
    e = pk.encrypt([1])
    with pytest.raises(ValueError, match=r"outside the plaintext range \(-n/2, n/2\)"):
        pk.encrypt([pk.n])
    with pytest.raises(ValueError, match="other value .* outside the plaintext range"):
        e + np.array([pk.n // 2 + 1], dtype=object)
    with pytest.raises(ValueError, match="outside the plaintext range"):
        e - np.array([-(pk.n // 2) - 1], dtype=object)


def test_unsupported_products(keypair):
    pk, _ = keypair
    e = pk.encrypt([1, 2])
    with pytest.raises(TypeError, match="SMP"):
        e * e
    with pytest.raises(TypeError, match="SMP"):
        e @ e
    with pytest.raises(ValueError, match="cannot be broadcast"):
        e + pk.encrypt([1, 2, 3])
    with pytest.raises(ValueError, match="cannot be broadcast"):
        e * np.array([1, 2, 3])


def test_from_ints_validation(keypair):
    pk, _ = keypair
    with pytest.raises(ValueError, match=r"index 1 is not in \(0, n\^2\)"):
        EncryptedTensor.from_ints(pk, [1, 0], (2,))
    with pytest.raises(ValueError, match=r"index 0 is not in \(0, n\^2\)"):
        EncryptedTensor.from_ints(pk, [pk.nsquare], (1,))
    with pytest.raises(ValueError, match="do not fill shape"):
        EncryptedTensor.from_ints(pk, [1, 2, 3], (2, 2))
    with pytest.raises(TypeError, match="index 0 is float"):
        EncryptedTensor.from_ints(pk, [1.0], (1,))


def test_decrypt_validation(keypair):
    pk, sk = keypair
    with pytest.raises(TypeError, match="EncryptedTensor"):
        sk.decrypt([1, 2])
    with pytest.raises(TypeError, match="secret_key"):
        decrypt(pk, pk.encrypt([1]))
    with pytest.raises(TypeError, match="public_key"):
        encrypt(sk, [1])
    # a tensor built from unchecked limbs holding 0 is refused at decryption
    raw = EncryptedTensor(pk, np.zeros((1, pk.ct_limbs), np.uint64))
    with pytest.raises(ValueError, match=r"not in \[1, n\^2\)"):
        sk.decrypt(raw)
    with pytest.raises(ValueError, match="not invertible"):
        -EncryptedTensor.from_ints(pk, [pk.n], (1,))


def test_constructor_validation(keypair):
    pk, _ = keypair
    with pytest.raises(TypeError, match="uint64"):
        EncryptedTensor(pk, np.zeros((1, pk.ct_limbs), np.int64))
    with pytest.raises(ValueError, match="limbs must have shape"):
        EncryptedTensor(pk, np.zeros((1, pk.ct_limbs + 1), np.uint64))
    with pytest.raises(ValueError, match="odd"):
        PublicKey(10)
    with pytest.raises(TypeError, match="n must be an int"):
        PublicKey(10.0)
    with pytest.raises(ValueError, match="hs must be a unit"):
        PublicKey(pk.n, pk.n)
