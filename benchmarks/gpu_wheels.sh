#!/usr/bin/env bash
# Wheels that the lent GPU machine (no network; Python 3.12, CuPy, numba-cuda, pybind11 and
# pytest already there) lacks for benchmarks/gpu_check.sh, downloaded here into .whl/
# (git-ignored; carry it to the device: run(..., carry=[".whl"])).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_34_x86_64 -d .whl gmpy2 cryptography cffi pycparser phe
ls -la .whl
