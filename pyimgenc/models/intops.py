"""Exact integer operations and input encodings of the integer classifiers (numpy only).

The plaintext integer models of System A (:class:`pyimgenc.models.icnn.IntegerICNN`,
the twin-server protocol's graph in :mod:`pyimgenc.twinserver.graph`) and of
System B (:class:`pyimgenc.rns.IntegerCNN`) are built from the functions here, so
each operation and each encoding has one definition.  Nothing here imports torch.

Arrays are NCHW.  Every operation is exact on integer arrays: ``object`` arrays
hold Python integers of any size; ``int64`` arrays are checked against overflow
where a product could exceed 63 bits (:func:`conv2d`).  Results keep the input's
dtype.

Input encoding (both systems): a uint8 MNIST grey level ``p`` is normalised as in
training, ``x = (p / 255 - MNIST_MEAN) / MNIST_STD`` (float64), and becomes the
fixed-point integer ``round(x * scale)`` (:func:`fixed_point_images`).  System A
uses ``scale = 2**fx``, System B its ``Delta``.
"""
from __future__ import annotations

import numpy as np

MNIST_MEAN = 0.1307
"""Mean grey level of the MNIST training images (pixels in [0, 1])."""
MNIST_STD = 0.3081
"""Standard deviation of the MNIST training grey levels (pixels in [0, 1])."""

__all__ = ["MNIST_MEAN", "MNIST_STD", "normalise_mnist", "fixed_point_images", "pad2d", "im2col", "conv2d",
           "max_pool2d", "sum_pool2d", "relu"]


# ----------------------------------------------------------------------------- encodings

def normalise_mnist(images: np.ndarray) -> np.ndarray:
    """``(p / 255 - MNIST_MEAN) / MNIST_STD`` in float64, elementwise, any shape.

    Args:
        images: uint8 grey levels (any shape; not validated here, see
            :func:`pyimgenc.models.preprocess.check_images`).

    Returns:
        float64 array of the same shape.
    """
    return (np.asarray(images).astype(np.float64) / 255.0 - MNIST_MEAN) / MNIST_STD


def fixed_point_images(images: np.ndarray, scale: int) -> np.ndarray:
    """The integer model input: ``round(normalise_mnist(images) * scale)`` as int64, same shape.

    Rounding is half to even (``numpy.rint``).  System A calls it with ``scale = 2**fx``,
    System B with its fixed-point scale ``Delta``.

    Args:
        images: uint8 grey levels, any shape.
        scale: positive integer fixed-point scale.

    Raises:
        TypeError: if ``scale`` is not an integer.
        ValueError: if ``scale`` is not positive.
    """
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool):
        raise TypeError(f"scale must be an integer, got {type(scale).__name__}")
    if scale < 1:
        raise ValueError(f"scale must be positive, got {scale}")
    return np.rint(normalise_mnist(images) * int(scale)).astype(np.int64)


# ----------------------------------------------------------------------------- layers

def _check_nchw(x: np.ndarray, name: str = "x") -> None:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {x.shape}")


def pad2d(x: np.ndarray, pad: int, value=0) -> np.ndarray:
    """``x`` (N, C, H, W) with ``pad`` rows/columns of ``value`` on every side (a copy when ``pad > 0``)."""
    _check_nchw(x)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if not pad:
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + 2 * pad, w + 2 * pad), value, dtype=x.dtype)
    out[:, :, pad:pad + h, pad:pad + w] = x
    return out


def _out_side(size: int, k: int, pad: int, stride: int, what: str) -> int:
    if k < 1 or stride < 1:
        raise ValueError(f"{what}: kernel and stride must be >= 1, got k={k}, stride={stride}")
    if size + 2 * pad < k:
        raise ValueError(f"{what}: a {k}x{k} window does not fit a side of {size} with padding {pad}")
    return (size + 2 * pad - k) // stride + 1


def _windows(xp: np.ndarray, k: int, stride: int, ho: int, wo: int) -> list[np.ndarray]:
    """The ``k*k`` shifted views ``xp[..., i::stride, j::stride]`` (each (N, C, ho, wo)), row-major (i, j)."""
    return [xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            for i in range(k) for j in range(k)]


def im2col(x: np.ndarray, k: int, pad: int = 0, stride: int = 1) -> np.ndarray:
    """The taps of a ``k`` x ``k`` convolution as a ``(C*k*k, N*Ho*Wo)`` matrix.

    Row ``(c, i, j)`` (row-major) holds channel ``c`` of the zero-padded input shifted
    by ``(i, j)``, flattened over ``(n, ho, wo)``; ``Ho = (H + 2*pad - k) // stride + 1``
    (likewise ``Wo``).  ``weights.reshape(O, -1) @ im2col(x, k, pad, stride)`` is the
    convolution, output channel by output channel.

    Args:
        x: (N, C, H, W) integer array (object or int64).
        k: kernel side.
        pad: zero padding on every side.
        stride: step between windows.
    """
    _check_nchw(x)
    n, c, h, w = x.shape
    ho, wo = _out_side(h, k, pad, stride, "im2col"), _out_side(w, k, pad, stride, "im2col")
    taps = np.stack(_windows(pad2d(x, pad), k, stride, ho, wo), axis=2)      # (N, C, k*k, Ho, Wo)
    return taps.transpose(1, 2, 0, 3, 4).reshape(c * k * k, n * ho * wo)


