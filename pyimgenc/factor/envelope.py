"""The sealed-capture envelope: image encrypted under its image security factor.

Byte layout (all integers big-endian; ``docs/envelope.md`` is the normative text):

=======  ==========  ===================================================================
bytes    field       meaning
=======  ==========  ===================================================================
4        magic       ``b"PIEV"``
1        version     3 (versions 1 and 2 are refused: their pixel key had no secret input)
1        model       first-factor model: 1 = VAE, 2 = DCGAN
1        scheme      key capsule: 1 = HPKE X25519, 2 = RSA-OAEP-SHA256
1        scope       signature covers: 1 = every byte before it, 2 = header and tag
2        height      image height, 1..4096
2        width       image width, 1..4096
1        channels    1 (grey) or 3 (RGB), uint8 pixels
2        S           length of the second factor
S        second      spliced second factor (:mod:`pyimgenc.factor.second`)
2        K           length of the key capsule
K        capsule     ``key secret (32 random bytes) || first security factor`` sealed to the
                     server: HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
                     HKDF-SHA256, AES-256-GCM) single shot with ``info`` = header bytes so
                     far, or RSA-OAEP (SHA-256, MGF1-SHA256) with that label
12       nonce       AES-256-GCM nonce of the image
4        C           length of the image ciphertext (= height*width*channels + 16)
C        ciphertext  AES-256-GCM(key = image security factor, nonce, pixels,
                     aad = every byte before this field)
64       signature   Ed25519 signature of the device key over every byte before it
                     (scope 1) or over the bytes before the ciphertext followed by
                     the 16-byte tag (scope 2)
=======  ==========  ===================================================================

Image security factor (the pixel key) = HKDF-SHA256(salt ``b"pyimgenc/isf/v3"``, info
``b"image-security-factor"``, 32 bytes) of ``key secret || u16(len F1) || F1 || second``,
where F1 is the first security factor and the key secret is 32 fresh bytes from
``os.urandom`` that travel only inside the capsule: the key depends on the image (F1),
the device's second factor, and a secret only the terminal and the server hold, so
whoever guesses the image still cannot derive it.  Every primitive comes from ``cryptography``.

Scope 2 (the default) signs a fixed-size message, so sealing a megapixel image
costs one AES-GCM pass instead of an extra hash pass; it binds the pixels
against everyone who lacks the image key, but the *server* (which learns the
key) could build another ciphertext with the same GCM tag, so it is not proof
towards the server of which pixels were sent.  Scope 1 is.  (README, "System C
security".)
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..math import new_bytes
from ..models.preprocess import check_capture
from .second import SecondFactor

MAGIC = b"PIEV"
VERSION = 3
KEY_SECRET_BYTES = 32
MODELS = {"vae": 1, "gan": 2}
SCHEMES = {"hpke-x25519": 1, "rsa-oaep": 2}
SCOPES = {"full": 1, "tag": 2}
MIN_RSA_BITS = 3072  # ~128-bit, like X25519
MAX_SIDE = 4096
# every field at its maximum: header 13 + S (2 + 65535) + K (2 + 65535) + nonce 12 + C 4 + ciphertext + signature 64
MAX_ENVELOPE_BYTES = 13 + 2 * (2 + 0xFFFF) + 12 + 4 + 4096 * 4096 * 3 + 16 + 64
HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_ISF_SALT = b"pyimgenc/isf/v3"
_ISF_INFO = b"image-security-factor"


class EnvelopeError(ValueError):
    """An envelope was rejected; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def image_security_factor(key_secret: bytes, first: bytes, second: bytes) -> bytes:
    """The 32-byte pixel key from the capsule's key secret, the first factor and the spliced second factor."""
    if len(key_secret) != KEY_SECRET_BYTES:
        raise ValueError(f"the key secret must be {KEY_SECRET_BYTES} bytes, got {len(key_secret)}")
    if len(first) > 0xFFFF:
        raise ValueError("first factor longer than 65535 bytes")
    ikm = bytes(key_secret) + struct.pack(">H", len(first)) + first + second
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_ISF_SALT, info=_ISF_INFO).derive(ikm)


@dataclass(frozen=True)
class Opened:
    """What a valid envelope carries (the signature, capsule and tag all checked)."""

    image: np.ndarray
    first_factor: bytes
    second: SecondFactor
    model: str
    scheme: str = "hpke-x25519"
    scope: str = "tag"
    key_secret: bytes = field(default=b"", repr=False)   # from the capsule: the server knows it, nobody else


def _oaep(label: bytes) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label)


