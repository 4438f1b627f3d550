"""Exact integer image preprocessing shared by training and the security factor.

Everything here is integer arithmetic on uint8 input, so a terminal and the
verifier derive the same model input from the same pixels on any machine.
"""
from __future__ import annotations

import numpy as np


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate a capture: uint8, shape [H, W] or [H, W, 3], both sides >= 1."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or 0 in image.shape:
        raise ValueError(f"image must have shape [H, W] or [H, W, 3], got {list(image.shape)}")
    return image


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey image; RGB uses the BT.601 weights in integers: (299 R + 587 G + 114 B + 500) // 1000."""
    image = check_image(image)
    if image.ndim == 2:
        return image
    rgb = image.astype(np.int32)  # 1000 * 255 fits easily
    return ((299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000).astype(np.uint8)


def _bins(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(size, dtype=np.int64)
    lo = i * n // size
    hi = np.maximum((i + 1) * n // size, lo + 1)
    return lo, hi


def resize_box(grey: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D uint8 image to ``size`` x ``size`` by exact box averaging (rounded half up).

    Output pixel (i, j) is the mean of source rows ``[i*H//size, max((i+1)*H//size, i*H//size+1))``
    and the same for columns; an image already ``size`` x ``size`` is returned unchanged.
    """
    if grey.ndim != 2:
        raise ValueError(f"resize_box expects a 2-D image, got shape {list(grey.shape)}")
    h, w = grey.shape
    if (h, w) == (size, size):
        return grey.copy()
    if h % size == 0 and w % size == 0:  # whole blocks: the same bins, summed directly
        kh, kw = h // size, w // size
        s = grey.reshape(size, kh, size, kw).sum(axis=(1, 3), dtype=np.int64)
        area = kh * kw
        return ((2 * s + area) // (2 * area)).astype(np.uint8)
    ii = np.zeros((h + 1, w + 1), dtype=np.int64)
    ii[1:, 1:] = grey.astype(np.int64).cumsum(0).cumsum(1)
    r0, r1 = _bins(h, size)
    c0, c1 = _bins(w, size)
    s = ii[r1][:, c1] - ii[r0][:, c1] - ii[r1][:, c0] + ii[r0][:, c0]
    area = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return ((2 * s + area) // (2 * area)).astype(np.uint8)


def model_input(image: np.ndarray, size: int) -> np.ndarray:
    """The model's view of a capture: grey, ``size`` x ``size``, uint8."""
    return resize_box(to_grey(image), size)
