"""Backend / CPU-path resolution, thread count, and thread-independence of results."""
from __future__ import annotations

import math
import os
import random

import gmpy2
import numpy as np
import pytest

import pyimgenc
from pyimgenc import _ext, backend
from pyimgenc.math import FixedBase, ints_to_limbs, limbs_to_ints, mulmod, multiexp, nlimbs_for, powmod

N = (1 << 1000) + 0x2F  # odd, 16 limbs
L = nlimbs_for(N)


def _bases(k, seed=0):
    rng = random.Random(seed)
    return [rng.randrange(N) for _ in range(k)]


# --- what is available ----------------------------------------------------------

def test_available_lists_are_consistent():
    assert backend.available_backends()[-1] == "python"
    assert ("cpu" in backend.available_backends()) == _ext.HAVE_CORE
    paths = backend.available_cpu_paths()
    assert paths == ((["ifma"] if _ext.HAVE_IFMA else []) + (["adx"] if _ext.HAVE_ADX else [])
                     + ["generic", "lane"] if _ext.HAVE_CORE else [])


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs Linux /proc/cpuinfo")
@pytest.mark.skipif(not _ext.HAVE_CORE, reason="native core not built")
def test_ifma_detection_matches_cpuinfo():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    assert _ext.HAVE_IFMA == ("avx512ifma" in flags)


