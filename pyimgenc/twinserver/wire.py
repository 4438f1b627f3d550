"""Message bodies of the fast protocol and slot packing (message types: :mod:`.messages`).

A body (:func:`pack_message`) is ``u32 meta_len | meta (JSON, UTF-8) | (u8 kind | u64 len | bytes)*``:
kind 0 is an EncryptedTensor, kind 1 a raw blob (the oblivious-transfer matrices and the
fixed-width words of SACT's selection step, :func:`words`).  Tensors use
:meth:`pyimgenc.paillier.EncryptedTensor.to_bytes` (versioned, checksummed, bound to the
public key), so a ciphertext from another key, a flipped bit or a truncation is refused
with ``ValueError`` before anything is computed.  Big integers in the metadata travel as
hexadecimal strings.

Packing: slot ``j`` of a packed plaintext holds ``v_j`` at bit offset ``width * j``;
``slots`` values per plaintext.  Packed arithmetic is plain integer arithmetic mod n:
intermediate slots may be negative or overflow into their neighbours; only the
plaintext that is finally decrypted must have every slot in ``[0, 2**width)``, which
the protocol guarantees with offsets and masks (``docs/twinserver-protocol.md``).
"""
from __future__ import annotations

import json
import struct
from typing import Iterable, Sequence

import numpy as np

from ..paillier import EncryptedTensor, PublicKey

MAX_TENSORS = 16
_U32, _U64 = struct.Struct(">I"), struct.Struct(">Q")
_TENSOR, _BLOB = 0, 1


def pack_message(meta: dict, tensors: Sequence[EncryptedTensor] = (), blobs: Sequence[bytes] = ()) -> bytes:
    """A message body: ``meta`` as JSON, then the tensors, then the raw blobs (see the module docstring)."""
    mb = json.dumps(meta, separators=(",", ":")).encode()
    parts = [_U32.pack(len(mb)), mb]
    for kind, items in ((_TENSOR, [t.to_bytes() for t in tensors]), (_BLOB, blobs)):
        for b in items:
            parts += [bytes([kind]), _U64.pack(len(b)), bytes(b)]
    return b"".join(parts)


def unpack_message_parts(body: bytes, pk: PublicKey) -> tuple[dict, list[EncryptedTensor], list[bytes]]:
    """``(meta, tensors, blobs)`` of a body from :func:`pack_message`; tensors must be under ``pk``.

    Raises:
        ValueError: naming what is wrong with the body.
    """
    if len(body) < 4:
        raise ValueError("message truncated (no metadata length)")
    (n,) = _U32.unpack_from(body, 0)
    if 4 + n > len(body):
        raise ValueError("message truncated (metadata)")
    try:
        meta = json.loads(body[4:4 + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError("metadata must be a JSON object")
    off, tensors, blobs = 4 + n, [], []
    while off < len(body):
        if len(tensors) + len(blobs) >= MAX_TENSORS:
            raise ValueError(f"more than {MAX_TENSORS} parts in one message")
        if off + 9 > len(body):
            raise ValueError("message truncated (part header)")
        kind = body[off]
        (k,) = _U64.unpack_from(body, off + 1)
        off += 9
        if off + k > len(body):
            raise ValueError("message truncated (part)")
        if kind == _TENSOR:
            if blobs:
                raise ValueError("tensors must precede blobs")
            tensors.append(EncryptedTensor.from_bytes(body[off:off + k], pk))
        elif kind == _BLOB:
            blobs.append(body[off:off + k])
        else:
            raise ValueError(f"unknown part kind {kind}")
        off += k
    return meta, tensors, blobs


def unpack_message(body: bytes, pk: PublicKey) -> tuple[dict, list[EncryptedTensor]]:
    """``(meta, tensors)`` of a body that carries no blobs (``ValueError`` if it does)."""
    meta, tensors, blobs = unpack_message_parts(body, pk)
    if blobs:
        raise ValueError("unexpected raw blobs in this message")
    return meta, tensors


def words(values: Iterable[int], bits: int) -> bytes:
    """Fixed-width little-endian encoding of integers in ``[0, 2**bits)``."""
    nb = -(-bits // 8)
    return b"".join(int(v).to_bytes(nb, "little") for v in values)


def unwords(blob: bytes, bits: int, count: int) -> list[int]:
    """Inverse of :func:`words`; ``ValueError`` unless ``blob`` holds exactly ``count`` words < 2**bits."""
    nb = -(-bits // 8)
    if len(blob) != nb * count:
        raise ValueError(f"expected {count} words of {nb} bytes, got {len(blob)} bytes")
    out = [int.from_bytes(blob[i:i + nb], "little") for i in range(0, nb * count, nb)]
    if any(v >> bits for v in out):
        raise ValueError(f"a word exceeds {bits} bits")
    return out


def hexs(values: Iterable[int]) -> list[str]:
    """Integers as (signed) hexadecimal strings, for JSON metadata."""
    return [format(int(v), "x") if v >= 0 else "-" + format(-int(v), "x") for v in values]


def unhex(values: list) -> list[int]:
    """Inverse of :func:`hexs`; ``ValueError`` unless ``values`` is a list of hexadecimal strings."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("expected a list of hexadecimal strings")
    return [int(v, 16) for v in values]


# ----------------------------------------------------------------------------- packing

def pack(values: Iterable[int], width: int, slots: int) -> list[int]:
    """Group ``values`` ``slots`` at a time: ``sum v_j << (width * j)``."""
    vals = [int(v) for v in values]
    out = []
    for g in range(0, len(vals), slots):
        acc = 0
        for j, v in enumerate(vals[g:g + slots]):
            acc += v << (width * j)
        out.append(acc)
    return out


def unpack(packed: Iterable[int], width: int, slots: int, count: int) -> list[int]:
    """Inverse of :func:`pack` for slots in ``[0, 2**width)``; the first ``count`` values."""
    mask = (1 << width) - 1
    out = []
    for p in packed:
        p = int(p)
        if p < 0 or p >> (width * slots):
            raise ValueError("packed plaintext out of range (a slot overflowed: wrong key or tampered data)")
        out.extend((p >> (width * j)) & mask for j in range(slots))
    if len(out) < count:
        raise ValueError(f"{len(out)} packed values, expected {count}")
    return out[:count]


def shifts(count: int, width: int, slots: int) -> list[int]:
    """``2**(width * (j mod slots))`` for j < count: the factor that puts value j into its slot."""
    return [1 << (width * (j % slots)) for j in range(count)]


def group_index(count: int, slots: int) -> np.ndarray:
    """(G, slots) indices j of each packing group, padded with -1."""
    g = -(-count // slots)
    idx = np.full(g * slots, -1, dtype=np.int64)
    idx[:count] = np.arange(count)
    return idx.reshape(g, slots)


def signed_mod(values: Iterable[int], n: int) -> np.ndarray:
    """Object array of ``v mod n`` in ``(-n/2, n/2]`` (a plaintext the encoder accepts)."""
    half = n // 2
    out = [int(v) % n for v in values]
    return np.array([v - n if v > half else v for v in out], dtype=object)
