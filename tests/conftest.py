"""Shared test configuration: hypothesis profiles and the backend/CPU-path matrix.

Every property test that takes a ``kw`` argument runs once per engine:
``python`` (the gmpy2 reference), and the C++ core on each CPU path
(``generic`` everywhere, ``adx`` where the CPU has BMI2/ADX, ``ifma`` where it has
AVX-512 IFMA).  A path that is
missing here is still listed, and skipped with the reason (STYLE habit 10).

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE``):
    pyimgenc   default: few examples, no deadline (the oracle itself is slow).
    thorough   ten times the examples, for a nightly run.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from pyimgenc import _ext, backend

settings.register_profile(
    "pyimgenc",
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("pyimgenc"),
    max_examples=150,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pyimgenc"))

_NO_CORE = f"native core not importable: {_ext.CORE_ERROR}"
_NO_IFMA = (_NO_CORE if not _ext.HAVE_CORE else
            "CPU lacks AVX-512 IFMA (avx512ifma flag), so the 'ifma' path cannot run here")
_NO_ADX = (_NO_CORE if not _ext.HAVE_CORE else
           "CPU (or build) lacks BMI2/ADX, so the 'adx' path cannot run here")

# (backend_name, cpu_path) for every engine/path the library has.
ENGINES = [
    pytest.param({"backend_name": "python", "cpu_path": None}, id="python"),
    pytest.param({"backend_name": "cpu", "cpu_path": "generic"}, id="cpu-generic",
                 marks=pytest.mark.skipif(not _ext.HAVE_CORE, reason=_NO_CORE)),
    pytest.param({"backend_name": "cpu", "cpu_path": "adx"}, id="cpu-adx",
                 marks=pytest.mark.skipif(not _ext.HAVE_ADX, reason=_NO_ADX)),
    pytest.param({"backend_name": "cpu", "cpu_path": "ifma"}, id="cpu-ifma",
                 marks=pytest.mark.skipif(not _ext.HAVE_IFMA, reason=_NO_IFMA)),
    # the CUDA engine's per-lane code (csrc/lane/lane.hpp), run on the CPU
    pytest.param({"backend_name": "cpu", "cpu_path": "lane"}, id="cpu-lane",
                 marks=pytest.mark.skipif(not _ext.HAVE_CORE, reason=_NO_CORE)),
    # the CUDA engine on a real device (tests/gpu also runs it on a CPU stand-in everywhere)
    pytest.param({"backend_name": "cuda", "cpu_path": None}, id="cuda",
                 marks=pytest.mark.skipif(not _ext.cuda_status()[0],
                                          reason=f"no CUDA device here: {_ext.cuda_status()[1]}")),
]
# Backends only (for primitives without a CPU-path choice, e.g. reduce).
BACKENDS = [
    pytest.param("python", id="python"),
    pytest.param("cpu", id="cpu", marks=pytest.mark.skipif(not _ext.HAVE_CORE, reason=_NO_CORE)),
]
# Native paths only (thread-count and native-check tests).
CPU_ENGINES = [p for p in ENGINES if p.values[0]["backend_name"] == "cpu"]


def pytest_generate_tests(metafunc):
    # Direct parametrisation (not a fixture) so hypothesis tests may use it.
    if "kw" in metafunc.fixturenames:
        metafunc.parametrize("kw", ENGINES)
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", BACKENDS)
    if "cpu_kw" in metafunc.fixturenames:
        metafunc.parametrize("cpu_kw", CPU_ENGINES)


_ENV = ("PYIMGENC_BACKEND", "PYIMGENC_CPU_PATH", "PYIMGENC_NUM_THREADS", "PYIMGENC_RNS_ENGINE")


@pytest.fixture(autouse=True, scope="session")
def _no_backend_env():
    """Run the suite with the automatic backend choice, whatever the shell exports."""
    saved = {k: os.environ.pop(k) for k in _ENV if k in os.environ}
    yield
    os.environ.update(saved)


@pytest.fixture
def clean_backend(monkeypatch):
    """Module-level backend state restored after a test that changes it."""
    for k in _ENV:
        monkeypatch.delenv(k, raising=False)
    backend.set_backend(None)
    backend.set_cpu_path(None)
    backend.set_num_threads(None)
    backend.set_rns_engine(None)
    yield monkeypatch
    backend.set_backend(None)
    backend.set_cpu_path(None)
    backend.set_num_threads(None)
    backend.set_rns_engine(None)


# ---------------------------------------------------------------- real data shared by the suites
# The full sets come through pyimgenc.datasets (PYIMGENC_DATA, the user cache).  For a
# developer's checkout beside ../shared/data, that directory is the default; .ci/run sets
# PYIMGENC_DATA itself.  A missing full set skips with "not found" (a failure in CI).
_SIBLING = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("PYIMGENC_DATA") and _SIBLING.is_dir():
    os.environ["PYIMGENC_DATA"] = str(_SIBLING)


def full_data(loader, *args, **kw):
    """``loader(*args, **kw)`` from pyimgenc.datasets, or a skip saying the data was not found."""
    from pyimgenc import datasets
    try:
        return loader(*args, **kw)
    except datasets.DataNotFoundError as exc:
        pytest.skip(f"real data not found: {exc}")


@pytest.fixture(scope="session")
def olivetti():
    """(images (400, 64, 64) uint8, subject (400,)) of the real Olivetti faces."""
    from pyimgenc import datasets
    return full_data(datasets.load_olivetti)


@pytest.fixture(scope="session")
def mnist_test():
    """(x_test (10000, 28, 28) uint8, y_test) of the real MNIST."""
    from pyimgenc import datasets
    return full_data(datasets.load_mnist)


@pytest.fixture(scope="session")
def fashion_test():
    """(x_test (10000, 28, 28) uint8, y_test) of the real Fashion-MNIST."""
    from pyimgenc import datasets
    return full_data(datasets.load_fashion_mnist)


@pytest.fixture(scope="session")
def photo():
    """``photo(name)``: one real test photograph (``images/<name>.png``), or a "not found" skip."""
    from pyimgenc import datasets
    return lambda name: full_data(datasets.load_image, name)


@pytest.fixture(scope="session")
def photos():
    """{name: uint8 (H, W) or (H, W, 3)} of the real test photographs (alpha dropped)."""
    from pyimgenc import datasets
    return full_data(datasets.load_images)


# ---------------------------------------------------------------- the package under test
# PYIMGENC_REQUIRE_INSTALLED=1 (set by .ci/run): the suite must test the installed wheel, not
# this source tree (which has no compiled core); stop at once if the tree's copy was imported.
def pytest_configure(config):
    import pyimgenc
    here = __import__("pathlib").Path(__file__).resolve().parents[1]
    where = __import__("pathlib").Path(pyimgenc.__file__).resolve()
    if os.environ.get("PYIMGENC_REQUIRE_INSTALLED") == "1" and here in where.parents:
        raise pytest.UsageError(f"PYIMGENC_REQUIRE_INSTALLED=1 but pyimgenc was imported from the source tree "
                                f"({where}); run pytest from outside the tree with --import-mode=importlib")


def pytest_report_header(config):
    import pyimgenc
    return f"pyimgenc {pyimgenc.__version__} from {__import__('pathlib').Path(pyimgenc.__file__).parent}; " \
           f"native core: {'yes' if _ext.HAVE_CORE else 'NO'}; IFMA: {'yes' if _ext.HAVE_IFMA else 'no'}"


# ---------------------------------------------------------------- skips that CI must not accept
# A skip is for missing hardware or an optional extra.  Where the native core or the real
# data is missing, tests above skip with a reason saying so; with PYIMGENC_REQUIRE_CORE=1 /
# PYIMGENC_REQUIRE_DATA=1 (set by .ci/run) such a skip is turned into a failure, here, once
# for every test, instead of a guard beside each skip.
_REQUIRED = (("PYIMGENC_REQUIRE_CORE", ("native core",)),
             ("PYIMGENC_REQUIRE_DATA", ("not found", "no test images")),
             ("PYIMGENC_REQUIRE_EXTRAS", ("optional extra",)))


def _required_but_missing(reason: str) -> str | None:
    for var, words in _REQUIRED:
        if os.environ.get(var) == "1" and any(w in reason for w in words):
            return var
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and isinstance(rep.longrepr, tuple):
        reason = str(rep.longrepr[2])
        var = _required_but_missing(reason)
        if var is not None:
            rep.outcome = "failed"
            rep.longrepr = f"{var}=1 but this test would skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at import (``pytest.importorskip`` at the top)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and isinstance(rep.longrepr, tuple):
        var = _required_but_missing(str(rep.longrepr[2]))
        if var is not None:
            rep.outcome = "failed"
            rep.longrepr = f"{var}=1 but this module would skip: {rep.longrepr[2]}"


@pytest.fixture(scope="session")
def start_server_pair():
    """``start(key_dir, stop, plaintext=False) -> (s1_port, s2_port)``: System A's S2, then S1
    pointing at it, on free ports of 127.0.0.1 in daemon threads, serving until ``stop`` is set."""
    import threading

    from pyimgenc.twinserver import deploy

    def start(key_dir, stop, plaintext=False):
        r2, r1 = threading.Event(), threading.Event()
        threading.Thread(target=deploy.serve_s2, args=(key_dir,), kwargs=dict(
            port=0, ready=r2, stop=stop, plaintext=plaintext), daemon=True).start()
        assert r2.wait(30), "S2 did not start"
        threading.Thread(target=deploy.serve_s1, args=(key_dir / "s1.share", "127.0.0.1", r2.port), kwargs=dict(
            port=0, ready=r1, stop=stop, plaintext=plaintext), daemon=True).start()
        assert r1.wait(30), "S1 did not start"
        return r1.port, r2.port
    return start
