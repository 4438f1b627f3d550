"""Try-imports of the private native modules; sets the ``HAVE_*`` flags.

Only :mod:`pyimgenc.math` and :mod:`pyimgenc.backend` use what is here.
"""
from __future__ import annotations

try:  # pragma: no cover - exercised by whether the build succeeded
    from . import _core  # type: ignore[attr-defined]

    HAVE_CORE = True
    HAVE_IFMA = bool(_core.has_ifma())
    CORE_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover
    _core = None
    HAVE_CORE = False
    HAVE_IFMA = False
    CORE_ERROR = str(exc)

# No CUDA engine is built yet; the flag is kept so callers can ask.
HAVE_CUDA = False
