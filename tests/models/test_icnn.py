"""ICNN (System A model): layer counts, and the integer model against the float models."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="torch is an optional extra (pip install 'pyimgenc[torch]'), not installed")

from pyimgenc.models import checkpoint, pretrained
from pyimgenc.models.icnn import IntegerICNN
from pyimgenc.models.icnn_float import ICNN, float_input, quantised_float_model
from pyimgenc.models.polycnn import normalise


def test_layer_counts_of_the_inception_design():
    m = ICNN()
    assert ICNN.layer_counts(m) == {1: 5, 3: 3, 5: 2, 7: 1}
    assert sum(isinstance(x, torch.nn.Linear) for x in m.modules()) == 1
    wide = ICNN(c0=16, c1=32, b=16, r=8)
    assert wide(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_integer_model_from_the_checkpoint_equals_the_one_from_the_torch_module(mnist_test):
    ck = checkpoint.load("mnist-icnn")
    from_module = IntegerICNN(ICNN.from_checkpoint(ck).to_checkpoint())
    shipped = pretrained("mnist-icnn")
    assert all(np.array_equal(shipped.w[k], from_module.w[k]) and np.array_equal(shipped.bf[k], from_module.bf[k])
               for k in shipped.w)
    x = mnist_test[0][:3]
    assert (shipped.logits(x)[0] == from_module.logits(x)[0]).all()
    with pytest.raises(ValueError, match="icnn checkpoint"):
        IntegerICNN(checkpoint.load("mnist-avgpool"))


def test_exact_integer_logits_match_the_quantised_float64_model(mnist_test):
    integer = pretrained("mnist-icnn")
    x = mnist_test[0][:40]
    exact, scale = integer.logits(x)
    with torch.no_grad():
        approx = quantised_float_model(integer)(float_input(integer, x)).numpy()
    got = np.array([[float(v) for v in row] for row in exact]) / 2.0 ** scale
    assert np.allclose(got, approx, rtol=1e-9, atol=1e-9)
    assert (np.argmax(got, 1) == np.argmax(approx, 1)).all()


@pytest.mark.slow
def test_accuracy_and_integer_agreement_on_all_test_images(mnist_test):
    ck = checkpoint.load("mnist-icnn")
    m = ICNN.from_checkpoint(ck)
    x, y = mnist_test
    integer = IntegerICNN(ck)
    q = quantised_float_model(integer)
    with torch.no_grad():
        f = np.concatenate([m(normalise(x[i:i + 2000])).argmax(1).numpy() for i in range(0, len(x), 2000)])
        iq = np.concatenate([q(float_input(integer, x[i:i + 2000])).argmax(1).numpy()
                             for i in range(0, len(x), 2000)])
    assert (f == y).mean() >= 0.99
    assert (iq == f).mean() >= 0.995