def seal(image: np.ndarray, first_factor: bytes, second: SecondFactor,
         server_public_key: X25519PublicKey | RSAPublicKey, device_key: Ed25519PrivateKey,
         model: str = "vae", scope: str = "tag") -> bytes:
    """Encrypt and sign one capture (layout in the module docstring).

    The capsule scheme follows the key type: an X25519 key gives HPKE, an RSA key
    (at least 3072 bits) RSA-OAEP.  ``scope`` is ``"tag"`` (default, fast) or ``"full"``.

    Raises:
        TypeError / ValueError: on a wrong image, key type, model or scope name.
    """
    image = check_capture(image, max_side=MAX_SIDE)
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {sorted(SCOPES)}, got {scope!r}")
    if isinstance(server_public_key, X25519PublicKey):
        scheme = "hpke-x25519"
    elif isinstance(server_public_key, RSAPublicKey):
        if server_public_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA server key must have at least {MIN_RSA_BITS} bits, got {server_public_key.key_size}")
        scheme = "rsa-oaep"
    else:
        raise TypeError("server_public_key must be an X25519PublicKey or an RSAPublicKey")
    if not isinstance(device_key, Ed25519PrivateKey):
        raise TypeError("device_key must be an Ed25519PrivateKey")
    first_factor = bytes(first_factor)
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    sec = second.splice()
    head = (MAGIC + bytes([VERSION, MODELS[model], SCHEMES[scheme], SCOPES[scope]])
            + struct.pack(">HHBH", h, w, c, len(sec)) + sec)
    if len(first_factor) > 0xFFFF - 48 - KEY_SECRET_BYTES:
        raise ValueError(f"first factor of {len(first_factor)} bytes: the capsule must fit 65535 bytes")
    key_secret = os.urandom(KEY_SECRET_BYTES)          # known to the terminal and, from the capsule, the server
    sealed = key_secret + first_factor
    if scheme == "hpke-x25519":
        capsule = HPKE_SUITE.encrypt(sealed, server_public_key, info=head)
    else:
        capsule = server_public_key.encrypt(sealed, _oaep(head))
    if len(capsule) > 0xFFFF:
        raise ValueError(f"key capsule of {len(capsule)} bytes exceeds 65535")
    n = h * w * c
    nonce = os.urandom(12)
    aad = head + struct.pack(">H", len(capsule)) + capsule + nonce + struct.pack(">I", n + 16)
    # One allocation for the whole envelope, the ciphertext written in place: a megapixel
    # capture then costs one AES-GCM pass and no copy (two fresh 1 MB buffers per call
    # also make glibc return memory to the OS and fault it back in, ~1 ms a seal).
    total = len(aad) + n + 16 + 64
    out, view = new_bytes(total)
    view[:len(aad)] = aad
    ct_view = view[len(aad):len(aad) + n + 16]
    AESGCM(image_security_factor(key_secret, first_factor, sec)).encrypt_into(nonce, image.data.cast("B"), aad, ct_view)
    if scope == "full":
        sig = device_key.sign(view[:len(aad) + n + 16])
    else:
        sig = device_key.sign(aad + bytes(ct_view[n:]))
    view[len(aad) + n + 16:] = sig
    ct_view.release()
    view.release()
    return bytes(out) if isinstance(out, bytearray) else out


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.off = data, 0

    def take(self, n: int, what: str):
        if self.off + n > len(self.data):
            raise EnvelopeError("truncated", f"envelope ends inside {what}")
        b = self.data[self.off:self.off + n]
        self.off += n
        return b


