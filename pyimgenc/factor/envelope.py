"""The sealed-capture envelope: image encrypted under its image security factor.

Byte layout (all integers big-endian; ``docs/envelope.md`` is the normative text):

=======  ==========  ===================================================================
bytes    field       meaning
=======  ==========  ===================================================================
4        magic       ``b"PIEV"``
1        version     1
1        model       first-factor model: 1 = VAE, 2 = DCGAN
2        height      image height, 1..4096
2        width       image width, 1..4096
1        channels    1 (grey) or 3 (RGB), uint8 pixels
2        S           length of the second factor
S        second      spliced second factor (:mod:`pyimgenc.factor.second`)
2        K           length of the key capsule
K        capsule     HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
                     HKDF-SHA256, AES-256-GCM) single-shot encryption of the first
                     security factor to the server, ``info`` = header bytes so far
12       nonce       AES-256-GCM nonce of the image
4        C           length of the image ciphertext (= height*width*channels + 16)
C        ciphertext  AES-256-GCM(key = image security factor, nonce, pixels,
                     aad = every byte before this field)
64       signature   Ed25519 signature of the device key over every byte before it
=======  ==========  ===================================================================

Image security factor = HKDF-SHA256(salt ``b"pyimgenc/isf/v1"``, info
``b"image-security-factor"``, 32 bytes) of ``u16(len F1) || F1 || second``, where
F1 is the first security factor.  Every primitive comes from ``cryptography``.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .second import SecondFactor

MAGIC = b"PIEV"
VERSION = 1
MODELS = {"vae": 1, "gan": 2}
MAX_SIDE = 4096
MAX_ENVELOPE_BYTES = 64 + 4096 * 4096 * 3 + 16 + 1024  # the largest image plus headroom
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_ISF_SALT = b"pyimgenc/isf/v1"
_ISF_INFO = b"image-security-factor"


class EnvelopeError(ValueError):
    """An envelope was rejected; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def image_security_factor(first: bytes, second: bytes) -> bytes:
    """32-byte image security factor from the first factor and the spliced second factor."""
    if len(first) > 0xFFFF:
        raise ValueError("first factor longer than 65535 bytes")
    ikm = struct.pack(">H", len(first)) + first + second
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_ISF_SALT, info=_ISF_INFO).derive(ikm)


@dataclass(frozen=True)
class Opened:
    """What a valid envelope carries (the signature, capsule and tag all checked)."""

    image: np.ndarray
    first_factor: bytes
    second: SecondFactor
    model: str


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must have dtype uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"image must have shape (H, W) or (H, W, 1|3), got {image.shape}")
    if not (1 <= image.shape[0] <= MAX_SIDE and 1 <= image.shape[1] <= MAX_SIDE):
        raise ValueError(f"image sides must be 1..{MAX_SIDE}, got {image.shape[:2]}")
    return np.ascontiguousarray(image)


def seal(image: np.ndarray, first_factor: bytes, second: SecondFactor,
         server_public_key: X25519PublicKey, device_key: Ed25519PrivateKey, model: str = "vae") -> bytes:
    """Encrypt and sign one capture (layout in the module docstring).

    Raises:
        TypeError / ValueError: on a wrong image, key type or model name.
    """
    image = _check_image(image)
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    if not isinstance(server_public_key, X25519PublicKey):
        raise TypeError("server_public_key must be an X25519PublicKey")
    if not isinstance(device_key, Ed25519PrivateKey):
        raise TypeError("device_key must be an Ed25519PrivateKey")
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    sec = second.splice()
    out = bytearray(MAGIC + bytes([VERSION, MODELS[model]]) + struct.pack(">HHB", h, w, c))
    out += struct.pack(">H", len(sec)) + sec
    capsule = _SUITE.encrypt(bytes(first_factor), server_public_key, info=bytes(out))
    out += struct.pack(">H", len(capsule)) + capsule
    nonce = os.urandom(12)
    out += nonce
    isf = image_security_factor(bytes(first_factor), sec)
    ct = AESGCM(isf).encrypt(nonce, image.tobytes(), bytes(out) + struct.pack(">I", h * w * c + 16))
    out += struct.pack(">I", len(ct)) + ct
    out += device_key.sign(bytes(out))
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.off = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.off + n > len(self.data):
            raise EnvelopeError("truncated", f"envelope ends inside {what}")
        b = self.data[self.off:self.off + n]
        self.off += n
        return b


