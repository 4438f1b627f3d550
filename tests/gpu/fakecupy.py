"""A CuPy stand-in that runs pyimgenc's CUDA kernels on the CPU, for machines without a GPU.

``RawModule`` compiles the very source the CUDA engine hands to NVRTC (``cuda/paillier.cu``
and ``lane/lane.hpp``) as host C++ with g++, with ``__global__``/``__device__`` defined away
and ``blockIdx``/``threadIdx`` emulated; a launch runs the threads of the grid on three
OpenMP threads, blocks interleaved.
Each kernel argument is passed as CuPy passes it - the raw bytes of the NumPy scalar, or the
array's address - so a Python-side type or order mismatch with the kernel's signature reads
garbage and fails the tests, as it would on a device.

What this does not cover: the device-only branches of lane.hpp (``__umul64hi``,
``__clzll``), the device's memory model and scheduling, and NVRTC itself (csrc/tests/nvrtc_check.py); benchmarks/gpu_check.sh runs
the same tests on a real device.
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import importlib.machinery
import os
import shutil
import subprocess
import tempfile
import types

import numpy as np

_EMU = r"""
#pragma once
#include <cstddef>
#include <utility>
struct pyi_dim3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local pyi_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
// The grid's threads run concurrently on 3 OpenMP threads (whatever the core count: not a
// power of two, so no two grid threads of the same index in different blocks always share an
// OpenMP thread), blocks interleaved; a thread writing outside its own slice of a shared
// buffer shows up as wrong answers.  Every coordinate is thread_local and set per grid
// thread, so launches from several Python threads do not disturb each other.
template <class F> void pyi_emu_grid(unsigned gx, unsigned bx, F f) {
  const long n = (long)gx * bx;
#pragma omp parallel for schedule(static, 1) num_threads(3)
  for (long i = 0; i < n; ++i) {
    gridDim.x = gx; blockDim.x = bx;
    blockIdx.x = (unsigned)(i % gx); threadIdx.x = (unsigned)(i / gx);
    f();
  }
}
template <class... A, std::size_t... I>
void pyi_call_impl(void (*f)(A...), void** args, std::index_sequence<I...>) { f(*static_cast<A*>(args[I])...); }
template <class... A> void pyi_call(void (*f)(A...), void** args) {
  pyi_call_impl(f, args, std::index_sequence_for<A...>{});
}
"""

_CACHE = None  # this process' build folder (private: made by mkdtemp; no cross-run cache to trust)


def _cache() -> str:
    global _CACHE
    if _CACHE is None:
        _CACHE = tempfile.mkdtemp(prefix="pyimgenc-fakecupy-")
        atexit.register(shutil.rmtree, _CACHE, True)
    return _CACHE

uint64 = np.uint64
int64 = np.int64
ndarray = np.ndarray


def asarray(x, dtype=None):  # a device copy, as CuPy makes (never the caller's array)
    return np.array(x, dtype=dtype, order="C", copy=True)


def asnumpy(x):  # a host copy, as CuPy makes
    return np.array(x, copy=True)


def empty(shape, dtype=np.float64):
    return np.empty(shape, dtype=dtype)


class RawModule:
    def __init__(self, code: str, options=(), name_expressions=()):
        inc = [o[2:] for o in options if o.startswith("-I")]
        self.names = list(name_expressions)
        launchers = "\n".join(
            f'extern "C" void pyi_launch_{i}(unsigned gx, unsigned bx, void** args) '
            f"{{ pyi_emu_grid(gx, bx, [&] {{ pyi_call(&{name}, args); }}); }}"
            for i, name in enumerate(self.names))
        src = f'#include "pyi_emu.hpp"\n{code}\n{launchers}\n'
        key = hashlib.sha256((src + "".join(inc) + _EMU).encode()).hexdigest()[:20]
        lib = os.path.join(_cache(), f"mod-{key}.so")
        if not os.path.exists(lib):
            work = tempfile.mkdtemp(dir=_cache())
            with open(os.path.join(work, "pyi_emu.hpp"), "w") as f:
                f.write(_EMU)
            cpp = os.path.join(work, "kernels.cpp")
            with open(cpp, "w") as f:
                f.write(src)
            cmd = ["g++", "-std=c++17", "-O1", "-fopenmp", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
                   f"-I{work}", *[f"-I{d}" for d in inc], "-o", lib + ".tmp", cpp]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(f"fakecupy: g++ failed:\n{res.stderr[-4000:]}")
            os.replace(lib + ".tmp", lib)
            shutil.rmtree(work, ignore_errors=True)
        self._lib = ctypes.CDLL(lib)

    def get_function(self, name: str):
        return _Kernel(getattr(self._lib, f"pyi_launch_{self.names.index(name)}"))


class _Kernel:
    def __init__(self, fn):
        self.fn = fn
        self.fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]

    def __call__(self, grid, block, args):
        keep, ptrs = [], []
        for a in args:
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError("fakecupy: kernel arrays must be C-contiguous")
                v = ctypes.c_void_p(a.ctypes.data)
            elif isinstance(a, np.generic):      # CuPy passes a NumPy scalar's bytes as they are:
                # a scalar narrower than the kernel's parameter reads the 0xA5 filler after it
                v = (ctypes.c_char * 16).from_buffer_copy(a.tobytes() + b"\xa5" * (16 - a.itemsize))
            else:
                raise TypeError(f"fakecupy: kernel argument of type {type(a).__name__} (CuPy wants NumPy "
                                "scalars or arrays)")
            keep.append(v)
            ptrs.append(ctypes.cast(ctypes.pointer(v), ctypes.c_void_p))
        arr = (ctypes.c_void_p * len(ptrs))(*[p.value for p in ptrs])
        self.fn(int(grid[0]), int(block[0]), arr)


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"CPU stand-in (tests/gpu/fakecupy.py)", "multiProcessorCount": 1}


class Device:
    def __init__(self, device_id: int = 0):
        self.id = device_id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


def module() -> types.ModuleType:
    """This stand-in as a module named ``cupy`` (to put in ``sys.modules``)."""
    here = globals()
    fake = types.ModuleType("cupy")
    fake.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    for name in ("uint64", "int64", "ndarray", "asarray", "asnumpy", "empty", "RawModule"):
        setattr(fake, name, here[name])
    fake.cuda = types.SimpleNamespace(runtime=_Runtime, Device=Device,
                                      nvrtc=types.SimpleNamespace(getVersion=lambda: (0, 0)))
    return fake
