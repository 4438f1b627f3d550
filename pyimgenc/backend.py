"""Backend selection: the only place that knows which engines exist.

Resolution order (the same for every choice here): explicit argument -> setter
-> environment variable -> automatic.  Asking explicitly (by any of the first
three) for an engine that is not available raises :class:`RuntimeError`; the
automatic choice falls back quietly.

Modular arithmetic (:mod:`pyimgenc.math`): :func:`get_backend`, :func:`set_backend`,
``PYIMGENC_BACKEND``; automatic is ``cuda`` when CuPy and a device are present,
else ``cpu`` — the C++ core — else ``python``.

The C++ backend has three code paths with identical results: ``ifma`` (AVX-512
IFMA, 8-lane multi-buffer), ``adx`` (64-bit limbs, x86-64 BMI2/ADX ``mulx``/``adcx``/
``adox`` kernels) and ``generic`` (64-bit limbs in C++ over ``unsigned __int128``: every
other CPU, ARM64 included).  ``portable`` names the best of the last two on this CPU.
``lane`` runs the CUDA engine's per-lane code (``csrc/lane/lane.hpp``, exponentiation
drivers included) on the CPU, one element per thread as a GPU thread would: never chosen
automatically, it exists so the GPU's arithmetic is tested on machines without a GPU.
The path is chosen by :func:`set_cpu_path`, then ``PYIMGENC_CPU_PATH``, then
automatically (the first available of ``ifma``, ``adx``, ``generic``);
:func:`cpu_path_reason` says why.

Threads: :func:`set_num_threads`, then ``PYIMGENC_NUM_THREADS``, then all cores.

System B's evaluation engine (:mod:`pyimgenc.rns`): :func:`get_rns_engine`,
:func:`set_rns_engine`, ``PYIMGENC_RNS_ENGINE``; ``cuda`` (int64 CUDA kernels through
numba.cuda), ``torch`` (float64-exact, CPU or CUDA) or ``numba`` (int64 loops, CPU).
Automatic is ``cuda`` when numba sees a CUDA device, else ``torch`` when a non-CPU device
is asked for, else ``numba``.  The torch engine's device is the one asked for, else
``cuda`` when present, else ``cpu``.
"""
from __future__ import annotations

import importlib.util
import os

from . import _ext

BACKENDS = ("cuda", "cpu", "python")
CPU_PATHS = ("ifma", "adx", "generic", "portable", "lane")  # portable: adx where available, else generic
CPU_PATH_CODES = {"portable": 0, "ifma": 1, "adx": 2, "generic": 3, "lane": 4}  # the native core's numbering

_backend: str | None = None
_cpu_path: str | None = None
_num_threads: int | None = None


def native_status() -> dict:
    """What the native build offers on this machine, for ``pyimgenc info`` and bug reports.

    Returns:
        ``{"core": bool, "core_error": str | None, "ifma": bool, "adx": bool, "cuda": bool,
        "cuda_reason": str}``:
        whether the C++ core imported (and why not), whether the CPU has AVX-512 IFMA, whether
        it has BMI2 + ADX (and the build has those kernels), whether the CUDA engine can run
        (CuPy, its sources and a device: :func:`pyimgenc._ext.cuda_status` says why not).
    """
    return {"core": _ext.HAVE_CORE, "core_error": _ext.CORE_ERROR, "ifma": _ext.HAVE_IFMA,
            "adx": _ext.HAVE_ADX, "cuda": _ext.cuda_status()[0], "cuda_reason": _ext.cuda_status()[1]}


def available_backends() -> list[str]:
    """Backends usable on this machine, fastest first."""
    out = []
    if _ext.cuda_status()[0]:
        out.append("cuda")
    if _ext.HAVE_CORE:
        out.append("cpu")
    out.append("python")
    return out


def available_cpu_paths() -> list[str]:
    """CPU code paths usable on this machine, fastest first (``ifma`` needs AVX-512 IFMA,
    ``adx`` an x86-64 CPU with BMI2 and ADX; ``generic`` and ``lane`` run everywhere; ``lane``,
    the GPU's code on the CPU, is last and never the automatic choice)."""
    if not _ext.HAVE_CORE:
        return []
    return (["ifma"] if _ext.HAVE_IFMA else []) + (["adx"] if _ext.HAVE_ADX else []) + ["generic", "lane"]


