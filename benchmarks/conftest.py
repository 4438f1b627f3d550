"""Shared fixtures for the pyimgenc benchmarks (pytest-benchmark).

Run, e.g.::

    PYIMGENC_NUM_THREADS=1 python -m pytest benchmarks/bench_paillier.py \
        --benchmark-json=benchmarks/results/paillier-1core.json
    python benchmarks/summarize.py benchmarks/results/paillier-1core.json

pytest-benchmark records the machine (CPU, Python, commit) in the JSON.
"""
import os
from pathlib import Path

import pytest

# The full data sets come through pyimgenc.datasets (--data / PYIMGENC_DATA / the user cache);
# a checkout beside ../shared/data uses that directory by default.
_SIBLING = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("PYIMGENC_DATA") and _SIBLING.is_dir():
    os.environ["PYIMGENC_DATA"] = str(_SIBLING)


def pytest_report_header(config):
    from pyimgenc import backend

    return (f"pyimgenc backend={backend.get_backend()} cpu_path={backend.get_cpu_path()} "
            f"threads={backend.get_num_threads()} (PYIMGENC_NUM_THREADS={os.environ.get('PYIMGENC_NUM_THREADS')})")


def pytest_benchmark_update_machine_info(config, machine_info):
    # which engine produced the numbers: the C++ path in use (as PYIMGENC_CPU_PATH resolves) and why
    from pyimgenc import backend

    try:
        machine_info["pyimgenc_cpu_path"] = backend.get_cpu_path()
        machine_info["pyimgenc_cpu_path_reason"] = backend.cpu_path_reason()
    except RuntimeError as exc:  # no native core: the record says so
        machine_info["pyimgenc_cpu_path"] = "none"
        machine_info["pyimgenc_cpu_path_reason"] = str(exc)
    machine_info["pyimgenc_cuda"] = backend.native_status()["cuda_reason"]  # the device, or why none


def pytest_collection_modifyitems(config, items):
    # keep peers next to each other in the report
    items.sort(key=lambda it: it.nodeid)


@pytest.fixture(scope="session")
def batch_size():
    return int(os.environ.get("PYIMGENC_BENCH_BATCH", "256"))
