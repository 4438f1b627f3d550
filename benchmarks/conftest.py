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


def pytest_collection_modifyitems(config, items):
    # keep peers next to each other in the report
    items.sort(key=lambda it: it.nodeid)


@pytest.fixture(scope="session")
def batch_size():
    return int(os.environ.get("PYIMGENC_BENCH_BATCH", "256"))
