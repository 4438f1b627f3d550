"""Versioned binary format for keys and EncryptedTensors (no pickle).

Envelope (all integers little-endian)::

    offset  size  field
    0       4     magic b"PYIE"
    4       1     format version (1)
    5       1     kind: 1 PublicKey, 2 SecretKey, 3 EncryptedTensor
    6       2     reserved, must be 0
    8       8     body length B (uint64)
    16      B     body (per kind, below)
    16+B    32    SHA-256 of bytes [0, 16+B)

Bodies::

    PublicKey:       u16 Ln | n (8*Ln bytes) | hs (8*Lsq bytes, Lsq = limbs of n^2)
    SecretKey:       PublicKey body | u16 Lp | p (8*Lp) | u16 Lq | q (8*Lq)
    EncryptedTensor: u32 K | PublicKey body (K bytes) | u8 ndim | ndim x u64 dims |
                     prod(dims) ciphertexts, each 8*Lsq bytes, row-major

Loading checks every field and raises ``ValueError`` naming the problem.

This module is a leaf: it reads and writes plain integers and limb arrays only
(``n``, ``hs``, ``p``, ``q``, ciphertext limbs).  The classes own the methods —
:meth:`PublicKey.to_bytes <pyimgenc.paillier.PublicKey.to_bytes>`,
:meth:`SecretKey.from_bytes <pyimgenc.paillier.SecretKey.from_bytes>`,
:meth:`EncryptedTensor.from_bytes <pyimgenc.paillier.EncryptedTensor.from_bytes>` and so
on — and build their objects from what these functions return.
"""
from __future__ import annotations

import hashlib
import struct

import gmpy2
import numpy as np

from ..math import nlimbs_for
from . import _limbs
from .limits import MAX_KEY_BITS, MIN_INSECURE_KEY_BITS

MAGIC = b"PYIE"
FORMAT_VERSION = 1
KIND_PUBLIC_KEY, KIND_SECRET_KEY, KIND_TENSOR = 1, 2, 3
_KIND_NAMES = {KIND_PUBLIC_KEY: "PublicKey", KIND_SECRET_KEY: "SecretKey", KIND_TENSOR: "EncryptedTensor"}
_HEADER = struct.Struct("<4sBBHQ")
_DIGEST = 32
MAX_NDIM = 32


def _wrap(kind: int, body: bytes) -> bytes:
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, kind, 0, len(body))
    return head + body + hashlib.sha256(head + body).digest()


def _unwrap(data: bytes, kind: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    want = _KIND_NAMES[kind]
    if len(data) < _HEADER.size + _DIGEST:
        raise ValueError(f"{want}: data truncated ({len(data)} bytes is shorter than the header)")
    magic, version, got_kind, reserved, blen = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"{want}: bad magic {magic!r} (not a pyimgenc file)")
    if version != FORMAT_VERSION:
        raise ValueError(f"{want}: unsupported format version {version} (expected {FORMAT_VERSION})")
    if got_kind != kind:
        raise ValueError(f"{want}: wrong kind {got_kind} "
                         f"({_KIND_NAMES.get(got_kind, 'unknown')}), expected {kind} ({want})")
    if reserved != 0:
        raise ValueError(f"{want}: reserved header field is {reserved}, must be 0")
    total = _HEADER.size + blen + _DIGEST
    if len(data) != total:
        what = "truncated" if len(data) < total else "has trailing bytes"
        raise ValueError(f"{want}: data {what} ({len(data)} bytes, header says {total})")
    end = _HEADER.size + blen
    if hashlib.sha256(data[:end]).digest() != data[end:]:
        raise ValueError(f"{want}: checksum mismatch (corrupted data)")
    return data[_HEADER.size:end]


