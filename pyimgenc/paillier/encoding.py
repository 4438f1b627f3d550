"""Plaintext encoding: signed integers <-> residues mod n, and fixed-point floats.

Paillier plaintexts live in ``Z_n``.  Signed integers ``m`` with
``-n/2 < m < n/2`` are stored as ``m mod n``; decryption maps residues back to
the centred interval ``(-n/2, n/2]`` (``n`` is odd, so the two agree).

Fixed point: a real ``x`` is encoded as ``round(x * scale)`` (half away from
zero).  Scales multiply: the product of a value of scale ``s1`` with one of
scale ``s2`` (e.g. ``E(a) * b`` or a dot product) carries scale ``s1 * s2``,
while sums need equal scales.  The caller keeps track of the scale and passes
the final one to :func:`decode_fixed`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..math import ints_to_limbs, nlimbs_for
from . import _limbs

INT64_MAX = 2**63 - 1


def as_int_array(x: Any, name: str) -> np.ndarray:
    """Convert ``x`` to an int64 array, or an object array of Python ints when needed.

    Accepts ints, nested lists, integer/bool numpy arrays and object arrays of
    ints.  uint64 values above ``2**63 - 1`` give an object array.

    Raises:
        TypeError: if ``x`` holds floats, complex numbers or other non-integers.
    """
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer or integer array, got bool")
    arr = x if isinstance(x, np.ndarray) else np.asarray(x, dtype=object if _has_big_int(x) else None)
    kind = arr.dtype.kind
    if kind in "i":
        return arr.astype(np.int64, copy=False)
    if kind == "b":
        return arr.astype(np.int64)
    if kind == "u":
        if arr.size and arr.max() > INT64_MAX:
            return _to_object(arr)
        return arr.astype(np.int64)
    if kind == "O":
        flat = arr.ravel()
        for v in flat:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must contain only integers, found {type(v).__name__}")
        out = _to_object(arr)
        if all(-INT64_MAX - 1 <= v <= INT64_MAX for v in out.ravel()):
            return out.astype(np.int64)
        return out
    raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype} "
                    "(use encode_fixed for floats)")


def _has_big_int(x: Any) -> bool:
    if isinstance(x, int):
        return not -2**63 <= x <= INT64_MAX
    if isinstance(x, (list, tuple)):
        return any(_has_big_int(v) for v in x)
    return False


def _to_object(arr: np.ndarray) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    out.ravel()[:] = [int(v) for v in arr.ravel()]  # ravel of a fresh array is a view
    return out


def check_plaintext_range(m: np.ndarray, n: int, name: str = "plaintext") -> None:
    """Raise ``ValueError`` unless every value lies in ``(-n/2, n/2)``."""
    bound = (n - 1) // 2
    if m.size == 0:
        return
    if m.dtype == np.int64:
        if bound >= INT64_MAX:
            return
        lo, hi = int(m.min()), int(m.max())
    else:
        lo, hi = min(m.ravel()), max(m.ravel())
    if lo < -bound or hi > bound:
        bad = lo if lo < -bound else hi
        raise ValueError(f"{name} value {bad} is outside the plaintext range (-n/2, n/2) = "
                         f"[-{bound}, {bound}] of this {n.bit_length()}-bit key")


def plaintext_limbs(m: np.ndarray, n: int, nlimbs: int | None = None) -> np.ndarray:
    """``(size, nlimbs)`` limbs of ``m mod n`` for a checked int64/object array ``m``."""
    nlimbs = nlimbs or nlimbs_for(n)
    flat = m.ravel()
    if m.dtype != np.int64:
        return ints_to_limbs([int(v) % n for v in flat], nlimbs)
    out = np.zeros((flat.size, nlimbs), dtype=np.uint64)
    neg = flat < 0
    u = flat.view(np.uint64)
    out[:, 0] = np.where(neg, np.uint64(0) - u, u)  # |m| (exact even for -2**63)
    if neg.any():
        diff, _ = _limbs.sub(_limbs.const(n, nlimbs, int(neg.sum())), out[neg])
        out[neg] = diff
    return out


def centre(values: list[int], n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Map residues mod n to ``(-n/2, n/2]``; int64 array when all fit, else object array."""
    half = n // 2
    signed = [v - n if v > half else v for v in values]
    if all(-INT64_MAX - 1 <= v <= INT64_MAX for v in signed):
        return np.array(signed, dtype=np.int64).reshape(shape)
    out = np.empty(len(signed), dtype=object)
    out[:] = signed
    return out.reshape(shape)


def _check_scale(scale: Any) -> int:
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, np.integer)):
        raise TypeError(f"scale must be a positive int, got {type(scale).__name__}")
    if scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale}")
    return int(scale)


def encode_fixed(x: Any, scale: int) -> np.ndarray:
    """Encode reals as integers ``round(x * scale)``, rounding half away from zero.

    Args:
        x: float (or int) scalar or array.
        scale: positive integer scale factor.

    Returns:
        int64 array of the same shape.

    Raises:
        TypeError: if ``x`` is not numeric or ``scale`` is not an int.
        ValueError: if a value is not finite or ``x * scale`` does not fit in int64.
    """
    scale = _check_scale(scale)
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"x must be a real-valued array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("x contains NaN or infinity; cannot encode as fixed point")
    scaled = arr * float(scale)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    if rounded.size and np.abs(rounded).max() >= 2.0**63:
        raise ValueError(f"x * scale overflows int64 (largest |x * scale| = {np.abs(scaled).max():.3g})")
    return rounded.astype(np.int64)


def decode_fixed(values: Any, scale: int) -> np.ndarray:
    """Decode integers of scale ``scale`` to float64: ``values / scale`` (correctly rounded).

    Args:
        values: int64 or object array of Python ints (e.g. a decryption result).
        scale: the scale the values carry (a product of scales after multiplications).
    """
    scale = _check_scale(scale)
    arr = as_int_array(values, "values")
    if arr.dtype == np.int64 and scale < 2**53 and (arr.size == 0 or -2**53 < arr.min() <= arr.max() < 2**53):
        return arr.astype(np.float64) / float(scale)
    return np.array([int(v) / scale for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)
