"""Ciphertext multi-exponentiation, and the index plans of sum / matmul / conv2d.

A linear map with integer weights on ciphertexts is ``out[m] = prod_t c[idx[m,t]] **
w[m,t] mod n**2``.  :func:`multiexp` runs it for signed exponents of any size (the
twin-server protocol uses it directly); :func:`sum_plan`, :func:`matmul_plan` and
:func:`conv2d_plan` build ``idx`` (into a flat array of ciphertexts) and ``w`` for
:class:`~pyimgenc.paillier.EncryptedTensor`.  The limb-level primitive underneath
is :func:`pyimgenc.math.multiexp` (int64 exponents, no inverses of its own).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np

from ..math import int_to_limbs, ints_to_limbs, limbs_to_ints, mulmod, powmod
from ..math import multiexp as limb_multiexp
from . import _limbs
from .encoding import as_int_array

if TYPE_CHECKING:  # pragma: no cover
    from .keys import PublicKey

INT64_MIN = -2**63
CHUNK_BITS = 63  # big exponents are cut into signed 64-bit words (|chunk| <= 2**63 - 1)


def weights(w: Any, name: str) -> np.ndarray:
    """Integer weights as int64 (multiexp exponents must fit a signed 64-bit word).

    Raises:
        TypeError: for non-integer weights.
        ValueError: for weights outside ``(-2**63, 2**63)``.
    """
    arr = as_int_array(w, name)
    if arr.dtype != np.int64 or (arr.size and arr.min() == INT64_MIN):
        raise ValueError(f"{name} must fit in signed 64 bits (|w| < 2**63) for dot/matmul/conv2d")
    return arr


def inverses(nsquare: int, c: np.ndarray) -> np.ndarray:
    """``(B, L)`` limbs of ``c[i]**-1 mod n**2``.

    Raises:
        ValueError: if a ciphertext is not invertible (shares a factor with n).
    """
    out = []
    for v in limbs_to_ints(c):
        try:
            out.append(int(gmpy2.invert(v, nsquare)))
        except ZeroDivisionError:
            raise ValueError("a ciphertext is not invertible modulo n^2 (not a valid ciphertext)") from None
    return ints_to_limbs(out, c.shape[1])


def multiexp(pk: "PublicKey", bases: np.ndarray, idx: Any, exps: Any) -> np.ndarray:
    """``out[m] = prod_t bases[idx[m, t]] ** exps[m, t] mod n**2`` for signed exponents of any size.

    The homomorphic linear map ``E(sum_t w_t x_t)`` from ciphertexts ``E(x)``: the
    engine of ``sum``, ``@`` and ``conv2d``, and of the twin-server protocol's
    packed products.  Exponents that fit in int64 take one multi-exponentiation
    (squarings shared across the terms of an output, each base's window table
    built once).  Larger ones are cut into 63-bit chunks, one multi-exponentiation
    each, joined by Horner's rule (63 squarings per output and chunk).  Negative
    exponents use modular inverses of the bases (or of the outputs, when fewer).
    The result keeps the randomness of the bases (it is not re-randomised).

    Args:
        pk: the public key; ``n**2`` is the modulus.
        bases: ``(K, L)`` uint64 ciphertext limbs (``L = pk.ct_limbs``), values in
            ``[0, n**2)``; a base met by a negative exponent must be invertible.
        idx: ``(M, T)`` integer indices into ``bases``; ``-1`` marks an unused term
            (skipped, as if its exponent were 0).
        exps: ``(M, T)`` integers of any size and sign: an int64 array, an object
            array of Python ints, or nested lists.

    Returns:
        ``(M, L)`` uint64 limbs.

    Raises:
        TypeError: if ``bases`` is not a uint64 array, or ``idx``/``exps`` hold non-integers.
        ValueError: on mismatched shapes, an index outside ``[-1, K)``, or a
            non-invertible base with a negative exponent.
    """
    L = pk.ct_limbs
    if not isinstance(bases, np.ndarray) or bases.dtype != np.uint64:
        raise TypeError("bases must be a uint64 numpy array of ciphertext limbs")
    if bases.ndim != 2 or bases.shape[1] != L:
        raise ValueError(f"bases must have shape (K, {L}), got {bases.shape}")
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu" or idx.ndim != 2:
        raise TypeError(f"idx must be a 2-D integer array, got {idx.ndim}-D of dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    e = as_int_array(exps, "exps")
    if e.shape != idx.shape:
        raise ValueError(f"exps must have idx's shape {idx.shape}, got {e.shape}")
    k = bases.shape[0]
    if idx.size and (idx.min() < -1 or idx.max() >= k):
        bad = idx.min() if idx.min() < -1 else idx.max()
        raise ValueError(f"idx: index {int(bad)} is outside [-1, {k}) for {k} bases")
    skip = idx < 0
    if skip.any():
        if k == 0:
            bases = _limbs.const(1, L, 1)
        idx = np.where(skip, 0, idx)
        e = np.where(skip, 0, e).astype(e.dtype)
    if e.dtype == np.int64 and (e.size == 0 or e.min() > INT64_MIN):
        return _multiexp_int64(pk, bases, idx, e)
    return _multiexp_chunked(pk, bases, idx, e)


def _multiexp_chunked(pk: "PublicKey", bases: np.ndarray, idx: np.ndarray, e: np.ndarray) -> np.ndarray:
    """:func:`multiexp` for exponents beyond int64: 63-bit chunks, most significant first, by Horner."""
    flat = [int(v) for v in e.ravel()]
    mags = [abs(v) for v in flat]
    nchunks = max(1, -(-max(mags, default=0).bit_length() // CHUNK_BITS))
    sign = np.array([1 if v >= 0 else -1 for v in flat], dtype=np.int64)
    mask = (1 << CHUNK_BITS) - 1
    mod = pk.nsquare_modulus
    shift = int_to_limbs(1 << CHUNK_BITS, 2)[None, :]
    acc = None
    for c in reversed(range(nchunks)):
        chunk = np.array([(m >> (CHUNK_BITS * c)) & mask for m in mags], dtype=np.int64) * sign
        part = _multiexp_int64(pk, bases, idx, chunk.reshape(idx.shape))
        acc = part if acc is None else mulmod(powmod(acc, shift, mod), part, mod)
    return acc


def _multiexp_int64(pk: "PublicKey", bases: np.ndarray, idx: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """:func:`multiexp` for int64 exponents above ``-2**63`` and indices in ``[0, K)``.

    Negative exponents need modular inverses.  Either the bases that meet one are
    inverted (one inversion each), or, when there are fewer outputs than such
    bases, the positive and negative parts run as two multi-exponentiations and
    only the M outputs of the negative part are inverted:
    ``out = prod c^w+ * (prod c^w-)^-1``.
    """
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    exps = np.ascontiguousarray(exps, dtype=np.int64)
    mod = pk.nsquare_modulus
    neg = exps < 0
    if not neg.any():
        return limb_multiexp(bases, idx, exps, mod)
    need = np.unique(idx[neg])
    rows_neg = neg.any(axis=1)
    if int(rows_neg.sum()) < len(need):
        # one call (the bases' window tables are built once): M positive rows, then
        # the |negative| part of every row that has one
        sub = np.flatnonzero(rows_neg)
        both = limb_multiexp(bases, np.concatenate([idx, idx[sub]]),
                             np.concatenate([np.where(neg, 0, exps), np.where(neg[sub], -exps[sub], 0)]), mod)
        out, negpart = both[: len(idx)], both[len(idx):]
        out[sub] = mulmod(out[sub], inverses(pk.nsquare, negpart), mod)
        return out
    # Only the bases that meet a negative exponent need an inverse; the rest stay 1.
    inv = _limbs.const(1, bases.shape[1], bases.shape[0])
    inv[need] = inverses(pk.nsquare, bases[need])
    return limb_multiexp(bases, idx, exps, mod, inv_bases=inv)


def sum_plan(shape: tuple[int, ...], axis: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """``(idx, exps, out_shape)`` summing a tensor of ``shape`` over ``axis`` (None = all)."""
    ndim = len(shape)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        for a in axes:
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
                raise TypeError(f"sum: axis must be an int or a tuple of ints, got {axis!r}")
            if not -ndim <= a < ndim:
                raise ValueError(f"sum: axis {a} is out of bounds for a tensor of dimension {ndim}")
        axes = tuple(sorted({int(a) % ndim for a in axes}))
    keep = [a for a in range(ndim) if a not in axes]
    grid = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape).transpose(keep + list(axes))
    out_shape = tuple(shape[a] for a in keep)
    t = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    idx = grid.reshape(-1, t) if grid.size else np.zeros((int(np.prod(out_shape, dtype=np.int64)), t), np.int64)
    return idx, np.ones_like(idx), out_shape


def matmul_plan(shape: tuple[int, ...], w: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """``(idx, exps, out_shape)`` for ``E @ W`` with E of ``shape`` (ndim >= 1), W 1-D or 2-D."""
    if len(shape) == 0:
        raise ValueError("matmul: a 0-d EncryptedTensor cannot be multiplied as a matrix")
    if w.ndim not in (1, 2):
        raise ValueError(f"matmul: the plaintext matrix must be 1-D or 2-D, got shape {w.shape}")
    k = shape[-1]
    if w.shape[0] != k:
        raise ValueError(f"matmul: shapes {shape} and {w.shape} are not aligned ({k} != {w.shape[0]})")
    w2 = w[:, None] if w.ndim == 1 else w  # (k, j)
    j = w2.shape[1]
    lead = shape[:-1]
    rows = int(np.prod(lead, dtype=np.int64))
    grid = np.arange(rows * k, dtype=np.int64).reshape(rows, 1, k)
    idx = np.broadcast_to(grid, (rows, j, k)).reshape(rows * j, k)
    exps = np.broadcast_to(w2.T[None, :, :], (rows, j, k)).reshape(rows * j, k)
    out_shape = lead + ((j,) if w.ndim == 2 else ())
    return idx, exps, out_shape


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        vals: tuple = (v, v)
    else:
        try:
            vals = tuple(v)
        except TypeError:
            raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {v!r}") from None
    if len(vals) != 2 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in vals):
        raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {v!r}")
    return int(vals[0]), int(vals[1])


def conv2d_plan(shape: tuple[int, ...], w: np.ndarray, stride: Any, padding: Any
                ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """``(idx, exps, out_shape)`` of a 2-D cross-correlation (PyTorch ``conv2d`` semantics).

    Index ``size`` (one past the last input) stands for padding: the caller appends
    the ciphertext 1 (= E(0) with r = 0) there, so pad positions contribute nothing.

    Args:
        shape: input shape ``(N, C, H, W)``.
        w: int64 weights ``(O, C, kh, kw)``.
        stride: int or (sh, sw), each >= 1.
        padding: int or (ph, pw), each >= 0.
    """
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got {stride!r}, {padding!r}")
    if w.ndim != 4:
        raise ValueError(f"conv2d: weight must have shape (O, C, kh, kw), got {w.shape}")
    n, c, h, wd = shape
    o, wc, kh, kw = w.shape
    if wc != c:
        raise ValueError(f"conv2d: weight has {wc} input channels but the input has {c}")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    if kh < 1 or kw < 1 or oh < 1 or ow < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} does not fit the padded input {h + 2 * ph}x{wd + 2 * pw}")
    size = n * c * h * wd
    grid = np.arange(size, dtype=np.int64).reshape(shape)
    padded = np.pad(grid, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=size)
    win = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))
    win = win[:, :, ::sh, ::sw][:, :, :oh, :ow]  # (N, C, OH, OW, kh, kw)
    t = c * kh * kw
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n, 1, oh * ow, t)
    idx = np.broadcast_to(cols, (n, o, oh * ow, t)).reshape(-1, t)
    exps = np.broadcast_to(w.reshape(1, o, 1, t), (n, o, oh * ow, t)).reshape(-1, t)
    return idx, exps, (n, o, oh, ow)
