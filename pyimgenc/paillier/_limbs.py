"""Vectorised carry arithmetic and comparisons on ``(B, L)`` uint64 limb arrays.

:mod:`pyimgenc.math` offers modular products only; the Paillier layer also
needs a few linear operations (``y + n*t``, ``n - |m|``, range checks).  They
cost ``O(L)`` numpy passes over the batch, never one Python int per element.
"""
from __future__ import annotations

import numpy as np

from ..math import int_to_limbs


def pad(a: np.ndarray, nlimbs: int) -> np.ndarray:
    """Zero-extend ``(B, La)`` limbs to ``(B, nlimbs)`` (``nlimbs >= La``)."""
    if a.shape[-1] == nlimbs:
        return np.ascontiguousarray(a)
    out = np.zeros(a.shape[:-1] + (nlimbs,), dtype=np.uint64)
    out[..., :a.shape[-1]] = a
    return out


def const(value: int, nlimbs: int, batch: int) -> np.ndarray:
    """``(batch, nlimbs)`` limbs all holding ``value``."""
    return np.repeat(int_to_limbs(value, nlimbs)[None, :], batch, axis=0)  # writable copy


def add(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a + b`` limb-wise with carries; returns ``(sum mod 2**(64L), carry-out bool)``."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.uint64)
    carry = np.zeros(out.shape[:-1], dtype=bool)
    for i in range(out.shape[-1]):
        s1 = a[..., i] + b[..., i]
        c1 = s1 < a[..., i]
        s = s1 + carry.astype(np.uint64)
        carry = c1 | (s < s1)
        out[..., i] = s
    return out, carry


def sub(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a - b`` limb-wise with borrows; returns ``(difference mod 2**(64L), borrow-out bool)``."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.uint64)
    borrow = np.zeros(out.shape[:-1], dtype=bool)
    for i in range(out.shape[-1]):
        ai, bi = a[..., i], b[..., i]
        d = ai - bi - borrow.astype(np.uint64)
        borrow = (ai < bi) | ((ai == bi) & borrow)
        out[..., i] = d
    return out, borrow


def less_than(a: np.ndarray, value: int) -> np.ndarray:
    """Boolean mask ``a[i] < value`` for ``(B, L)`` limbs (``value`` must fit in L limbs)."""
    v = int_to_limbs(value, a.shape[-1])
    lt = np.zeros(a.shape[:-1], dtype=bool)
    eq = np.ones(a.shape[:-1], dtype=bool)
    for i in range(a.shape[-1] - 1, -1, -1):
        lt |= eq & (a[..., i] < v[i])
        eq &= a[..., i] == v[i]
    return lt


def is_zero(a: np.ndarray) -> np.ndarray:
    """Boolean mask of the numbers equal to zero."""
    return ~a.any(axis=-1)


def addmod(a: np.ndarray, b: np.ndarray, modulus: int) -> np.ndarray:
    """``(a + b) mod N`` for reduced ``(B, L)`` operands (L = limbs of N)."""
    s, carry = add(a, b)
    big = carry | ~less_than(s, modulus)
    d, _ = sub(s, int_to_limbs(modulus, s.shape[-1]))
    return np.where(big[..., None], d, s)
