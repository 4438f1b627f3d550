"""Index plans for sum / matmul / conv2d, all executed by one :func:`multiexp` call.

A linear map with integer weights on ciphertexts is ``out[m] = prod_t c[idx[m,t]] **
w[m,t] mod n**2``.  Each function here builds ``idx`` (into a flat array of
ciphertexts) and ``w``, and :func:`combine` runs the multi-exponentiation.
"""
from __future__ import annotations

from typing import Any

import gmpy2
import numpy as np

from ..math import ints_to_limbs, limbs_to_ints, mulmod, multiexp
from . import _limbs
from .encoding import as_int_array

INT64_MIN = -2**63


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


def combine(pk, bases: np.ndarray, idx: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """``out[m] = prod_t bases[idx[m,t]] ** exps[m,t] mod n**2`` (``(M, L)`` limbs).

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
        return multiexp(bases, idx, exps, mod)
    need = np.unique(idx[neg])
    rows_neg = neg.any(axis=1)
    if int(rows_neg.sum()) < len(need):
        # one call (the bases' window tables are built once): M positive rows, then
        # the |negative| part of every row that has one
        sub = np.flatnonzero(rows_neg)
        both = multiexp(bases, np.concatenate([idx, idx[sub]]),
                        np.concatenate([np.where(neg, 0, exps), np.where(neg[sub], -exps[sub], 0)]), mod)
        out, negpart = both[: len(idx)], both[len(idx):]
        out[sub] = mulmod(out[sub], inverses(pk.nsquare, negpart), mod)
        return out
    # Only the bases that meet a negative exponent need an inverse; the rest stay 1.
    inv = _limbs.const(1, bases.shape[1], bases.shape[0])
    inv[need] = inverses(pk.nsquare, bases[need])
    return multiexp(bases, idx, exps, mod, inv_bases=inv)


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
