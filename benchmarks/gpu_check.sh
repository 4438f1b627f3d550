#!/usr/bin/env bash
# The GPU engine on one CUDA device, in one command (under 8 minutes on an H100/H200):
#   1. a device, or a clear failure (exit 2);
#   2. pyimgenc from this checkout (pip install -e, no network needed: dependencies the machine
#      lacks - gmpy2, cryptography, cffi on the lent H200 image - come as wheels in .whl/, made
#      beforehand by benchmarks/gpu_wheels.sh on a machine with network);
#   3. the GPU tests: the CUDA engine against the reference (tests/gpu, device only), the math
#      property tests on the 'cuda' backend, System B's numba.cuda kernels on the device;
#   4. the GPU benchmarks (benchmarks/bench_gpu.py) into benchmarks/results/gpu-<date>.json,
#      the device's name recorded, then a summary against the targets.
# Usage: bash benchmarks/gpu_check.sh   (PYTHON=... for another interpreter; GPU_JSON=... for the output)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_JSON=${GPU_JSON:-benchmarks/results/gpu-$(date -u +%F).json}
step() { echo; echo "== gpu_check: $* ($(date -u +%H:%M:%S))"; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no CUDA device visible (nvidia-smi is missing or lists no GPU); this check needs an NVIDIA GPU" >&2
  exit 2
fi
nvidia-smi -L

step "install"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps .whl/*.whl
fi
"$PY" -m pip install -q --no-build-isolation --no-deps -e . >/tmp/pyimgenc-gpu-install.log 2>&1 \
  || { tail -30 /tmp/pyimgenc-gpu-install.log; exit 1; }
"$PY" -c "
from pyimgenc import _ext, backend
ok, why = _ext.cuda_status()
print('gpu_check: CUDA engine:', why)
print('gpu_check: RNS engines:', backend.available_rns_engines())
raise SystemExit(0 if ok and backend.available_rns_engines()[0] == 'cuda' else 3)"

step "tests on the device"
PT=("$PY" -m pytest -q -p no:cacheprovider -x)
timeout 150 "${PT[@]}" tests/gpu -k "device"
timeout 150 "${PT[@]}" tests/math -k "cuda"
timeout 60 "${PT[@]}" tests/rns/test_rns_cuda.py

step "benchmarks -> $OUT_JSON"
timeout 270 "$PY" -m pytest -q -p no:cacheprovider benchmarks/bench_gpu.py --benchmark-json="$OUT_JSON" \
  --benchmark-columns=median,rounds
"$PY" benchmarks/summarize_gpu.py "$OUT_JSON"
