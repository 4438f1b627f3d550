"""Compile the CUDA engine's kernels with NVRTC exactly as pyimgenc.math.cuda has CuPy do it
(same source folder, options and name expressions), for the limb counts of 1024- to 4096-bit
Paillier keys.  NVRTC needs no GPU: this checks, on any machine, that the run-time compile
a user's GPU will do succeeds (no host headers, every template instance resolves).

Usage: python csrc/tests/nvrtc_check.py [path/to/libnvrtc.so]  (default: the nvidia-cuda-nvrtc
wheel's library, found through the installed package ``nvidia``).  Exit status 0 on success.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys

from pyimgenc.math import cuda


def _lib(path: str | None) -> ctypes.CDLL:
    if path is None:
        import nvidia  # the nvidia-cuda-nvrtc wheel

        found = sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], "**", "libnvrtc.so*"), recursive=True))
        found = [f for f in found if "builtins" not in f]
        if not found:
            sys.exit("nvrtc_check: libnvrtc not found (pip install nvidia-cuda-nvrtc)")
        path = found[0]
    return ctypes.CDLL(path)


def compile_one(nv, code: bytes, options: list[str], names: list[str]) -> tuple[bool, str]:
    prog = ctypes.c_void_p()
    rc = nv.nvrtcCreateProgram(ctypes.byref(prog), code, b"paillier.cu", 0, None, None)
    assert rc == 0, f"nvrtcCreateProgram: {rc}"
    for n in names:
        assert nv.nvrtcAddNameExpression(prog, n.encode()) == 0, n
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    rc = nv.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nv.nvrtcGetProgramLog(prog, log)
    ok = rc == 0
    if ok:
        for n in names:
            lowered = ctypes.c_char_p()
            ok &= nv.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(lowered)) == 0 and bool(lowered.value)
    nv.nvrtcDestroyProgram(ctypes.byref(prog))
    return ok, log.value.decode(errors="replace")


def main() -> int:
    nv = _lib(sys.argv[1] if len(sys.argv) > 1 else None)
    src = cuda.sources_dir()
    if src is None:
        sys.exit("nvrtc_check: the CUDA sources are missing from the installed pyimgenc")
    code = cuda.module_source(src).encode()          # the very text the engine hands to CuPy
    # CuPy adds the device's architecture; sm_90 (Hopper) makes NVRTC go on to machine code,
    # so ptxas' limits (registers, stack) are checked too, not just the PTX
    options = list(cuda.compile_options(src)) + ["--gpu-architecture=sm_90"]
    failures = 0
    # (limbs, arithmetic): n^2 of 1024/2048/4096-bit keys by Montgomery, and pairs over n
    # and the runtime-L instances (LC = 0) that serve every other size
    for lc, pair in ((32, 0), (64, 0), (128, 0), (16, 1), (32, 1), (64, 1), (0, 0), (0, 1)):
        ok, log = compile_one(nv, code, options, cuda.kernel_names(lc, pair))
        warn = [ln for ln in log.splitlines() if "warning" in ln]
        print(f"{'ok  ' if ok and not warn else 'FAIL'} LC={lc:3d} PAIR={pair}")
        if not ok or warn:
            failures += 1
            print(log[-4000:])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