class _Reader:
    def __init__(self, buf: bytes, what: str):
        self.buf, self.pos, self.what = buf, 0, what

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError(f"{self.what}: body truncated while reading {field}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, fmt: str, field: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), field))[0]

    def bigint(self, field: str) -> int:
        nl = self.uint("H", f"{field} length")
        if nl == 0 or nl > 2 * nlimbs_for(1 << MAX_KEY_BITS):
            raise ValueError(f"{self.what}: implausible limb count {nl} for {field}")
        v = int.from_bytes(self.take(8 * nl, field), "little")
        if nlimbs_for(v) != nl:
            raise ValueError(f"{self.what}: {field} is not in canonical form (leading zero limb)")
        return v

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise ValueError(f"{self.what}: {len(self.buf) - self.pos} unexpected bytes at end of body")


def _pk_body(n: int, hs: int) -> bytes:
    ln = nlimbs_for(n)
    return struct.pack("<H", ln) + n.to_bytes(8 * ln, "little") + hs.to_bytes(8 * nlimbs_for(n * n), "little")


def _read_pk(r: _Reader) -> tuple[int, int]:
    n = r.bigint("n")
    if n % 2 == 0 or not MIN_INSECURE_KEY_BITS <= n.bit_length() <= MAX_KEY_BITS:
        raise ValueError(f"{r.what}: n is not an odd number of {MIN_INSECURE_KEY_BITS} to {MAX_KEY_BITS} bits")
    hs = int.from_bytes(r.take(8 * nlimbs_for(n * n), "hs"), "little")
    return n, hs


def public_key_to_bytes(n: int, hs: int) -> bytes:
    """Serialise a public key given as its modulus ``n`` and DJN base ``hs``."""
    return _wrap(KIND_PUBLIC_KEY, _pk_body(n, hs))


def public_key_from_bytes(data: bytes) -> tuple[int, int]:
    """``(n, hs)`` of a serialised public key.

    Checks the envelope and that ``n`` is odd with 128 to 8192 bits; the caller
    checks ``hs`` (:class:`~pyimgenc.paillier.PublicKey` does).

    Raises:
        TypeError: if ``data`` is not bytes.
        ValueError: on any corruption or inconsistency, naming it.
    """
    r = _Reader(_unwrap(data, KIND_PUBLIC_KEY), "PublicKey")
    n, hs = _read_pk(r)
    r.done()
    return n, hs


def secret_key_to_bytes(n: int, hs: int, p: int, q: int) -> bytes:
    """Serialise a secret key: its public key ``(n, hs)`` and the factors ``p``, ``q``."""
    body = _pk_body(n, hs)
    for v in (p, q):
        nl = nlimbs_for(v)
        body += struct.pack("<H", nl) + v.to_bytes(8 * nl, "little")
    return _wrap(KIND_SECRET_KEY, body)


def secret_key_from_bytes(data: bytes) -> tuple[int, int, int, int]:
    """``(n, hs, p, q)`` of a serialised secret key, with ``p * q == n`` and both prime.

    Raises:
        TypeError: if ``data`` is not bytes.
        ValueError: on any corruption or inconsistency, naming it.
    """
    r = _Reader(_unwrap(data, KIND_SECRET_KEY), "SecretKey")
    n, hs = _read_pk(r)
    p, q = r.bigint("p"), r.bigint("q")
    r.done()
    if p * q != n or p == q:
        raise ValueError("SecretKey: p * q does not equal n")
    if not (gmpy2.is_prime(p) and gmpy2.is_prime(q)):
        raise ValueError("SecretKey: p or q is not prime")
    return n, hs, p, q


def tensor_to_bytes(n: int, hs: int, limbs: np.ndarray) -> bytes:
    """Serialise ciphertexts with their public key.

    Args:
        n: the public modulus.
        hs: the public key's DJN base.
        limbs: uint64 array of shape ``(*shape, L)``, ``L`` the limbs of ``n**2``.
    """
    pkb = _pk_body(n, hs)
    shape = limbs.shape[:-1]
    head = struct.pack("<I", len(pkb)) + pkb + struct.pack("<B", len(shape))
    head += b"".join(struct.pack("<Q", d) for d in shape)
    return _wrap(KIND_TENSOR, head + np.ascontiguousarray(limbs, dtype="<u8").tobytes())


def tensor_from_bytes(data: bytes) -> tuple[int, int, np.ndarray]:
    """``(n, hs, limbs)`` of serialised ciphertexts; ``limbs`` has shape ``(*shape, L)``.

    Every ciphertext is checked to lie in ``(0, n**2)``; the caller checks ``hs``.

    Raises:
        TypeError: if ``data`` is not bytes.
        ValueError: on any corruption or inconsistency, naming it.
    """
    r = _Reader(_unwrap(data, KIND_TENSOR), "EncryptedTensor")
    klen = r.uint("I", "public key length")
    sub = _Reader(r.take(klen, "public key"), "EncryptedTensor public key")
    n, hs = _read_pk(sub)
    sub.done()
    ndim = r.uint("B", "ndim")
    if ndim > MAX_NDIM:
        raise ValueError(f"EncryptedTensor: ndim {ndim} exceeds {MAX_NDIM}")
    shape = tuple(r.uint("Q", f"dimension {i}") for i in range(ndim))
    size = 1
    for d in shape:
        size *= d
    nsquare = n * n
    ct_limbs = nlimbs_for(nsquare)
    width = 8 * ct_limbs
    if size * width != len(r.buf) - r.pos:
        raise ValueError(f"EncryptedTensor: shape {shape} needs {size * width} bytes of ciphertexts, "
                         f"body has {len(r.buf) - r.pos}")
    limbs = np.frombuffer(r.take(size * width, "ciphertexts"), dtype="<u8").astype(np.uint64)
    limbs = limbs.reshape(size, ct_limbs)
    bad = _limbs.is_zero(limbs) | ~_limbs.less_than(limbs, nsquare)
    if bad.any():
        raise ValueError(f"EncryptedTensor: ciphertext at flat index {int(np.argmax(bad))} is not in (0, n^2)")
    r.done()
    return n, hs, limbs.reshape(shape + (ct_limbs,))