def conv2d(x: np.ndarray, w: np.ndarray, pad: int = 0, *, bias: np.ndarray | None = None,
           stride: int = 1) -> np.ndarray:
    """Exact integer convolution (cross-correlation, as in torch): (N, C, H, W) -> (N, O, Ho, Wo).

    ``out[n, o] = sum_{c, i, j} w[o, c, i, j] * xpad[n, c, s*y + i, s*x + j] + bias[o]``.
    Object arrays give exact Python integers; for int64 arrays the largest possible
    accumulator is checked first and :class:`OverflowError` raised instead of wrapping.

    Args:
        x: (N, C, H, W) integers.
        w: (O, C, k, k) integers.
        pad: zero padding on every side.
        bias: optional (O,) integers added to every output of channel ``o``.
        stride: step between windows.

    Raises:
        ValueError: if the shapes do not match.
        OverflowError: if an int64 accumulator could exceed 63 bits.
    """
    _check_nchw(x)
    if not isinstance(w, np.ndarray) or w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"w must be a (O, C, k, k) array, got {getattr(w, 'shape', type(w).__name__)}")
    n, c, h, wd = x.shape
    o, cw, k, _ = w.shape
    if cw != c:
        raise ValueError(f"w has {cw} input channels, x has {c}")
    for name, a in (("x", x), ("w", w)):
        if a.dtype != object and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name} must hold integers (an integer or object dtype), got dtype {a.dtype}")
    if x.dtype == object or w.dtype == object:
        x, w = x.astype(object, copy=False), w.astype(object, copy=False)
    else:
        x, w = x.astype(np.int64, copy=False), w.astype(np.int64, copy=False)
        bmax = 0 if bias is None else max((abs(int(v)) for v in np.ravel(bias)), default=0)
        xmax = int(np.abs(x).max()) if x.size else 0
        l1 = int(np.abs(w.reshape(o, -1)).astype(object).sum(axis=1).max()) if w.size else 0
        if xmax * l1 + bmax >= 1 << 63:
            raise OverflowError(f"conv2d: |x| <= {xmax} times a weight row of L1 norm {l1} could exceed int64; "
                                "use object arrays")
    cols = im2col(x, k, pad, stride)
    ho, wo = _out_side(h, k, pad, stride, "conv2d"), _out_side(wd, k, pad, stride, "conv2d")
    out = np.matmul(w.reshape(o, -1), cols).reshape(o, n, ho, wo).transpose(1, 0, 2, 3)
    if bias is not None:
        b = np.asarray(bias)
        if b.shape != (o,):
            raise ValueError(f"bias must have shape ({o},), got {b.shape}")
        out = out + b.astype(out.dtype)[None, :, None, None]
    return np.ascontiguousarray(out)


def max_pool2d(x: np.ndarray, k: int, stride: int | None = None, pad: int = 0) -> np.ndarray:
    """Exact ``k`` x ``k`` max-pooling of (N, C, H, W) with ``stride`` (default ``k``) and ``pad``.

    Padding never wins (it is filled below every value, as ``-inf`` in torch), so
    ``max_pool2d(x, 3, 1, 1)`` keeps the side and ignores missing neighbours.
    """
    _check_nchw(x)
    stride = k if stride is None else stride
    n, c, h, w = x.shape
    ho, wo = _out_side(h, k, pad, stride, "max_pool2d"), _out_side(w, k, pad, stride, "max_pool2d")
    if pad:
        floor = min(int(np.min(x)), 0) - 1 if x.size else 0
        if x.dtype != object and floor <= np.iinfo(x.dtype).min:
            x = x.astype(object)
        x = pad2d(x, pad, floor)
    return np.stack(_windows(x, k, stride, ho, wo), axis=0).max(axis=0)


def sum_pool2d(x: np.ndarray, k: int) -> np.ndarray:
    """Sums over non-overlapping ``k`` x ``k`` windows of (N, C, H, W); H and W must be multiples of ``k``.

    Average pooling in integers is this sum times a fixed-point reciprocal of ``k*k``.
    """
    _check_nchw(x)
    n, c, h, w = x.shape
    if k < 1 or h % k or w % k:
        raise ValueError(f"sum_pool2d: sides {h}x{w} must be multiples of k={k}")
    return x.reshape(n, c, h // k, k, w // k, k).sum(axis=(3, 5))


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise (integers stay exact; the dtype is kept)."""
    return np.where(x > 0, x, 0).astype(x.dtype, copy=False)
