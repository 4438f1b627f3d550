"""EncryptedTensor: an n-dimensional array of Paillier ciphertexts.

The ciphertexts live in ONE C-contiguous uint64 array of shape ``(*shape, L)``
(``L`` limbs of ``n**2``), so every operation is a batched call into
:mod:`pyimgenc.math`.  Homomorphic operations (plaintext ``m`` of ciphertext ``c``):

* ``E(a) + E(b)``  -> ``c_a * c_b``            (broadcasting like numpy)
* ``E(a) + k``     -> ``c * (1 + k n)``        (k encrypted with r = 0; :meth:`EncryptedTensor.add_mod`
  takes k of any size, mod n)
* ``-E(a)``        -> ``c**-1``
* ``E(a) * k``     -> ``c**k``
* ``E @ W``, ``W @ E``, ``sum``, ``conv2d``  -> one multi-exponentiation

Results of additions with plaintexts, products and linear maps keep the
randomness of their inputs; call :meth:`EncryptedTensor.rerandomize` before
handing a result to another party.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

import numpy as np

from ..math import ints_to_limbs, limbs_to_ints, mulmod, powmod
from . import _limbs, linalg, serialize
from .encoding import INT64_MAX, as_int_array, check_plaintext_range

if TYPE_CHECKING:  # pragma: no cover
    from .keys import PublicKey


def _same_key(a: "PublicKey", b: "PublicKey") -> None:
    if a != b:
        raise ValueError("cannot combine EncryptedTensors under different public keys")


class EncryptedTensor:
    """An array of Paillier ciphertexts under one public key.

    Args:
        public_key: the :class:`~pyimgenc.paillier.PublicKey`.
        limbs: uint64 array of shape ``(*shape, L)`` with ``L = public_key.ct_limbs``;
            values must already be valid ciphertexts (use :meth:`from_ints` to validate).
    """

    __array_ufunc__ = None  # numpy defers ``ndarray + E`` / ``W @ E`` to our reflected ops
    _key_type: ClassVar[type]  # PublicKey, set by keys.py (which imports this module) for from_bytes

    def __init__(self, public_key: "PublicKey", limbs: np.ndarray):
        if not isinstance(limbs, np.ndarray) or limbs.dtype != np.uint64:
            raise TypeError("limbs must be a uint64 numpy array")
        if limbs.ndim < 1 or limbs.shape[-1] != public_key.ct_limbs:
            raise ValueError(f"limbs must have shape (*shape, {public_key.ct_limbs}), got {limbs.shape}")
        self.public_key = public_key
        self._data = np.ascontiguousarray(limbs)

    # -- array protocol --------------------------------------------------------------
    @property
    def limbs(self) -> np.ndarray:
        """The ``(*shape, L)`` uint64 ciphertext array (read-only view)."""
        v = self._data.view()
        v.flags.writeable = False
        return v

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the tensor (without the limb axis)."""
        return self._data.shape[:-1]

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._data.ndim - 1

    @property
    def size(self) -> int:
        """Number of ciphertexts."""
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d EncryptedTensor")
        return self.shape[0]

    def __iter__(self) -> Iterator["EncryptedTensor"]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"EncryptedTensor(shape={self.shape}, key={self.public_key.bits} bits)"

    def _new(self, limbs: np.ndarray) -> "EncryptedTensor":
        return EncryptedTensor(self.public_key, limbs)

    @property
    def _flat(self) -> np.ndarray:
        return self._data.reshape(-1, self.public_key.ct_limbs)

    def __getitem__(self, key: Any) -> "EncryptedTensor":
        if isinstance(key, EncryptedTensor):
            raise TypeError("an EncryptedTensor cannot be used as an index")
        sel = np.arange(self.size, dtype=np.int64).reshape(self.shape)[key]
        return self._new(self._flat[np.asarray(sel)])

    def copy(self) -> "EncryptedTensor":
        """A copy with its own storage."""
        return self._new(self._data.copy())

    def reshape(self, *shape: Any) -> "EncryptedTensor":
        """Same ciphertexts in a new shape (numpy rules, one -1 allowed)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        try:
            return self._new(self._data.reshape(tuple(int(s) for s in shape) + (self.public_key.ct_limbs,)))
        except ValueError:
            raise ValueError(f"cannot reshape an EncryptedTensor of shape {self.shape} into {shape}") from None

    def flatten(self) -> "EncryptedTensor":
        """A 1-D copy."""
        return self._new(self._flat.copy())

    def transpose(self, *axes: Any) -> "EncryptedTensor":
        """Permute the dimensions (reversed when no axes are given)."""
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = tuple(axes[0])
        axes = tuple(range(self.ndim))[::-1] if not axes else tuple(int(a) % max(self.ndim, 1) for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {self.ndim} dimensions")
        return self._new(self._data.transpose(axes + (self.ndim,)))

    @property
    def T(self) -> "EncryptedTensor":
        """The transpose (dimensions reversed)."""
        return self.transpose()

    # -- elementwise homomorphic operations -------------------------------------------
    def _broadcast(self, shape: tuple[int, ...]) -> np.ndarray:
        """``(prod(shape), L)`` limbs of ``self`` broadcast to ``shape``."""
        L = self.public_key.ct_limbs
        return np.ascontiguousarray(np.broadcast_to(self._data, shape + (L,)).reshape(-1, L))

    def _out_shape(self, other_shape: tuple[int, ...]) -> tuple[int, ...]:
        try:
            return np.broadcast_shapes(self.shape, other_shape)
        except ValueError:
            raise ValueError(f"shapes {self.shape} and {other_shape} cannot be broadcast together") from None

    def _add_plain(self, m: np.ndarray) -> "EncryptedTensor":
        """``self + m`` for a checked integer array ``m`` (broadcasting), plaintexts mod n."""
        pk = self.public_key
        shape = self._out_shape(m.shape)
        c = self._broadcast(shape)
        out = pk.raw_add_plain(c, np.broadcast_to(m, shape).ravel())
        return self._new(out.reshape(shape + (pk.ct_limbs,)))

    def add_mod(self, m: Any) -> "EncryptedTensor":
        """Homomorphic ``+ m`` with ``m`` taken mod n: integers of any size and sign.

        ``self + m`` refuses plaintexts outside ``(-n/2, n/2)``; protocols that
        work mod n (packed slots, masks) add arbitrary integers here instead.
        Broadcasting follows numpy.  The result keeps the randomness of ``self``.

        Args:
            m: int, nested list, integer array or object array of Python ints.

        Returns:
            An EncryptedTensor of the broadcast shape.

        Raises:
            TypeError: if ``m`` holds non-integers.
            ValueError: if the shapes cannot be broadcast together.
        """
        if isinstance(m, EncryptedTensor):
            raise TypeError("add_mod adds plaintext integers; use + for two EncryptedTensors")
        return self._add_plain(as_int_array(m, "m"))

    def __add__(self, other: Any) -> "EncryptedTensor":
        if isinstance(other, EncryptedTensor):
            _same_key(self.public_key, other.public_key)
            shape = self._out_shape(other.shape)
            out = mulmod(self._broadcast(shape), other._broadcast(shape), self.public_key.nsquare_modulus)
            return self._new(out.reshape(shape + (self.public_key.ct_limbs,)))
        return self._add_plain(_in_range(as_int_array(other, "other"), self.public_key.n))

    __radd__ = __add__

    def __neg__(self) -> "EncryptedTensor":
        pk = self.public_key
        return self._new(linalg.inverses(pk.nsquare, self._flat).reshape(self._data.shape))

    def __sub__(self, other: Any) -> "EncryptedTensor":
        if isinstance(other, EncryptedTensor):
            _same_key(self.public_key, other.public_key)
            return self + (-other)
        return self._add_plain(_in_range(_negate(as_int_array(other, "other")), self.public_key.n))

    def __rsub__(self, other: Any) -> "EncryptedTensor":
        neg = -self
        return neg._add_plain(_in_range(as_int_array(other, "other"), self.public_key.n))

    def __mul__(self, other: Any) -> "EncryptedTensor":
        if isinstance(other, EncryptedTensor):
            raise TypeError("multiplying two EncryptedTensors needs the SMP protocol "
                            "(pyimgenc.twinserver); only plaintext integer factors are supported here")
        k = as_int_array(other, "other")
        pk = self.public_key
        shape = self._out_shape(k.shape)
        c = self._broadcast(shape)
        k = np.broadcast_to(k, shape).ravel()
        if k.dtype == np.int64:
            neg = k < 0
            if neg.any():
                c = c.copy()
                c[neg] = linalg.inverses(pk.nsquare, c[neg])
            exps = np.where(neg, np.uint64(0) - k.view(np.uint64), k.view(np.uint64))
        else:  # beyond 64 bits: the exponent only matters mod n
            exps = ints_to_limbs([int(v) % pk.n for v in k], pk.n_modulus.nlimbs)
        out = powmod(c, exps, pk.nsquare_modulus) if c.shape[0] else c
        return self._new(out.reshape(shape + (pk.ct_limbs,)))

    __rmul__ = __mul__

    def rerandomize(self, obfuscators: np.ndarray | None = None, *, statistical: bool = False
                    ) -> "EncryptedTensor":
        """Multiply every ciphertext by an encryption of zero ``hs**r``: same plaintexts, unlinkable ciphertexts.

        Args:
            obfuscators: None to draw fresh ones now, or a precomputed ``(size, L)``
                uint64 array of them (rows of
                :meth:`PublicKey.raw_obfuscators <pyimgenc.paillier.PublicKey.raw_obfuscators>`,
                e.g. a pool drawn in an offline phase), one row per ciphertext in
                row-major order.  Exactly these rows are used; never reuse a row.
            statistical: when drawing fresh ones, use full-size exponents
                (``raw_obfuscators(..., statistical=True)``): the result's randomness
                then hides the input's even from the secret-key holder.

        Returns:
            A new EncryptedTensor of the same shape.

        Raises:
            TypeError: if ``obfuscators`` is not a uint64 array.
            ValueError: if its shape is not ``(size, L)`` or a row is not in ``(0, n**2)``.
        """
        pk = self.public_key
        L = pk.ct_limbs
        if obfuscators is None:
            obfuscators = pk.raw_obfuscators(self.size, statistical=statistical)
        else:
            if not isinstance(obfuscators, np.ndarray) or obfuscators.dtype != np.uint64:
                raise TypeError("obfuscators must be a uint64 numpy array of limbs (PublicKey.raw_obfuscators)")
            if obfuscators.shape != (self.size, L):
                raise ValueError(f"obfuscators must have shape ({self.size}, {L}), one row per ciphertext, "
                                 f"got {obfuscators.shape}")
            bad = _limbs.is_zero(obfuscators) | ~_limbs.less_than(obfuscators, pk.nsquare)
            if bad.any():
                raise ValueError(f"obfuscators: row {int(np.argmax(bad))} is not in (0, n^2)")
        if self.size == 0:
            return self.copy()
        out = mulmod(self._flat, np.ascontiguousarray(obfuscators), pk.nsquare_modulus)
        return self._new(out.reshape(self._data.shape))

    # -- linear maps (multi-exponentiation) ---------------------------------------------
    def sum(self, axis: int | Sequence[int] | None = None) -> "EncryptedTensor":
        """Homomorphic sum over ``axis`` (None: all elements, giving a 0-d tensor)."""
        idx, exps, out_shape = linalg.sum_plan(self.shape, axis)
        out = linalg.multiexp(self.public_key, self._flat, idx, exps)
        return self._new(out.reshape(out_shape + (self.public_key.ct_limbs,)))

    def __matmul__(self, other: Any) -> "EncryptedTensor":
        if isinstance(other, EncryptedTensor):
            raise TypeError("E @ E needs the SMP protocol; the matrix must be a plaintext integer array")
        w = linalg.weights(other, "other")
        idx, exps, out_shape = linalg.matmul_plan(self.shape, w)
        out = linalg.multiexp(self.public_key, self._flat, idx, exps)
        return self._new(out.reshape(out_shape + (self.public_key.ct_limbs,)))

    def __rmatmul__(self, other: Any) -> "EncryptedTensor":
        w = linalg.weights(other, "other")
        if self.ndim not in (1, 2) or w.ndim not in (1, 2):
            raise ValueError(f"W @ E supports 1-D/2-D operands, got shapes {w.shape} and {self.shape}")
        if self.ndim == 1:  # W(r,k) @ E(k) = E(k) @ W.T
            return self @ w.T
        res = self.T @ (w.T if w.ndim == 2 else w)  # (W @ E).T = E.T @ W.T
        return res.T if res.ndim == 2 else res

    def dot(self, other: Any) -> "EncryptedTensor":
        """``self @ other`` for a plaintext integer vector or matrix."""
        return self @ other

    def conv2d(self, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0) -> "EncryptedTensor":
        """2-D cross-correlation with plaintext integer kernels (PyTorch semantics).

        Args:
            weight: int array ``(O, C, kh, kw)``, entries fitting in int64.
            bias: None, integer array ``(O,)``, or an EncryptedTensor ``(O,)``.
            stride: int or ``(sh, sw)``.
            padding: int or ``(ph, pw)`` zero padding.

        Returns:
            ``(O, OH, OW)`` for a ``(C, H, W)`` input, ``(N, O, OH, OW)`` for ``(N, C, H, W)``.
        """
        if self.ndim not in (3, 4):
            raise ValueError(f"conv2d: input must have shape (C, H, W) or (N, C, H, W), got {self.shape}")
        w = linalg.weights(weight, "weight")
        x = self if self.ndim == 4 else self.reshape((1,) + self.shape)
        idx, exps, out_shape = linalg.conv2d_plan(x.shape, w, stride, padding)
        pk = self.public_key
        bases = np.concatenate([x._flat, _limbs.const(1, pk.ct_limbs, 1)])  # index size -> E(0) = 1
        out = self._new(linalg.multiexp(pk, bases, idx, exps).reshape(out_shape + (pk.ct_limbs,)))
        if bias is not None:
            if isinstance(bias, EncryptedTensor):
                b = bias
            else:
                b = as_int_array(bias, "bias")
            if tuple(b.shape) != (out_shape[1],):
                raise ValueError(f"conv2d: bias must have shape ({out_shape[1]},), got {tuple(b.shape)}")
            out = out + b.reshape(out_shape[1], 1, 1)
        return out if self.ndim == 4 else out[0]

    # -- conversion --------------------------------------------------------------------
    def to_ints(self) -> list[int]:
        """The raw Paillier ciphertexts as Python ints, flat and row-major."""
        return limbs_to_ints(self._flat)

    @classmethod
    def from_ints(cls, public_key: "PublicKey", ints: Sequence[int], shape: Any) -> "EncryptedTensor":
        """Build a tensor from raw ciphertexts (row-major), validating ``0 < c < n**2``.

        Raises:
            TypeError: if an entry is not an int.
            ValueError: if the count does not match ``shape`` or a value is out of range.
        """
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        vals = list(ints)
        if len(vals) != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"from_ints: {len(vals)} ciphertexts do not fill shape {shape}")
        for i, v in enumerate(vals):
            if isinstance(v, (bool, np.bool_)) or not hasattr(v, "__index__"):
                raise TypeError(f"from_ints: ciphertext at index {i} is {type(v).__name__}, not int")
            if not 0 < int(v) < public_key.nsquare:
                raise ValueError(f"from_ints: ciphertext at index {i} is not in (0, n^2)")
        limbs = ints_to_limbs([int(v) for v in vals], public_key.ct_limbs)
        return cls(public_key, limbs.reshape(shape + (public_key.ct_limbs,)))

    def to_bytes(self) -> bytes:
        """Serialise with the public key (see ``docs/paillier.md``)."""
        return serialize.tensor_to_bytes(self.public_key.n, self.public_key.hs, self._data)

    @classmethod
    def from_bytes(cls, data: bytes, public_key: "PublicKey") -> "EncryptedTensor":
        """Load and validate a tensor written by :meth:`to_bytes` under ``public_key``.

        The key is required: the bytes carry the key they were written under, but a
        tensor from anyone else could carry any key, so that copy is only compared
        with the one the caller trusts, never used.

        Args:
            data: the bytes.
            public_key: the key the tensor must have been written under.

        Raises:
            TypeError: if ``data`` is not bytes or ``public_key`` is not a PublicKey.
            ValueError: on corruption, inconsistency or a different public key.
        """
        if not isinstance(public_key, cls._key_type):
            raise TypeError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
        n, _, limbs = serialize.tensor_from_bytes(data)
        if n != public_key.n:
            raise ValueError("EncryptedTensor: serialised under a different public key than the one given")
        return cls(public_key, limbs)


def _in_range(m: np.ndarray, n: int) -> np.ndarray:
    """``m``, after checking that every value is a plaintext of ``(-n/2, n/2)``."""
    check_plaintext_range(m, n, "other")
    return m


def _negate(m: np.ndarray) -> np.ndarray:
    if m.dtype == np.int64 and (m.size == 0 or m.min() > -INT64_MAX - 1):
        return -m
    out = np.empty(m.shape, dtype=object)
    out.ravel()[:] = [-int(v) for v in m.ravel()]
    return out


def concatenate(tensors: Sequence[EncryptedTensor], axis: int = 0) -> EncryptedTensor:
    """Join EncryptedTensors of one public key along an existing axis.

    Raises:
        ValueError: on an empty list, different keys, bad axis or mismatched shapes.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: need at least one EncryptedTensor")
    for t in tensors:
        if not isinstance(t, EncryptedTensor):
            raise TypeError(f"concatenate: expected EncryptedTensors, got {type(t).__name__}")
        _same_key(tensors[0].public_key, t.public_key)
    ndim = tensors[0].ndim
    if not -ndim <= axis < ndim:
        raise ValueError(f"concatenate: axis {axis} is out of bounds for {ndim} dimensions")
    try:
        data = np.concatenate([t._data for t in tensors], axis=axis % ndim)
    except ValueError as exc:
        raise ValueError(f"concatenate: {exc}") from None
    return EncryptedTensor(tensors[0].public_key, data)
