"""Encrypted tensors across a Dask cluster (``pip install 'pyimgenc[dask]'``).

A :class:`DistEncryptedTensor` is an :class:`~pyimgenc.paillier.EncryptedTensor` laid out as a
Dask array of ``uint64`` limbs, shape ``(*shape, L)``, chunked along the leading axes with the
limb axis whole. Every block is an ordinary ``EncryptedTensor``, so each operation is one
batched native call per block; numpy buffers cross the network, never Python ints.

Keys travel as bytes in one graph node (a dependency of every task that needs it, so each
worker receives it once), parsed once per worker process. The secret key goes to a cluster
only when the caller names it (``decrypt(sk, x, client=c)``): a Dask cluster is one trust
domain. Design and what each party sees: ``docs/dist.md``.

Operations without randomness (``+``, ``-``, ``*`` by integers, ``@``, ``sum``) give results
bit-identical to the in-process ones; ``encrypt`` and ``rerandomize`` draw fresh randomness
on the workers, so they are equal after decryption.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise ImportError("pyimgenc.dist needs Dask: pip install 'pyimgenc[dask]'") from _exc

from ..paillier import EncryptedTensor, PublicKey, SecretKey

__all__ = ["DistEncryptedTensor", "encrypt", "decrypt", "from_tensor", "from_ints"]

_PK_CACHE: dict[bytes, PublicKey] = {}   # parsed public keys (with their tables), a few per process
_PK_CACHE_MAX = 8
_LOCK = threading.Lock()


def _load(kind: str, blob: bytes):
    """The key in ``blob`` (runs on the workers). Public keys are parsed once per process and
    kept (a bounded cache); secret keys are parsed for each block and never kept."""
    if kind == "sk":
        return SecretKey.from_bytes(blob)
    digest = hashlib.sha256(blob).digest()
    with _LOCK:
        key = _PK_CACHE.get(digest)
    if key is None:
        key = PublicKey.from_bytes(blob)
        with _LOCK:
            while len(_PK_CACHE) >= _PK_CACHE_MAX:
                _PK_CACHE.pop(next(iter(_PK_CACHE)))
            _PK_CACHE[digest] = key
    return key


def _fresh(what: str) -> str:
    # randomised operations get task names of their own: Dask would otherwise reuse the result
    # of an identical earlier graph (the same ciphertexts twice: linkable)
    return f"pyimgenc-{what}-{secrets.token_hex(16)}"


def _int_operand(m, shape, chunks):
    """A plaintext integer operand as a Dask array broadcast to ``shape`` with ``chunks``."""
    if isinstance(m, da.Array):
        if m.dtype.kind not in "iub":
            raise TypeError(f"operand must hold integers, got dtype {m.dtype}")
        return da.broadcast_to(m, shape)
    arr = np.asarray(m)
    if arr.dtype == object:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr.flat):
            raise TypeError("operand: an object array must hold Python ints only")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"operand must be an integer array or a ciphertext tensor, got dtype {arr.dtype}")
    return da.from_array(np.broadcast_to(arr, shape), chunks=chunks)


def _key_node(kind: str, key) -> Any:
    blob = key.to_bytes()
    return dask.delayed(blob, name=f"pyimgenc-{kind}-{hashlib.sha256(blob).hexdigest()[:32]}")


# --- block functions (run on the workers) ------------------------------------------------

def _encrypt_block(m, pk_blob):
    return _load("pk", pk_blob).encrypt(np.asarray(m)).limbs.copy()


def _binary_block(op: str, a, b, pk_blob):
    pk = _load("pk", pk_blob)
    x = EncryptedTensor(pk, a)
    y = EncryptedTensor(pk, b) if b.ndim == a.ndim else b  # ciphertexts carry the limb axis
    out = {"add": lambda: x + y, "sub": lambda: x - y, "rsub": lambda: y - x,
           "mul": lambda: x * y}[op]()
    return out.limbs.copy()


def _neg_block(a, pk_blob):
    return (-EncryptedTensor(_load("pk", pk_blob), a)).limbs.copy()


def _rerandomize_block(a, pk_blob):
    return EncryptedTensor(_load("pk", pk_blob), a).rerandomize().limbs.copy()


def _sum_block(a, pk_blob, axis):
    pk = _load("pk", pk_blob)
    t = EncryptedTensor(pk, a).sum(axis)
    shape = list(a.shape)
    for ax in (range(a.ndim - 1) if axis is None else [axis]):
        shape[ax] = 1
    return t.limbs.reshape(shape).copy()


def _add_blocks(a, b, pk_blob):
    pk = _load("pk", pk_blob)
    return (EncryptedTensor(pk, a) + EncryptedTensor(pk, b)).limbs.copy()


def _matmul_block(a, w, pk_blob):
    return (EncryptedTensor(_load("pk", pk_blob), a) @ np.asarray(w)).limbs.copy()


def _decrypt_block(a, sk_blob):
    sk = _load("sk", sk_blob)
    return np.asarray(sk.decrypt(EncryptedTensor(sk.public_key, a)), dtype=object)


def _tree(parts: list, pk_node, split: int = 8):
    """Ciphertext sum of delayed blocks as a tree of additions (depth log_split)."""
    add = dask.delayed(_add_blocks, pure=True)
    while len(parts) > 1:
        nxt = []
        for i in range(0, len(parts), split):
            group = parts[i:i + split]
            acc = group[0]
            for p in group[1:]:
                acc = add(acc, p, pk_node)
            nxt.append(acc)
        parts = nxt
    return parts[0]


class DistEncryptedTensor:
    """Paillier ciphertexts of one public key as a Dask array of limbs.

    Args:
        public_key: the :class:`~pyimgenc.paillier.PublicKey`.
        limbs: a ``dask.array`` of ``uint64``, shape ``(*shape, public_key.ct_limbs)``; the limb
            axis must be one chunk.
    """

    __array_ufunc__ = None

    def __init__(self, public_key: PublicKey, limbs, _pk_node=None):
        if not isinstance(public_key, PublicKey):
            raise TypeError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
        if not isinstance(limbs, da.Array) or limbs.dtype != np.uint64:
            raise TypeError("limbs must be a uint64 dask array")
        L = public_key.ct_limbs
        if limbs.ndim < 1 or limbs.shape[-1] != L:
            raise ValueError(f"limbs must have shape (*shape, {L}), got {limbs.shape}")
        if len(limbs.chunks[-1]) != 1:
            limbs = limbs.rechunk({limbs.ndim - 1: L})
        self.public_key = public_key
        self.limbs = limbs
        self._pk = _pk_node if _pk_node is not None else _key_node("pk", public_key)

    # -- shape -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.limbs.shape[:-1])

    @property
    def ndim(self) -> int:
        return self.limbs.ndim - 1

    @property
    def chunks(self) -> tuple:
        return self.limbs.chunks[:-1]

    def __repr__(self) -> str:
        return (f"DistEncryptedTensor(shape={self.shape}, chunks={self.chunks}, "
                f"key={self.public_key.n.bit_length()} bits)")

    def _new(self, limbs) -> "DistEncryptedTensor":
        return DistEncryptedTensor(self.public_key, limbs, self._pk)

    # -- evaluation --------------------------------------------------------------------
    def compute(self, **kwargs) -> EncryptedTensor:
        """Gather the blocks into one in-process :class:`EncryptedTensor` (``dask.compute`` kwargs)."""
        return EncryptedTensor(self.public_key, np.ascontiguousarray(self.limbs.compute(**kwargs)))

    def persist(self, **kwargs) -> "DistEncryptedTensor":
        return self._new(self.limbs.persist(**kwargs))

    def to_ints(self, **kwargs) -> list[int]:
        return self.compute(**kwargs).to_ints()

    # -- elementwise -------------------------------------------------------------------
    def _check_same_key(self, other: "DistEncryptedTensor") -> None:
        if other.public_key != self.public_key:
            raise ValueError("operands are encrypted under different public keys")

    def _binary(self, op: str, other: Any) -> "DistEncryptedTensor":
        lead = "".join(chr(ord("a") + i) for i in range(20))
        if isinstance(other, EncryptedTensor):
            other = from_tensor(other, chunks="auto")
        if isinstance(other, DistEncryptedTensor):
            if op == "mul":
                raise TypeError("ciphertext * ciphertext needs the SMP protocol (pyimgenc.twinserver)")
            self._check_same_key(other)
            shape = np.broadcast_shapes(self.shape, other.shape)
            L = self.public_key.ct_limbs
            a = da.broadcast_to(self.limbs, shape + (L,))
            b = da.broadcast_to(other.limbs, shape + (L,))
            ind = lead[:len(shape)] + "z"
            out = da.blockwise(_binary_block, ind, op, None, a, ind, b, ind, self._pk, None,
                               dtype=np.uint64)
            return self._new(out)
        if other is None or isinstance(other, (float, complex, str, bytes)):
            raise TypeError(f"operand must be an integer array or a ciphertext tensor, got {type(other).__name__}")
        m_shape = other.shape if isinstance(other, da.Array) else np.shape(other)
        shape = np.broadcast_shapes(self.shape, m_shape)
        L = self.public_key.ct_limbs
        a = da.broadcast_to(self.limbs, shape + (L,))
        mb = _int_operand(other, shape, a.chunks[:-1])
        ind = lead[:len(shape)]
        out = da.blockwise(_binary_block, ind + "z", op, None, a, ind + "z", mb, ind, self._pk, None,
                           dtype=np.uint64)
        return self._new(out)

    def __add__(self, other):
        return self._binary("add", other)

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary("sub", other)

    def __rsub__(self, other):
        return self._binary("rsub", other)

    def __mul__(self, other):
        return self._binary("mul", other)

    __rmul__ = __mul__

    def __neg__(self):
        return self._new(self.limbs.map_blocks(_neg_block, self._pk, dtype=np.uint64))

    def rerandomize(self) -> "DistEncryptedTensor":
        """Fresh randomness for every ciphertext (drawn on the workers)."""
        return self._new(self.limbs.map_blocks(_rerandomize_block, self._pk, dtype=np.uint64,
                                               token=_fresh("rerandomize")))

    # -- reductions and linear maps ----------------------------------------------------
    def sum(self, axis: int | None = None) -> "DistEncryptedTensor":
        """Homomorphic sum over ``axis`` (None: all elements): block sums, then a tree of
        ciphertext additions."""
        nd = self.ndim
        if axis is not None:
            if not isinstance(axis, (int, np.integer)) or not -nd <= axis < nd:
                raise ValueError(f"axis {axis!r} out of range for a {nd}-d tensor")
            axis = int(axis) % nd
        blocks = self.limbs.to_delayed()[..., 0]           # numblocks of the leading axes
        part = dask.delayed(_sum_block, pure=True)
        parts = np.empty(blocks.shape, dtype=object)
        for idx in np.ndindex(blocks.shape):
            parts[idx] = part(blocks[idx], self._pk, axis)
        L = self.public_key.ct_limbs
        if axis is None:
            root = _tree(list(parts.ravel()), self._pk)
            arr = da.from_delayed(root, shape=(1,) * nd + (L,), dtype=np.uint64)
            return self._new(arr.reshape((L,)))
        grid_shape = blocks.shape[:axis] + (1,) + blocks.shape[axis + 1:]
        grid = np.empty(grid_shape + (1,), dtype=object)   # block grid of the result, limb axis last
        for gidx in np.ndindex(grid_shape):
            line = [parts[gidx[:axis] + (k,) + gidx[axis + 1:]] for k in range(blocks.shape[axis])]
            bshape = tuple(1 if d == axis else self.chunks[d][i] for d, i in enumerate(gidx))
            grid[gidx + (0,)] = da.from_delayed(_tree(line, self._pk), shape=bshape + (L,), dtype=np.uint64)
        arr = da.block(grid.tolist())
        return self._new(arr.reshape(arr.shape[:axis] + arr.shape[axis + 1:]))

    def __matmul__(self, other: Any) -> "DistEncryptedTensor":
        """``x @ W`` for ciphertexts ``x`` of shape (k,) or (n, k) and a plaintext integer
        matrix ``W`` (k, m) (or vector (k,)): per block of ``x`` a multi-exponentiation against
        the matching rows of ``W``, the partial results along k summed by a tree of additions."""
        if isinstance(other, (DistEncryptedTensor, EncryptedTensor)):
            raise TypeError("E @ E needs the SMP protocol; the matrix must be a plaintext integer array")
        if self.ndim not in (1, 2):
            raise ValueError(f"x @ W needs a 1-D or 2-D ciphertext tensor, got shape {self.shape}")
        w = other if isinstance(other, da.Array) else np.asarray(other)
        if w.dtype.kind not in "iu":
            raise TypeError(f"W must be an integer array, got dtype {w.dtype}")
        k = self.shape[-1]
        if w.ndim not in (1, 2) or w.shape[0] != k:
            raise ValueError(f"shapes {self.shape} and {w.shape} do not align for x @ W")
        offsets = np.cumsum((0,) + self.chunks[-1])
        blocks = self.limbs.to_delayed()[..., 0]              # (k blocks,) or (row blocks, k blocks)
        if self.ndim == 1:
            blocks = blocks[None, :]
        mm = dask.delayed(_matmul_block, pure=True)
        wparts = []
        for j in range(blocks.shape[1]):
            wj = w[offsets[j]:offsets[j + 1]]
            if isinstance(wj, np.ndarray):
                wj = dask.delayed(np.ascontiguousarray(wj), pure=True)  # one node per row block of W
            wparts.append(wj)
        L = self.public_key.ct_limbs
        rows = []
        for i in range(blocks.shape[0]):
            root = _tree([mm(blocks[i, j], wparts[j], self._pk) for j in range(blocks.shape[1])], self._pk)
            lead = () if self.ndim == 1 else (self.chunks[0][i],)
            rows.append(da.from_delayed(root, shape=lead + tuple(w.shape[1:]) + (L,), dtype=np.uint64))
        return self._new(rows[0] if self.ndim == 1 else da.concatenate(rows, axis=0))

    def __rmatmul__(self, other: Any) -> "DistEncryptedTensor":
        """``W @ x`` for a plaintext ``W`` (m, k) and ciphertexts ``x`` (k,): ``x @ W.T``."""
        w = other if isinstance(other, da.Array) else np.asarray(other)
        if self.ndim != 1 or w.ndim != 2:
            raise ValueError(f"W @ x supports W (m, k) and x (k,), got {w.shape} and {self.shape}")
        return self @ w.T

    def dot(self, other: Any) -> "DistEncryptedTensor":
        return self @ other


# --- constructors ------------------------------------------------------------------------

def encrypt(public_key: PublicKey, x, chunks: Any = "auto") -> DistEncryptedTensor:
    """Encrypt an integer array (numpy or Dask) block by block on the workers.

    Args:
        public_key: the key.
        x: integer array; a numpy array is chunked with ``chunks``.
        chunks: chunking of a numpy ``x`` (Dask's ``chunks`` argument).
    """
    if not isinstance(public_key, PublicKey):
        raise TypeError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
    if isinstance(x, da.Array):
        arr = x
        if arr.dtype.kind not in "iub" and arr.dtype != object:
            raise TypeError(f"x must hold integers, got dtype {arr.dtype}")
    else:
        xa = np.asarray(x)
        if xa.dtype == object:
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in xa.flat):
                raise TypeError("x: an object array must hold Python ints only")
            if chunks == "auto":        # Dask cannot size object chunks by memory
                chunks = tuple(max(1, min(n, 4096)) for n in xa.shape) if xa.ndim else ()
        elif xa.dtype.kind not in "iub":
            raise TypeError(f"x must hold integers, got dtype {xa.dtype}")
        arr = da.from_array(xa, chunks=chunks)
    pk_node = _key_node("pk", public_key)
    L = public_key.ct_limbs
    limbs = arr.map_blocks(_encrypt_block, pk_node, dtype=np.uint64, new_axis=arr.ndim,
                           chunks=arr.chunks + ((L,),), token=_fresh("encrypt"))
    return DistEncryptedTensor(public_key, limbs, pk_node)


def from_tensor(t: EncryptedTensor, chunks: Any = "auto") -> DistEncryptedTensor:
    """A :class:`DistEncryptedTensor` of an in-process tensor (chunks of the leading axes)."""
    if not isinstance(t, EncryptedTensor):
        raise TypeError(f"expected an EncryptedTensor, got {type(t).__name__}")
    if chunks != "auto" and not isinstance(chunks, dict):
        chunks = tuple(chunks) if isinstance(chunks, (tuple, list)) else (chunks,) * t.ndim
        chunks = chunks + (t.public_key.ct_limbs,)
    limbs = da.from_array(t.limbs, chunks=chunks)
    return DistEncryptedTensor(t.public_key, limbs)


def from_ints(public_key: PublicKey, ints, shape, chunks: Any = "auto") -> DistEncryptedTensor:
    """:meth:`EncryptedTensor.from_ints` (validated ciphertexts), then distributed."""
    return from_tensor(EncryptedTensor.from_ints(public_key, ints, shape), chunks)


def decrypt(secret_key: SecretKey, x: DistEncryptedTensor, *, client=None):
    """Decrypt.

    Without ``client``: the ciphertexts are gathered and decrypted in this process, and the
    result is a **numpy** array (int64 when every value fits, else Python ints): neither the
    secret key nor a plaintext goes to any cluster.

    With ``client`` (a ``distributed.Client``): the secret key's bytes go to **that** cluster's
    workers (one graph node; parsed per block, never kept) and the blocks are decrypted there;
    the result is a Dask array (object dtype, Python ints) persisted on that cluster. Name only a
    cluster that may see every plaintext.
    """
    if not isinstance(secret_key, SecretKey):
        raise TypeError(f"secret_key must be a SecretKey, got {type(secret_key).__name__}")
    if not isinstance(x, DistEncryptedTensor):
        raise TypeError(f"expected a DistEncryptedTensor, got {type(x).__name__}")
    if secret_key.public_key != x.public_key:
        raise ValueError("the tensor is not encrypted under this secret key's public key")
    if client is None:
        return np.asarray(secret_key.decrypt(x.compute()))
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - dask[distributed] is part of the extra
        raise TypeError("decrypt(client=...) needs dask.distributed") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    sk_node = _key_node("sk", secret_key)
    lazy = x.limbs.map_blocks(_decrypt_block, sk_node, drop_axis=x.ndim, dtype=object,
                              meta=np.empty((0,) * x.ndim, dtype=object), token=_fresh("decrypt"))
    return client.persist(lazy)


from .systems import classify, classify_pairs  # noqa: E402  (Systems B and A at scale)

__all__ += ["classify", "classify_pairs"]
