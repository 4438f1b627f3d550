"""Conversion between Python integers and arrays of fixed-width 64-bit limbs.

Every batched primitive in :mod:`pyimgenc.math` takes and returns numbers as
``numpy.uint64`` arrays of shape ``(..., L)``: ``L`` little-endian 64-bit limbs
per number, C-contiguous.  This is the only layout that crosses into native code.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

LIMB_BITS = 64
LIMB_BYTES = 8


def nlimbs_for(value: int) -> int:
    """Number of 64-bit limbs needed to hold ``value`` (at least one)."""
    if value < 0:
        raise ValueError("nlimbs_for: value must be non-negative")
    return max(1, (int(value).bit_length() + LIMB_BITS - 1) // LIMB_BITS)


def ints_to_limbs(values: Iterable[int], nlimbs: int) -> np.ndarray:
    """Pack non-negative integers into a ``(B, nlimbs)`` uint64 array.

    Raises:
        ValueError: if a value is negative or does not fit in ``nlimbs`` limbs.
    """
    values = list(values)
    nbytes = nlimbs * LIMB_BYTES
    try:
        buf = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    except OverflowError:
        bad = next(v for v in values if int(v) < 0 or int(v).bit_length() > nbytes * 8)
        raise ValueError(
            f"integer {'is negative' if int(bad) < 0 else 'does not fit'} "
            f"in {nlimbs} unsigned 64-bit limbs (bit length {int(bad).bit_length()})"
        ) from None
    out = np.frombuffer(buf, dtype="<u8").astype(np.uint64, copy=True)
    return out.reshape(len(values), nlimbs)


def int_to_limbs(value: int, nlimbs: int) -> np.ndarray:
    """Pack one non-negative integer into a ``(nlimbs,)`` uint64 array."""
    return ints_to_limbs([value], nlimbs)[0]


def limbs_to_ints(arr: np.ndarray) -> list[int]:
    """Unpack a ``(..., L)`` uint64 array into a flat, row-major list of ints."""
    if not isinstance(arr, np.ndarray) or arr.ndim == 0:
        raise ValueError("limbs_to_ints: expected an array of shape (..., L)")
    arr = np.ascontiguousarray(arr, dtype="<u8")
    nbytes = arr.shape[-1] * LIMB_BYTES
    buf = arr.tobytes()
    return [int.from_bytes(buf[i:i + nbytes], "little") for i in range(0, len(buf), nbytes)]


def check_limbs(name: str, arr: np.ndarray, nlimbs: int | None = None,
                max_limbs: int | None = None) -> np.ndarray:
    """Validate a limb array argument; returns it as a C-contiguous 2-D uint64 array.

    Raises:
        TypeError: if ``arr`` is not a uint64 numpy array.
        ValueError: if its last dimension is not the expected limb count.
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint64 array of limbs, got {type(arr).__name__}")
    if arr.dtype != np.uint64:
        raise TypeError(f"{name} must have dtype uint64 (64-bit limbs), got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (batch, limbs), got {arr.shape}")
    if nlimbs is not None and arr.shape[1] != nlimbs:
        raise ValueError(f"{name} must have {nlimbs} limbs per number, got {arr.shape[1]}")
    if max_limbs is not None and arr.shape[1] > max_limbs:
        raise ValueError(f"{name} has {arr.shape[1]} limbs per number; at most {max_limbs} allowed")
    return np.ascontiguousarray(arr)


MAX_EXP_LIMBS = 256  # exponents of at most 16384 bits (the native core's limit), on every backend


def as_exponent_limbs(name: str, exps, batch: int | None = None) -> np.ndarray:
    """Turn exponents (uint64 limb array, or sequence/array of non-negative ints) into limbs.

    Raises:
        TypeError: if an exponent is not an integer (floats are never truncated).
        ValueError: if an exponent is negative, or the limbs are not 1 to 256 per exponent.
    """
    out = _exponent_limbs(name, exps)
    if not 1 <= out.shape[1] <= MAX_EXP_LIMBS:
        raise ValueError(f"{name}: 1 to {MAX_EXP_LIMBS} limbs per exponent, got {out.shape[1]}")
    return out


def _exponent_limbs(name: str, exps) -> np.ndarray:
    if isinstance(exps, np.ndarray):
        if exps.dtype.kind not in "iuO":
            raise TypeError(f"{name}: exponents must be integers, got dtype {exps.dtype}")
        if exps.dtype == np.uint64 and exps.ndim == 2:
            return np.ascontiguousarray(exps)
        if exps.dtype.kind in "iu" and exps.ndim == 1:
            if exps.dtype.kind == "i" and (exps < 0).any():
                raise ValueError(f"{name}: exponents must be non-negative")
            return np.ascontiguousarray(exps.astype(np.uint64)[:, None])
    if isinstance(exps, (bool, np.bool_)):
        raise TypeError(f"{name}: exponents must be integers, got bool")
    if isinstance(exps, (int, np.integer)):
        exps = [exps]
    flat = np.asarray(exps, dtype=object).ravel()
    seq: list[int] = []
    for e in flat:
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer)):
            try:
                import gmpy2
                if isinstance(e, type(gmpy2.mpz(0))):
                    seq.append(int(e))
                    continue
            except ImportError:  # pragma: no cover
                pass
            raise TypeError(f"{name}: exponents must be integers, got {type(e).__name__}")
        seq.append(int(e))
    if any(e < 0 for e in seq):
        raise ValueError(f"{name}: exponents must be non-negative")
    width = max([nlimbs_for(e) for e in seq] or [1])
    return ints_to_limbs(seq, width)
