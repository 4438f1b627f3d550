"""Try-imports of the private native modules; sets the ``HAVE_*`` flags.

Only :mod:`pyimgenc.math` and :mod:`pyimgenc.backend` use what is here.
"""
from __future__ import annotations

import functools

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



_CUDA_SOURCES = ("cuda/paillier.cu", "lane/lane.hpp")


def cuda_sources_dir():
    """Folder holding the CUDA engine's sources (``cuda/paillier.cu``, ``lane/lane.hpp``): the
    copy in the installed package (``pyimgenc/cuda_src``), else ``csrc/`` of a source
    checkout; ``None`` if neither (a :class:`pathlib.Path` otherwise)."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for d in (here / "cuda_src", here.parent / "csrc"):
        if all((d / f).is_file() for f in _CUDA_SOURCES):
            return d
    return None


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """Whether the CUDA engine can run here, and why (not): the native core, CuPy, the
    engine's CUDA sources, a device, NVRTC.  Imports CuPy only when it is installed; the
    answer is cached for the process (``cuda_status.cache_clear()`` to ask again)."""
    import importlib.util

    if not HAVE_CORE:
        return False, f"the CUDA engine needs the native core for its input checks ({CORE_ERROR})"
    if importlib.util.find_spec("cupy") is None:
        return False, "CuPy is not installed (pip install 'pyimgenc[gpu]')"
    if cuda_sources_dir() is None:
        return False, "the CUDA sources (cuda/paillier.cu, lane/lane.hpp) are missing from this install"
    try:
        import cupy

        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CuPy raises its own CUDARuntimeError without a driver/device
        first = (str(exc).splitlines() or [""])[0]
        return False, f"CuPy sees no usable CUDA device ({type(exc).__name__}: {first})"
    if count < 1:
        return False, "no CUDA device is visible"
    try:  # the engine compiles its kernels at run time: NVRTC must load too
        cupy.cuda.nvrtc.getVersion()
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        return False, (f"CuPy cannot load NVRTC to compile the kernels ({type(exc).__name__}: {first}); "
                       "install the CUDA toolkit or pip install 'cupy-cuda12x[ctk]'")
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return True, f"{count} CUDA device(s); device 0: {name}"

