"""benchmarks/gpu_check.sh fails at once, saying why, on a machine without a GPU."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


def test_gpu_check_fails_clearly_without_a_device(tmp_path):
    smi = shutil.which("nvidia-smi")
    if smi and subprocess.run([smi, "-L"], capture_output=True).returncode == 0:
        pytest.skip("this machine has a GPU: gpu_check.sh would run for real")
    assert SCRIPT.is_file(), SCRIPT
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "GPU_JSON": str(tmp_path / "gpu.json")})
    assert res.returncode == 2
    assert "gpu_check: no CUDA device visible" in res.stderr
    assert not (tmp_path / "gpu.json").exists()
