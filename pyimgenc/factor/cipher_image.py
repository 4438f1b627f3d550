"""Cipher-image mode: the AES-256-GCM ciphertext of an image, kept in the image's shape.

GCM is a stream mode, so the ciphertext of ``H*W*C`` pixels is exactly
``H*W*C`` bytes: they are returned as a uint8 array of the input's shape, with
the 16-byte tag beside it.  The key is the 32-byte image security factor.
"""
from __future__ import annotations

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def encrypt_image(image: np.ndarray, key: bytes, nonce: bytes, aad: bytes = b"") -> tuple[np.ndarray, bytes]:
    """``(cipher_image, tag)``; ``cipher_image`` has the shape and dtype of ``image``."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if len(key) != 32 or len(nonce) != 12:
        raise ValueError("key must be 32 bytes and nonce 12 bytes")
    ct = AESGCM(key).encrypt(nonce, np.ascontiguousarray(image).tobytes(), aad)
    return np.frombuffer(ct[:-16], dtype=np.uint8).reshape(image.shape).copy(), ct[-16:]


def decrypt_image(cipher: np.ndarray, tag: bytes, key: bytes, nonce: bytes, aad: bytes = b"") -> np.ndarray:
    """Inverse of :func:`encrypt_image`; ``ValueError`` if the tag does not verify."""
    if not isinstance(cipher, np.ndarray) or cipher.dtype != np.uint8:
        raise TypeError("cipher must be a uint8 numpy array")
    try:
        pt = AESGCM(key).decrypt(nonce, np.ascontiguousarray(cipher).tobytes() + bytes(tag), aad)
    except InvalidTag:
        raise ValueError("cipher image or tag was altered (or wrong key/nonce)") from None
    return np.frombuffer(pt, dtype=np.uint8).reshape(cipher.shape).copy()