def parse_header(data: bytes) -> tuple[dict, _Reader]:
    """Structural parse without keys: ``({'model', 'shape', 'second', ...}, reader)``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("envelope must be bytes")
    if isinstance(data, memoryview) and data.nbytes > MAX_ENVELOPE_BYTES:
        raise EnvelopeError("oversized", f"{data.nbytes} bytes")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError("oversized", f"{len(data)} bytes")
    if isinstance(data, bytearray) or (isinstance(data, memoryview) and (
            not data.readonly or not data.c_contiguous or data.format != "B" or data.ndim != 1)):
        data = bytes(data)  # a snapshot: the caller may change a writable buffer afterwards
    data = memoryview(data)  # slices below are views, not copies of the (large) ciphertext
    r = _Reader(data)
    if r.take(4, "magic") != MAGIC:
        raise EnvelopeError("bad_magic")
    version, model, scheme, scope = r.take(4, "version")
    if version in (1, 2):
        raise EnvelopeError("bad_version", f"version {version} envelopes are refused: their pixel key had no "
                                           f"secret input (anyone who guessed the image could derive it); "
                                           f"reseal with a version-{VERSION} terminal")
    if version != VERSION:
        raise EnvelopeError("bad_version", f"version {version}")
    names = {v: k for k, v in MODELS.items()}
    if model not in names:
        raise EnvelopeError("bad_model", f"model id {model}")
    schemes = {v: k for k, v in SCHEMES.items()}
    if scheme not in schemes:
        raise EnvelopeError("bad_scheme", f"capsule scheme {scheme}")
    scopes = {v: k for k, v in SCOPES.items()}
    if scope not in scopes:
        raise EnvelopeError("bad_scope", f"signature scope {scope}")
    h, w, c = struct.unpack(">HHB", r.take(5, "image shape"))
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and c in (1, 3)):
        raise EnvelopeError("bad_shape", f"{h}x{w}x{c}")
    (s,) = struct.unpack(">H", r.take(2, "second-factor length"))
    sec_bytes = bytes(r.take(s, "second factor"))
    try:
        second = SecondFactor.parse(sec_bytes)
    except ValueError as exc:
        raise EnvelopeError("bad_second_factor", str(exc)) from None
    info_end = r.off
    (k,) = struct.unpack(">H", r.take(2, "capsule length"))
    capsule = bytes(r.take(k, "key capsule"))
    nonce = bytes(r.take(12, "nonce"))
    (clen,) = struct.unpack(">I", r.take(4, "ciphertext length"))
    if clen != h * w * c + 16:
        raise EnvelopeError("bad_length", f"ciphertext of {clen} bytes for a {h}x{w}x{c} image")
    aad_end = r.off
    ct = r.take(clen, "image ciphertext")
    body_end = r.off
    sig = bytes(r.take(64, "signature"))
    if r.off != len(data):
        raise EnvelopeError("trailing_bytes", f"{len(data) - r.off} bytes after the signature")
    signed = data[:body_end] if scopes[scope] == "full" else bytes(data[:aad_end]) + bytes(ct[-16:])
    return dict(model=names[model], scheme=schemes[scheme], scope=scopes[scope],
                shape=(h, w) if c == 1 else (h, w, c), second=second,
                sec_bytes=sec_bytes, info=bytes(data[:info_end]), capsule=capsule, nonce=nonce,
                aad=bytes(data[:aad_end]), ct=ct, signed=signed, sig=sig, grey=c == 1), r


def cipher_image(envelope: bytes) -> np.ndarray:
    """The cipher image an envelope carries: its AES-256-GCM ciphertext without the tag, in the
    image's shape (uint8).  GCM is a stream mode, so it has exactly as many bytes as the pixels.

    Only the structure is read (no signature or tag check): it is what an observer sees.

    Raises:
        EnvelopeError: if the envelope is malformed.
    """
    hdr, _ = parse_header(envelope)
    return np.frombuffer(hdr["ct"][:-16], dtype=np.uint8).reshape(hdr["shape"])


def open_envelope(data: bytes, server_private_key,
                  device_key_for: Callable[[str], Ed25519PublicKey | None],
                  after_signature: Callable[[SecondFactor], None] | None = None) -> Opened:
    """Check and decrypt an envelope.

    Order: structure, device registration, signature, key capsule, image tag.
    ``server_private_key`` is an X25519 or RSA private key, or a tuple of them (the
    one matching the envelope's capsule scheme is used).  ``after_signature`` is called
    with the (now authenticated) second factor before any decryption, so a caller can
    refuse stale or replayed captures cheaply by raising.

    Raises:
        EnvelopeError: with ``reason`` in ``truncated, oversized, bad_magic,
            bad_version, bad_model, bad_scheme, bad_scope, bad_shape, bad_second_factor, bad_length,
            trailing_bytes, unknown_device, bad_signature, bad_capsule, bad_image_tag``.
    """
    hdr, _ = parse_header(data)
    dev_key = device_key_for(hdr["second"].device_info)
    if dev_key is None:
        raise EnvelopeError("unknown_device", hdr["second"].device_info)
    try:
        dev_key.verify(hdr["sig"], hdr["signed"])
    except InvalidSignature:
        raise EnvelopeError("bad_signature") from None
    if after_signature is not None:
        after_signature(hdr["second"])
    keys = server_private_key if isinstance(server_private_key, (tuple, list)) else (server_private_key,)
    want = X25519PrivateKey if hdr["scheme"] == "hpke-x25519" else RSAPrivateKey
    key = next((k for k in keys if isinstance(k, want)), None)
    if key is None:
        raise EnvelopeError("bad_capsule", f"this server holds no key for the {hdr['scheme']} capsule")
    try:
        if want is X25519PrivateKey:
            sealed = HPKE_SUITE.decrypt(hdr["capsule"], key, info=hdr["info"])
        else:
            sealed = key.decrypt(hdr["capsule"], _oaep(hdr["info"]))
    except Exception:  # cryptography raises InvalidTag or ValueError for a bad capsule
        raise EnvelopeError("bad_capsule", "wrong server key or a damaged key capsule") from None
    if len(sealed) < KEY_SECRET_BYTES:
        raise EnvelopeError("bad_capsule", "the capsule holds no key secret")
    key_secret, first = sealed[:KEY_SECRET_BYTES], sealed[KEY_SECRET_BYTES:]
    isf = image_security_factor(key_secret, first, hdr["sec_bytes"])
    image = np.empty(hdr["shape"], dtype=np.uint8)
    try:
        AESGCM(isf).decrypt_into(hdr["nonce"], hdr["ct"], hdr["aad"], image.data.cast("B"))
    except InvalidTag:
        raise EnvelopeError("bad_image_tag", "image ciphertext or its header was altered") from None
    return Opened(image=image, first_factor=first, second=hdr["second"], model=hdr["model"],
                  scheme=hdr["scheme"], scope=hdr["scope"], key_secret=key_secret)