def test_backend_resolution_order(clean_backend):
    mp = clean_backend
    assert backend.get_backend() == backend.available_backends()[0]
    mp.setenv("PYIMGENC_BACKEND", "python")
    assert backend.get_backend() == "python"
    if _ext.HAVE_CORE:
        backend.set_backend("cpu")  # set_backend beats the environment
        assert backend.get_backend() == "cpu"
        assert backend.get_backend("python") == "python"  # the argument beats both
    backend.set_backend(None)
    mp.setenv("PYIMGENC_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="PYIMGENC_BACKEND: unknown backend 'nonsense'"):
        backend.get_backend()


def test_unknown_and_missing_backends(clean_backend):
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        backend.set_backend("gpu")
    if not _ext.cuda_status()[0]:
        with pytest.raises(RuntimeError, match="'cuda' is not available here: (CuPy|the CUDA|no CUDA)"):
            backend.set_backend("cuda")
        with pytest.raises(RuntimeError, match="'cuda' is not available"):
            powmod(ints_to_limbs([2], L), [3], N, backend_name="cuda")


# --- CPU path -------------------------------------------------------------------

def _call_each_primitive(**kw):
    """Yield one thunk per primitive that takes a CPU path."""
    b = ints_to_limbs(_bases(2), L)
    i = np.array([[0, 1]], dtype=np.int64)
    yield lambda: powmod(b, [3], N, **kw)
    yield lambda: mulmod(b, b, N, **kw)
    yield lambda: FixedBase(3, N, 64, **kw)
    yield lambda: multiexp(b, i, i, N, **kw)


@pytest.mark.skipif(not _ext.HAVE_CORE, reason="native core not built")
def test_unknown_cpu_path_is_value_error(clean_backend):
    for call in _call_each_primitive(backend_name="cpu", cpu_path="avx2"):
        with pytest.raises(ValueError, match="unknown CPU path 'avx2'"):
            call()
    with pytest.raises(ValueError, match="set_cpu_path: unknown CPU path 'avx2'"):
        backend.set_cpu_path("avx2")
    clean_backend.setenv("PYIMGENC_CPU_PATH", "avx2")
    with pytest.raises(ValueError, match="unknown CPU path 'avx2'"):
        powmod(ints_to_limbs([2], L), [3], N, backend_name="cpu")


@pytest.mark.skipif(_ext.HAVE_IFMA or not _ext.HAVE_CORE,
                    reason="only testable on a CPU without AVX-512 IFMA (this one has it)"
                    if _ext.HAVE_IFMA else "native core not built")
def test_ifma_requested_without_ifma_is_runtime_error(clean_backend):
    for call in _call_each_primitive(backend_name="cpu", cpu_path="ifma"):
        with pytest.raises(RuntimeError, match="'ifma' is not available"):
            call()
    with pytest.raises(RuntimeError, match="not available on this CPU"):
        backend.set_cpu_path("ifma")
    # and the native core refuses it on its own too
    m = pyimgenc.math.Modulus(N)
    with pytest.raises(ValueError, match="IFMA path was requested"):
        _ext._core.powmod(m.native, ints_to_limbs([2], L), ints_to_limbs([3], 1), 1, 1)


@pytest.mark.skipif(not _ext.HAVE_CORE, reason="native core not built")
def test_ifma_requested_when_detection_says_absent(clean_backend):
    # Simulates a CPU without IFMA at the Python layer (runs on every machine).
    clean_backend.setattr(_ext, "HAVE_IFMA", False)
    portable = ["adx", "generic"] if _ext.HAVE_ADX else ["generic"]
    assert backend.available_cpu_paths() == portable + ["lane"]
    for call in _call_each_primitive(backend_name="cpu", cpu_path="ifma"):
        with pytest.raises(RuntimeError, match="'ifma' is not available"):
            call()
    with pytest.raises(RuntimeError, match="not available on this CPU"):
        backend.set_cpu_path("ifma")
    assert backend.get_cpu_path() == portable[0]
    assert backend.get_cpu_path("portable") == portable[0]


class _Spy:
    """Wraps a _core function, recording its (simd, nthreads) arguments."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args):
        self.calls.append(args[3:5])  # (simd, nthreads)
        return self.fn(*args)


@pytest.mark.skipif(not _ext.HAVE_CORE, reason="native core not built")
def test_cpu_path_and_threads_reach_the_core(clean_backend):
    mp = clean_backend
    spy = _Spy(_ext._core.powmod)
    mp.setattr(_ext._core, "powmod", spy)
    b = ints_to_limbs(_bases(3), L)
    want = limbs_to_ints(powmod(b, [65537], N, backend_name="python"))

    portable = 2 if _ext.HAVE_ADX else 3  # 'portable' resolves to adx, else generic
    mp.setenv("PYIMGENC_CPU_PATH", "portable")
    mp.setenv("PYIMGENC_NUM_THREADS", "3")
    assert limbs_to_ints(powmod(b, [65537], N, backend_name="cpu")) == want
    assert spy.calls[-1] == (portable, 3)

    backend.set_num_threads(1)  # set_num_threads beats the environment
    assert limbs_to_ints(powmod(b, [65537], N, backend_name="cpu")) == want
    assert spy.calls[-1] == (portable, 1)

    backend.set_cpu_path("generic")  # set_cpu_path beats the environment
    assert limbs_to_ints(powmod(b, [65537], N, backend_name="cpu")) == want
    assert spy.calls[-1] == (3, 1)
    assert backend.cpu_path_reason().startswith("generic: forced by set_cpu_path()")
    if _ext.HAVE_IFMA:
        backend.set_cpu_path("ifma")
        powmod(b, [65537], N, backend_name="cpu")
        assert spy.calls[-1] == (1, 1)
    powmod(b, [65537], N, backend_name="cpu", cpu_path="portable")  # argument beats both
    assert spy.calls[-1] == (portable, 1)


@pytest.mark.skipif(not _ext.HAVE_CORE, reason="native core not built")
def test_adx_detection_and_refusal(clean_backend):
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        import platform
        assert _ext.HAVE_ADX == (platform.machine() in ("x86_64", "AMD64") and {"bmi2", "adx"} <= set(flags))
    assert _ext._core.kernel_family(32, 3) == "generic"
    assert _ext._core.kernel_family(33, 3) == "generic-any-size"
    if _ext.HAVE_ADX:
        assert _ext._core.kernel_family(32, 2) == "adx"
        assert _ext._core.kernel_family(32, 0) == "adx"
        assert backend.cpu_path_reason().startswith(("adx: this CPU has BMI2", "ifma:"))
    else:
        clean_backend.setenv("PYIMGENC_CPU_PATH", "adx")
        with pytest.raises(RuntimeError, match="'adx' is not available on this CPU"):
            backend.get_cpu_path()
        m = pyimgenc.math.Modulus(N)
        with pytest.raises(ValueError, match="ADX path was requested"):
            _ext._core.powmod(m.native, ints_to_limbs([2], L), ints_to_limbs([3], 1), 2, 1)


# --- threads --------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects(clean_backend, bad):
    with pytest.raises(ValueError, match="positive int"):
        pyimgenc.set_num_threads(bad)


def test_num_threads_resolution(clean_backend):
    mp = clean_backend
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert pyimgenc.get_num_threads() == cores
    mp.setenv("PYIMGENC_NUM_THREADS", "5")
    assert pyimgenc.get_num_threads() == 5
    pyimgenc.set_num_threads(2)
    assert pyimgenc.get_num_threads() == 2
    pyimgenc.set_num_threads(None)
    assert pyimgenc.get_num_threads() == 5


@pytest.mark.parametrize("env", ["0", "-2", "two", "1.5"])
def test_num_threads_env_rejects(clean_backend, env):
    clean_backend.setenv("PYIMGENC_NUM_THREADS", env)
    with pytest.raises(ValueError, match="PYIMGENC_NUM_THREADS must be a positive integer"):
        pyimgenc.get_num_threads()


def _run_all(kw):
    rng = random.Random(99)
    bl = [rng.randrange(N) for _ in range(17)]
    bl = [b if math.gcd(b, N) == 1 else 1 for b in bl]
    b = ints_to_limbs(bl, L)
    inv = ints_to_limbs([int(gmpy2.invert(x, N)) for x in bl], L)
    es = [rng.getrandbits(300) for _ in range(17)]
    idx = np.array([[rng.randrange(17) for _ in range(5)] for _ in range(17)], dtype=np.int64)
    ex = np.array([[rng.randrange(-999, 999) for _ in range(5)] for _ in range(17)], dtype=np.int64)
    return [powmod(b, es, N, **kw), powmod(b, es[:1], N, **kw), mulmod(b, b[::-1].copy(), N, **kw),
            FixedBase(bl[0], N, 300, 5, **kw).pow(es), multiexp(b, idx, ex, N, inv_bases=inv, **kw)]


def test_results_independent_of_thread_count(cpu_kw, clean_backend):
    want = _run_all({"backend_name": "python"})
    for threads in ("1", "2", "3"):
        clean_backend.setenv("PYIMGENC_NUM_THREADS", threads)
        got = _run_all(cpu_kw)
        for g, w in zip(got, want):
            assert np.array_equal(g, w), threads
    for threads in (1, 2, 17, 64):
        pyimgenc.set_num_threads(threads)
        got = _run_all(cpu_kw)
        for g, w in zip(got, want):
            assert np.array_equal(g, w), threads


# --- System B engine ---------------------------------------------------------------

@pytest.fixture
def clean_rns(monkeypatch):
    monkeypatch.delenv("PYIMGENC_RNS_ENGINE", raising=False)
    backend.set_rns_engine(None)
    yield monkeypatch
    backend.set_rns_engine(None)


def test_rns_engine_resolution_order(clean_rns):
    mp = clean_rns
    assert backend.get_rns_engine()[0] == backend.available_rns_engines()[0]   # automatic
    mp.setenv("PYIMGENC_RNS_ENGINE", "torch")
    assert backend.get_rns_engine() == ("torch", backend.get_rns_engine("torch")[1])
    backend.set_rns_engine("numba")                        # the setter beats the environment
    assert backend.get_rns_engine() == ("numba", "cpu")
    assert backend.get_rns_engine("torch", "cpu") == ("torch", "cpu")   # the argument beats both
    backend.set_rns_engine(None)
    mp.setenv("PYIMGENC_RNS_ENGINE", "fpga")
    with pytest.raises(ValueError, match="PYIMGENC_RNS_ENGINE: unknown RNS engine 'fpga'"):
        backend.get_rns_engine()


def test_rns_engine_automatic_choice_and_device(clean_rns):
    mp = clean_rns
    mp.setattr(backend, "_torch_cuda", lambda: False)
    assert backend.available_rns_engines() == ["numba", "torch"]
    assert backend.get_rns_engine() == ("numba", "cpu")
    assert backend.get_rns_engine(device="cuda:1") == ("torch", "cuda:1")   # a GPU asked for: torch
    assert backend.get_rns_engine("torch") == ("torch", "cpu")
    mp.setattr(backend, "_torch_cuda", lambda: True)
    assert backend.available_rns_engines() == ["torch", "numba"]
    assert backend.get_rns_engine() == ("torch", "cuda")
    with pytest.raises(ValueError, match="numba engine runs on the CPU"):
        backend.get_rns_engine("numba", "cuda")


def test_missing_rns_engine_is_an_error_only_when_asked_for(clean_rns):
    mp = clean_rns
    mp.setattr(backend, "_installed", lambda module: module != "numba")
    mp.setattr(backend, "_torch_cuda", lambda: False)
    assert backend.available_rns_engines() == ["torch"]
    assert backend.get_rns_engine() == ("torch", "cpu")            # automatic falls back quietly
    with pytest.raises(RuntimeError, match="'numba' is not available here"):
        backend.get_rns_engine("numba")
    with pytest.raises(RuntimeError, match="'numba' is not available here"):
        backend.set_rns_engine("numba")
    mp.setenv("PYIMGENC_RNS_ENGINE", "numba")
    with pytest.raises(RuntimeError, match="PYIMGENC_RNS_ENGINE: RNS engine 'numba' is not available"):
        backend.get_rns_engine()


# --- byte buffers -------------------------------------------------------------------

@pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])
def test_new_bytes(native, monkeypatch):
    if native and not _ext.HAVE_CORE:
        pytest.skip(f"native core not importable: {_ext.CORE_ERROR}")
    monkeypatch.setattr(_ext, "HAVE_CORE", native)
    buf, view = pyimgenc.math.new_bytes(5)
    assert isinstance(buf, bytes if native else bytearray) and len(buf) == 5
    view[:] = b"hello"
    view.release()
    assert bytes(buf) == b"hello"
    with pytest.raises(ValueError, match="n must be >= 0"):
        pyimgenc.math.new_bytes(-1)
    with pytest.raises(TypeError, match="n must be an int"):
        pyimgenc.math.new_bytes(2.0)
