"""Image checks for every system, and the exact integer preprocessing of the security factor.

One set of rules for every image the library accepts (System A and B batches,
System C captures):

* not a numpy array -> :class:`TypeError`;
* a dtype other than uint8 -> :class:`TypeError` naming the dtype;
* a wrong shape or an empty image/batch -> :class:`ValueError` naming the shape.

:func:`check_images` checks a batch of grey images ``(N, H, W)``; a single 2-D
image ``(H, W)`` is promoted to a batch of one, for System A and System B alike.
:func:`check_capture` checks one System C capture, grey ``(H, W)`` or with
channels ``(H, W, 1)`` / ``(H, W, 3)``.

The preprocessing is integer arithmetic on uint8 input, so a terminal and the
verifier derive the same model input from the same pixels on any machine.
"""
from __future__ import annotations

import numpy as np


def _check_uint8(a, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint8 array, got {type(a).__name__}")
    if a.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (grey levels 0..255), got dtype {a.dtype}")
    return a


def check_images(images: np.ndarray, shape: tuple[int, int] | None = (28, 28), *,
                 name: str = "images") -> np.ndarray:
    """Validate a batch of grey images for a classifier; returns it C-contiguous, (N, H, W).

    Args:
        images: uint8 array (N, H, W); a single image (H, W) is promoted to (1, H, W).
        shape: the required (H, W); ``None`` accepts any sides >= 1.
        name: the argument's name in error messages.

    Raises:
        TypeError: if ``images`` is not a numpy array or its dtype is not uint8.
        ValueError: if its shape is not (N, H, W) with N >= 1 and (H, W) == ``shape``.
    """
    images = _check_uint8(images, name)
    if images.ndim == 2:
        images = images[None]
    sides = "H, W" if shape is None else f"{shape[0]}, {shape[1]}"
    if images.ndim != 3 or 0 in images.shape or (shape is not None and images.shape[1:] != tuple(shape)):
        raise ValueError(f"{name} must have shape (N, {sides}) with N >= 1, or ({sides}) for one image; "
                         f"got {images.shape}")
    return np.ascontiguousarray(images)


def check_capture(image: np.ndarray, *, max_side: int | None = None, name: str = "image") -> np.ndarray:
    """Validate one capture (System C); returns it C-contiguous.

    Args:
        image: uint8 array (H, W), (H, W, 1) or (H, W, 3).
        max_side: largest accepted height or width (``None``: no limit).
        name: the argument's name in error messages.

    Raises:
        TypeError: if ``image`` is not a numpy array or its dtype is not uint8.
        ValueError: if its shape is not one of those, a side is 0, or a side exceeds ``max_side``.
    """
    image = _check_uint8(image, name)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)) or 0 in image.shape:
        raise ValueError(f"{name} must have shape (H, W), (H, W, 1) or (H, W, 3) with H, W >= 1, "
                         f"got {image.shape}")
    if max_side is not None and max(image.shape[:2]) > max_side:
        raise ValueError(f"{name} sides must be 1..{max_side}, got {image.shape[:2]}")
    return np.ascontiguousarray(image)


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey image of a capture (:func:`check_capture`); RGB uses the BT.601 weights in
    integers: (299 R + 587 G + 114 B + 500) // 1000."""
    image = check_capture(image)
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[..., 0]
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
