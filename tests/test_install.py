"""The package as installed: native core, package data, no torch for the shipped models'
inference, and known answers of that inference (the same bits on every machine and build).

.ci/run runs this file in an environment without torch, and again in the full one.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyimgenc
from pyimgenc import _ext, datasets

PACKAGE = Path(pyimgenc.__file__).resolve().parent


def test_the_native_core_is_built():
    if not _ext.HAVE_CORE:        # a failure in CI (PYIMGENC_REQUIRE_CORE=1), a skip with the reason elsewhere
        pytest.skip(f"native core not importable: {_ext.CORE_ERROR}")
    assert _ext._core.__file__.startswith(str(PACKAGE))


def test_package_data_is_installed():
    for rel in ("py.typed", "models/checkpoints/icnn_mnist.npz", "models/checkpoints/polycnn_mnist.npz",
                "models/checkpoints/vae_olivetti64.npz", "models/checkpoints/dcgan_olivetti32.npz",
                "datasets/samples/mnist.npz", "datasets/samples/olivetti.npz", "datasets/samples/camera.png"):
        assert (PACKAGE / rel).is_file(), rel


def test_shipped_model_inference_does_not_import_torch():
    code = ("import sys, numpy as np, pyimgenc.twinserver, pyimgenc.rns, pyimgenc.factor.first, pyimgenc.models as M\n"
            "x = np.zeros((1, 28, 28), np.uint8)\n"
            "pyimgenc.twinserver.load_integer_model().logits(x); M.pretrained('mnist-avgpool').reference(x)\n"
            "pyimgenc.rns.RNSClassifier(engine='numba', seed=0).classify(x)\n"
            "pyimgenc.factor.first.first_factor(np.zeros((64, 64), np.uint8), 'vae')\n"
            "print('torch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


def _digest(rows) -> str:
    return hashlib.sha256(repr([[int(v) for v in r] for r in rows]).encode()).hexdigest()


def test_known_answers_of_the_shipped_classifiers():
    """Exact integer logits of System A's ICNN and System B's model on the first 50 sample digits,
    recorded on 2026-12-03 (the models are integer and exact: any change of a bit is a defect)."""
    from pyimgenc import models, twinserver
    x = datasets.load_mnist(sample=True)[0][:50]
    logits, scale = twinserver.load_integer_model().logits(x)
    assert scale == 64
    assert _digest(logits) == "cae4343c4ba622db179e0917d398baa7f10f5fd178781ad2b03c6d87b48d7b2d"
    assert _digest(models.pretrained("mnist-avgpool").reference(x)) == \
        "933d5ebd0fd35fbe10b1c929e0bbfa4cd41431e01a254380e31f542099b3c22c"
