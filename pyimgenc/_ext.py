"""Try-imports of the private native modules; sets the ``HAVE_*`` flags.

Only :mod:`pyimgenc.math` and :mod:`pyimgenc.backend` use what is here.
"""
from __future__ import annotations

try:  # pragma: no cover - exercised by whether the build succeeded
    from . import _core  # type: ignore[attr-defined]

    HAVE_CORE = True
    HAVE_IFMA = bool(_core.has_ifma())
    HAVE_ADX = bool(_core.has_adx())
    CORE_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover
    import importlib.machinery as _m
    import os as _os

    _here = _os.path.dirname(__file__)
    _core = None
    HAVE_CORE = False
    HAVE_IFMA = False
    HAVE_ADX = False
    if not any(f.startswith("_core.") and f.endswith(tuple(_m.EXTENSION_SUFFIXES)) for f in _os.listdir(_here)):
        CORE_ERROR = (f"the compiled module pyimgenc._core is not in {_here} (a source tree or a broken "
                      f"install): pip install the wheel, or build it with `pip install .` (needs a C++17 compiler)")
    else:
        CORE_ERROR = str(exc)

# No CUDA engine is built yet; the flag is kept so callers can ask.
HAVE_CUDA = False
