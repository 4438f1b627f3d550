"""The CUDA engine's tests run twice: on a real device when there is one, and everywhere on
the CPU through tests/gpu/fakecupy.py (the same kernels compiled as C++, the grid's threads
run concurrently on the CPU)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys

import pytest

from pyimgenc import _ext, backend

_spec = importlib.util.spec_from_file_location("pyimgenc_tests_fakecupy",
                                               os.path.join(os.path.dirname(__file__), "fakecupy.py"))
fakecupy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakecupy)


def _reset():
    _ext.cuda_status.cache_clear()
    from pyimgenc.math import cuda
    cuda._clear_engines()


@pytest.fixture(params=["stand-in", "device"])
def cuda_engine(request, monkeypatch):
    """Run with backend 'cuda' on the CPU stand-in, then on a real device (skips without one)."""
    if request.param == "device":
        _reset()
        ok, why = _ext.cuda_status()
        if not ok:
            pytest.skip(f"no CUDA device here: {why}")
    else:
        if shutil.which("g++") is None:
            pytest.fail("the CUDA stand-in needs g++ (it compiles the kernels as C++)")
        monkeypatch.setitem(sys.modules, "cupy", fakecupy.module())
        _reset()
        ok, why = _ext.cuda_status()
        assert ok, why
    backend.set_backend("cuda")
    try:
        yield request.param
    finally:
        backend.set_backend(None)
        _reset()
