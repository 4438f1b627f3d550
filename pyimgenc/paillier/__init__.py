"""Paillier encryption (g = n + 1) over batched limb arithmetic.

* :func:`keygen` -> (:class:`PublicKey`, :class:`SecretKey`)
* :class:`EncryptedTensor` — n-dimensional ciphertext arrays with homomorphic
  ``+ - * @ sum conv2d``
* :func:`encode_fixed` / :func:`decode_fixed` — fixed-point reals with an explicit scale
* ``to_bytes`` / ``from_bytes`` on keys and tensors — versioned, checksummed format
* the raw layer for protocols — ``PublicKey.raw_encrypt`` / ``raw_obfuscators`` /
  ``raw_add_plain``, :class:`ObfuscatorPool` (randomness drawn ahead, spent once),
  ``EncryptedTensor.rerandomize(obfuscators)`` / ``add_mod`` and
  :func:`pyimgenc.paillier.linalg.multiexp` (signed exponents of any size)

Layout and formats: ``docs/paillier.md``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .encoding import decode_fixed, encode_fixed
from .keys import PublicKey, SecretKey, keygen
from .limits import DEFAULT_KEY_BITS, LARGE_KEY_BITS, MIN_INSECURE_KEY_BITS, MIN_SECURE_KEY_BITS
from .pool import ObfuscatorPool
from .tensor import EncryptedTensor, concatenate

__all__ = ["keygen", "PublicKey", "SecretKey", "EncryptedTensor", "ObfuscatorPool", "concatenate", "encrypt",
           "decrypt", "encode_fixed", "decode_fixed", "DEFAULT_KEY_BITS", "LARGE_KEY_BITS",
           "MIN_SECURE_KEY_BITS", "MIN_INSECURE_KEY_BITS"]


def encrypt(public_key: PublicKey, x: Any) -> EncryptedTensor:
    """``public_key.encrypt(x)``: encrypt signed integers with fresh randomness."""
    if not isinstance(public_key, PublicKey):
        raise TypeError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
    return public_key.encrypt(x)


def decrypt(secret_key: SecretKey, ct: EncryptedTensor) -> np.ndarray:
    """``secret_key.decrypt(ct)``: decrypt to signed integers (int64 or object array)."""
    if not isinstance(secret_key, SecretKey):
        raise TypeError(f"secret_key must be a SecretKey, got {type(secret_key).__name__}")
    return secret_key.decrypt(ct)
