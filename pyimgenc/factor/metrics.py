"""Standard image-encryption metrics (numpy): NPCR, UACI, entropy, adjacent-pixel
correlation and histograms, as used to evaluate cipher images.

NPCR/UACI compare two cipher images (of two plain images that differ in one
pixel); for 8-bit images of random-looking ciphers their expected values are
99.6094% and 33.4635% (Wu, Noonan & Agaian, 2011, give the critical ranges).
"""
from __future__ import annotations

import numpy as np


def _u8(name: str, x) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 numpy array")
    if x.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got {x.shape}")
    return x


def npcr(c1: np.ndarray, c2: np.ndarray) -> float:
    """Number of pixels change rate, in percent."""
    c1, c2 = _u8("c1", c1), _u8("c2", c2)
    if c1.shape != c2.shape:
        raise ValueError(f"shapes differ: {c1.shape} vs {c2.shape}")
    return float(100.0 * np.mean(c1 != c2))


def uaci(c1: np.ndarray, c2: np.ndarray) -> float:
    """Unified average changing intensity, in percent."""
    c1, c2 = _u8("c1", c1), _u8("c2", c2)
    if c1.shape != c2.shape:
        raise ValueError(f"shapes differ: {c1.shape} vs {c2.shape}")
    return float(100.0 * np.mean(np.abs(c1.astype(np.int16) - c2.astype(np.int16))) / 255.0)


def entropy(x: np.ndarray) -> float:
    """Shannon entropy of the 8-bit histogram, in bits (at most 8)."""
    h = histogram(x).astype(np.float64)
    p = h[h > 0] / h.sum()
    return float(-(p * np.log2(p)).sum())


def histogram(x: np.ndarray) -> np.ndarray:
    """256-bin histogram of all samples (all channels together)."""
    return np.bincount(_u8("x", x).ravel(), minlength=256)


def correlation(x: np.ndarray, direction: str = "horizontal") -> float:
    """Pearson correlation of adjacent pixel pairs (all pairs, channels averaged).

    Args:
        direction: ``"horizontal"``, ``"vertical"`` or ``"diagonal"``.
    """
    x = _u8("x", x).astype(np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if direction == "horizontal":
        a, b = x[:, :-1], x[:, 1:]
    elif direction == "vertical":
        a, b = x[:-1, :], x[1:, :]
    elif direction == "diagonal":
        a, b = x[:-1, :-1], x[1:, 1:]
    else:
        raise ValueError(f"direction must be horizontal, vertical or diagonal, got {direction!r}")
    rs = []
    for ch in range(x.shape[2]):
        u, v = a[..., ch].ravel(), b[..., ch].ravel()
        if u.std() == 0 or v.std() == 0:
            rs.append(0.0 if u.std() == v.std() else float("nan"))
        else:
            rs.append(float(np.corrcoef(u, v)[0, 1]))
    return float(np.mean(rs))
