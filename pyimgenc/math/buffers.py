"""Uninitialised byte buffers from the native core, with a pure-Python fallback."""
from __future__ import annotations

from .. import _ext


def new_bytes(n: int) -> tuple[bytes | bytearray, memoryview]:
    """``(buffer, writable view)`` of ``n`` bytes to fill in place.

    With the native core the buffer is an uninitialised :class:`bytes` object (no
    zero-filling and no copy when it is returned); without it, a :class:`bytearray`.
    Write every byte through the view before the buffer is used, and release the view.

    Args:
        n: size in bytes, >= 0.

    Raises:
        TypeError: if ``n`` is not an integer.
        ValueError: if ``n`` is negative.
    """
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if _ext.HAVE_CORE and hasattr(_ext._core, "new_bytes"):
        return _ext._core.new_bytes(n)
    buf = bytearray(n)
    return buf, memoryview(buf)