def parse_header(data: bytes) -> tuple[dict, _Reader]:
    """Structural parse without keys: ``({'model', 'shape', 'second', ...}, reader)``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("envelope must be bytes")
    data = bytes(data)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError("oversized", f"{len(data)} bytes")
    r = _Reader(data)
    if r.take(4, "magic") != MAGIC:
        raise EnvelopeError("bad_magic")
    version, model = r.take(2, "version")
    if version != VERSION:
        raise EnvelopeError("bad_version", f"version {version}")
    names = {v: k for k, v in MODELS.items()}
    if model not in names:
        raise EnvelopeError("bad_model", f"model id {model}")
    h, w, c = struct.unpack(">HHB", r.take(5, "image shape"))
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and c in (1, 3)):
        raise EnvelopeError("bad_shape", f"{h}x{w}x{c}")
    (s,) = struct.unpack(">H", r.take(2, "second-factor length"))
    sec_bytes = r.take(s, "second factor")
    try:
        second = SecondFactor.parse(sec_bytes)
    except ValueError as exc:
        raise EnvelopeError("bad_second_factor", str(exc)) from None
    info_end = r.off
    (k,) = struct.unpack(">H", r.take(2, "capsule length"))
    capsule = r.take(k, "key capsule")
    nonce = r.take(12, "nonce")
    (clen,) = struct.unpack(">I", r.take(4, "ciphertext length"))
    if clen != h * w * c + 16:
        raise EnvelopeError("bad_length", f"ciphertext of {clen} bytes for a {h}x{w}x{c} image")
    aad_end = r.off
    ct = r.take(clen, "image ciphertext")
    body_end = r.off
    sig = r.take(64, "signature")
    if r.off != len(data):
        raise EnvelopeError("trailing_bytes", f"{len(data) - r.off} bytes after the signature")
    return dict(model=names[model], shape=(h, w) if c == 1 else (h, w, c), second=second,
                sec_bytes=sec_bytes, info=data[:info_end], capsule=capsule, nonce=nonce,
                aad=data[:aad_end], ct=ct, body=data[:body_end], sig=sig, grey=c == 1), r


def open_envelope(data: bytes, server_private_key: X25519PrivateKey,
                  device_key_for: Callable[[str], Ed25519PublicKey | None]) -> Opened:
    """Check and decrypt an envelope.

    Order: structure, device registration, signature, key capsule, image tag.

    Raises:
        EnvelopeError: with ``reason`` in ``truncated, oversized, bad_magic,
            bad_version, bad_model, bad_shape, bad_second_factor, bad_length,
            trailing_bytes, unknown_device, bad_signature, bad_capsule, bad_image_tag``.
    """
    hdr, _ = parse_header(data)
    dev_key = device_key_for(hdr["second"].device_info)
    if dev_key is None:
        raise EnvelopeError("unknown_device", hdr["second"].device_info)
    try:
        dev_key.verify(hdr["sig"], hdr["body"])
    except InvalidSignature:
        raise EnvelopeError("bad_signature") from None
    try:
        first = _SUITE.decrypt(hdr["capsule"], server_private_key, info=hdr["info"])
    except Exception:  # cryptography raises InvalidTag or ValueError for a bad capsule
        raise EnvelopeError("bad_capsule", "wrong server key or a damaged key capsule") from None
    isf = image_security_factor(first, hdr["sec_bytes"])
    try:
        pixels = AESGCM(isf).decrypt(hdr["nonce"], hdr["ct"], hdr["aad"])
    except InvalidTag:
        raise EnvelopeError("bad_image_tag", "image ciphertext or its header was altered") from None
    image = np.frombuffer(pixels, dtype=np.uint8).reshape(hdr["shape"]).copy()
    return Opened(image=image, first_factor=first, second=hdr["second"], model=hdr["model"])