def _resolve_cpu_path(name: str, where: str) -> str:
    if name not in CPU_PATHS:
        raise ValueError(f"{where}: unknown CPU path {name!r}; choose one of {CPU_PATHS}")
    paths = available_cpu_paths()
    if name == "portable" and paths:
        return [p for p in paths if p not in ("ifma", "lane")][0]
    if name not in paths:
        need = {"ifma": "AVX-512 IFMA", "adx": "an x86-64 CPU with BMI2 and ADX"}.get(name, "the native core")
        raise RuntimeError(f"{where}: CPU path {name!r} is not available on this CPU (needs {need})")
    return name


def _check_backend(name: str, where: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {name!r}; choose one of {BACKENDS}")
    if name not in available_backends():
        why = {"cuda": _ext.cuda_status()[1],
               "cpu": f"the native core failed to import ({_ext.CORE_ERROR})"}.get(name, "")
        raise RuntimeError(f"{where}: backend {name!r} is not available here: {why}")
    return name


def set_backend(name: str | None) -> None:
    """Set the default backend (``None`` restores automatic choice)."""
    global _backend
    _backend = None if name is None else _check_backend(name, "set_backend")


def get_backend(name: str | None = None) -> str:
    """Resolve the backend to use for one call."""
    if name is not None:
        return _check_backend(name, "backend")
    if _backend is not None:
        return _backend
    env = os.environ.get("PYIMGENC_BACKEND")
    if env:
        return _check_backend(env, "PYIMGENC_BACKEND")
    return available_backends()[0]


def set_cpu_path(name: str | None) -> None:
    """Force the C++ path (``'ifma'``, ``'adx'``, ``'generic'``, ``'portable'`` or ``'lane'``;
    ``None`` = automatic)."""
    global _cpu_path
    if name is not None:
        _resolve_cpu_path(name, "set_cpu_path")
    _cpu_path = name


def get_cpu_path(name: str | None = None) -> str:
    """Resolve the C++ path: argument -> set_cpu_path -> PYIMGENC_CPU_PATH -> auto.

    Returns the concrete path (``'portable'`` resolves to ``'adx'`` or ``'generic'``)."""
    for value, where in ((name, "cpu_path"), (_cpu_path, "set_cpu_path"),
                         (os.environ.get("PYIMGENC_CPU_PATH"), "PYIMGENC_CPU_PATH")):
        if value:
            return _resolve_cpu_path(value, where)
    paths = available_cpu_paths()
    if not paths:
        raise RuntimeError(f"the native core is not available: {_ext.CORE_ERROR}")
    return paths[0]


def cpu_path_reason() -> str:
    """One line: the C++ path in use and why (for ``pyimgenc info`` and bug reports)."""
    for value, where in ((_cpu_path, "set_cpu_path()"),
                         (os.environ.get("PYIMGENC_CPU_PATH"), "PYIMGENC_CPU_PATH")):
        if value:
            return f"{get_cpu_path()}: forced by {where}={value!r}"
    path = get_cpu_path()
    if path == "ifma":
        return "ifma: this CPU has AVX-512 IFMA (8 numbers per instruction, 52-bit digits)"
    if path == "adx":
        return ("adx: this CPU has BMI2 and ADX (mulx/adcx/adox) but not AVX-512 IFMA; "
                f"dedicated kernels for {', '.join(map(str, _ext._core.adx_limb_counts()))} limbs, "
                "generic C++ for other sizes")
    import platform
    return (f"generic: C++ over unsigned __int128 on {platform.machine() or 'this CPU'} "
            "(no AVX-512 IFMA, no BMI2/ADX kernels here)")


def set_num_threads(n: int | None) -> None:
    """Set the number of threads batched primitives use (``None`` = all cores)."""
    global _num_threads
    if n is not None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    _num_threads = n


def get_num_threads() -> int:
    """Threads used by batched primitives: set_num_threads -> PYIMGENC_NUM_THREADS -> cores."""
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("PYIMGENC_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"PYIMGENC_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"PYIMGENC_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- System B engine

RNS_ENGINES = ("cuda", "torch", "numba")

_rns_engine: str | None = None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _torch_cuda() -> bool:
    """Whether torch is installed and sees a CUDA device (imports torch only when installed)."""
    if not _installed("torch"):
        return False
    import torch
    return bool(torch.cuda.is_available())


def _numba_cuda() -> tuple[bool, str]:
    """Whether numba's CUDA target can run System B's kernels here (a device, or Numba's
    simulator under ``NUMBA_ENABLE_CUDASIM=1``), and why not."""
    if not _installed("numba"):
        return False, "numba is not installed"
    try:
        from numba import cuda
        if cuda.is_available():
            return True, "numba.cuda simulator" if _numba_cudasim() else "numba.cuda device"
    except Exception as exc:  # pragma: no cover - broken CUDA installs
        return False, f"numba.cuda failed to load ({type(exc).__name__}: {exc})"
    return False, "numba.cuda finds no CUDA device (pip install 'pyimgenc[gpu]' on a machine with one)"


def _numba_cudasim() -> bool:
    import numba
    return bool(getattr(numba.config, "ENABLE_CUDASIM", 0))


def available_rns_engines() -> list[str]:
    """System B engines usable here, the automatic choice first: ``cuda`` (numba.cuda
    kernels) with a real GPU, else ``numba`` (CPU loops) before ``torch``; ``cuda`` under
    Numba's simulator is listed last (it is for tests, never automatic)."""
    have = [e for e in ("torch", "numba") if _installed(e)]
    if "torch" in have and "numba" in have and not _torch_cuda():
        have = ["numba", "torch"]
    if _numba_cuda()[0]:
        have = have + ["cuda"] if _numba_cudasim() else ["cuda"] + have
    return have


def _check_rns_engine(name: str, where: str) -> str:
    if name not in RNS_ENGINES:
        raise ValueError(f"{where}: unknown RNS engine {name!r}; choose one of {RNS_ENGINES}")
    if name == "cuda":
        ok, why = _numba_cuda()
        if not ok:
            raise RuntimeError(f"{where}: RNS engine 'cuda' is not available here: {why}")
    elif not _installed(name):
        raise RuntimeError(f"{where}: RNS engine {name!r} is not available here: {name} is not installed")
    return name


def set_rns_engine(name: str | None) -> None:
    """Set the default System B engine, ``"cuda"``, ``"torch"`` or ``"numba"`` (``None`` restores automatic
    choice)."""
    global _rns_engine
    _rns_engine = None if name is None else _check_rns_engine(name, "set_rns_engine")


def get_rns_engine(name: str | None = None, device: str | None = None) -> tuple[str, str]:
    """Resolve System B's engine and device for one server.

    Args:
        name: ``"cuda"``, ``"torch"``, ``"numba"`` or ``None`` (then :func:`set_rns_engine`, then
            ``PYIMGENC_RNS_ENGINE``, then automatic).
        device: a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None`` picks one.

    Returns:
        ``(engine, device)``; the numba engine always runs on ``"cpu"``, the cuda engine on ``"cuda"``.

    Raises:
        ValueError: for an unknown engine, or a non-CPU device with the numba engine.
        RuntimeError: if the engine asked for is not installed.
    """
    if name is not None:
        engine = _check_rns_engine(name, "engine")
    elif _rns_engine is not None:
        engine = _rns_engine
    elif os.environ.get("PYIMGENC_RNS_ENGINE"):
        engine = _check_rns_engine(os.environ["PYIMGENC_RNS_ENGINE"], "PYIMGENC_RNS_ENGINE")
    else:
        have = available_rns_engines()
        if not have:
            raise RuntimeError("no RNS engine is available: install numba (CPU) or torch (CPU or CUDA)")
        engine = "torch" if device not in (None, "cpu") and "torch" in have else have[0]
        if engine == "cuda" and device == "cpu":
            engine = [e for e in have if e != "cuda"][0]
    if engine == "numba":
        if device not in (None, "cpu"):
            raise ValueError(f"the numba engine runs on the CPU; device {device!r} needs engine='torch'")
        return engine, "cpu"
    if engine == "cuda":
        if device not in (None, "cuda"):
            raise ValueError(f"the cuda engine runs on the current CUDA device; device {device!r} needs "
                             "engine='torch'")
        return engine, "cuda"
    return engine, device or ("cuda" if _torch_cuda() else "cpu")
