"""SMP, the secure multiplication of the twin-server Paillier CNN design.

S1 holds E(a), E(b) and obtains E(a*b); S2, which holds the secret key, sees only
a + r_a and b + r_b with uniform masks.

Steps (as the design words SMP; element-wise over tensors):

1. S1 draws ``r_a``, ``r_b`` uniform in ``(-n/2, n/2)`` and sends ``E(a + r_a)``,
   ``E(b + r_b)`` (homomorphic additions) to S2.
2. S2 decrypts ``a' = a + r_a``, ``b' = b + r_b`` (uniform: it learns nothing), computes
   ``h = a' * b' mod n`` and returns a fresh ``E(h)``.
3. S1 computes ``E(a*b) = E(h) * E(a)^(-r_b) * E(b)^(-r_a) * E(-r_a * r_b)``, since
   ``(a + r_a)(b + r_b) = ab + a r_b + b r_a + r_a r_b (mod n)``.

:func:`smp_literal` does this one element per round — the reference the design
describes; :func:`smp` does a whole tensor in one round (the same messages,
batched).  Both give identical plaintexts (``tests/twinserver/test_smp.py``).
The corrections use full-size exponents (uniform masks); the layer-level
protocols avoid them (``docs/twinserver-protocol.md``).
"""
from __future__ import annotations

import secrets
import struct

import numpy as np

from ..paillier import EncryptedTensor, concatenate
from .channel import Channel, ChannelError
from .messages import ERROR_REPLY, SACT_REPLY, SACT_REQUEST, SMP_REPLY, SMP_REQUEST



def pack_tensors(*tensors: EncryptedTensor) -> bytes:
    out = bytearray()
    for t in tensors:
        b = t.to_bytes()
        out += struct.pack(">Q", len(b)) + b
    return bytes(out)


def unpack_tensors(body: bytes, pk, count: int) -> list[EncryptedTensor]:
    out, off = [], 0
    for _ in range(count):
        if off + 8 > len(body):
            raise ValueError("message truncated")
        (n,) = struct.unpack_from(">Q", body, off)
        off += 8
        if off + n > len(body):
            raise ValueError("message truncated")
        out.append(EncryptedTensor.from_bytes(body[off:off + n], pk))
        off += n
    if off != len(body):
        raise ValueError(f"{len(body) - off} trailing bytes")
    return out


def uniform_masks(n: int, shape) -> np.ndarray:
    """Object array of independent uniform integers in (-n/2, n/2)."""
    half = n // 2
    size = int(np.prod(shape, dtype=np.int64))
    return np.array([secrets.randbelow(n - 1) - half + 1 for _ in range(size)], dtype=object).reshape(shape)


class KeyServer:
    """S2: holds the secret key, answers blinded requests.  ``serve`` runs until the peer closes."""

    def __init__(self, secret_key):
        self.sk = secret_key
        self.pk = secret_key.public_key
        self.idle_timeout_s: float | None = None   # a peer silent this long is dropped (None: wait forever)

    def handle(self, mtype: int, body: bytes) -> tuple[int, bytes]:
        if mtype == SMP_REQUEST:
            a, b = unpack_tensors(body, self.pk, 2)
            if a.shape != b.shape:
                raise ValueError(f"SMP operands have shapes {a.shape} and {b.shape}")
            n = self.pk.n
            h = (self.sk.decrypt(a).astype(object) * self.sk.decrypt(b).astype(object)) % n
            h = np.where(h > n // 2, h - n, h)
            return SMP_REPLY, pack_tensors(self.pk.encrypt(h))
        if mtype == SACT_REQUEST:  # see literal.sact_literal: y = sigma (alpha x + beta), z = x + r
            y, z = unpack_tensors(body, self.pk, 2)
            if y.shape != z.shape:
                raise ValueError(f"SACT operands have shapes {y.shape} and {z.shape}")
            t = (self.sk.decrypt(y).astype(object) >= 0).astype(np.int64)
            n = self.pk.n
            zt = (self.sk.decrypt(z).astype(object) * t) % n
            zt = np.where(zt > n // 2, zt - n, zt)
            return SACT_REPLY, pack_tensors(self.pk.encrypt(t), self.pk.encrypt(zt))
        raise ValueError(f"unknown request type {mtype}")

    def serve(self, ch: Channel) -> None:
        """Answer requests on ``ch``; a bad request gets an error reply, a broken channel ends the loop."""
        while True:
            try:
                mtype, msg_id, body = ch.recv(idle_timeout_s=self.idle_timeout_s)
            except ChannelError:
                return
            try:
                rtype, reply = self.handle(mtype, body)
            except Exception as exc:  # never crash the key server on a bad request
                rtype, reply = ERROR_REPLY, f"{type(exc).__name__}: {exc}".encode()
            try:
                ch.send(rtype, reply, msg_id=msg_id)
            except ChannelError:
                return


def tensor_call(ch: Channel, pk, mtype: int, body: bytes, reply: int, count: int) -> list[EncryptedTensor]:
    data = ch.request(mtype, body, reply)
    try:
        return unpack_tensors(data, pk, count)
    except ValueError as exc:
        raise ChannelError("bad_reply", str(exc)) from None


def smp(ch: Channel, a: EncryptedTensor, b: EncryptedTensor) -> EncryptedTensor:
    """E(a*b) element-wise for same-shaped tensors, in one round with S2."""
    if a.public_key != b.public_key:
        raise ValueError("SMP operands are under different public keys")
    if a.shape != b.shape:
        raise ValueError(f"SMP operands must have the same shape, got {a.shape} and {b.shape}")
    pk = a.public_key
    ra, rb = uniform_masks(pk.n, a.shape), uniform_masks(pk.n, a.shape)
    # re-randomized: S2 holds the key and could read the randomness of a + ra (a function of S1's inputs)
    (h,) = tensor_call(ch, pk, SMP_REQUEST, pack_tensors((a + ra).rerandomize(statistical=True),
                                         (b + rb).rerandomize(statistical=True)), SMP_REPLY, 1)
    cross = (ra * rb) % pk.n
    cross = np.where(cross > pk.n // 2, cross - pk.n, cross)
    return h - a * rb - b * ra - cross


def smp_literal(ch: Channel, a: EncryptedTensor, b: EncryptedTensor) -> EncryptedTensor:
    """The per-element reference: one SMP round per element."""
    if a.shape != b.shape:
        raise ValueError(f"SMP operands must have the same shape, got {a.shape} and {b.shape}")
    fa, fb = a.reshape(-1), b.reshape(-1)
    parts = [smp(ch, fa[i:i + 1], fb[i:i + 1]) for i in range(fa.size)]
    return concatenate(parts, axis=0).reshape(a.shape) if parts else a.copy()
