"""ICNN (System A model): claim-2 layer counts, and the integer model against the float models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyimgenc.models import checkpoint
from pyimgenc.models.icnn import ICNN, IntegerICNN, quantised_float_model
from pyimgenc.models.polycnn import normalise


def test_claim_2_layer_counts():
    m = ICNN()
    assert ICNN.layer_counts(m) == {1: 5, 3: 3, 5: 2, 7: 1}
    assert sum(isinstance(x, torch.nn.Linear) for x in m.modules()) == 1
    wide = ICNN(c0=16, c1=32, b=16, r=8)
    assert wide(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def _loaded():
    ck = checkpoint.load("icnn")
    m = ICNN(**{k: v for k, v in ck.meta["widths"].items()}).eval()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in ck.weights.items()})
    return ck, m


def test_exact_integer_logits_match_the_quantised_float64_model(mnist_test):
    ck, m = _loaded()
    integer = IntegerICNN(m)
    x = mnist_test[0][:40]
    exact, scale = integer.logits(x)
    with torch.no_grad():
        approx = quantised_float_model(integer)(integer.float_input(x)).numpy()
    got = np.array([[float(v) for v in row] for row in exact]) / 2.0 ** scale
    assert np.allclose(got, approx, rtol=1e-9, atol=1e-9)
    assert (np.argmax(got, 1) == np.argmax(approx, 1)).all()


@pytest.mark.slow
def test_accuracy_and_integer_agreement_on_all_test_images(mnist_test):
    ck, m = _loaded()
    x, y = mnist_test
    integer = IntegerICNN(m)
    q = quantised_float_model(integer)
    with torch.no_grad():
        f = np.concatenate([m(normalise(x[i:i + 2000])).argmax(1).numpy() for i in range(0, len(x), 2000)])
        iq = np.concatenate([q(integer.float_input(x[i:i + 2000])).argmax(1).numpy()
                             for i in range(0, len(x), 2000)])
    assert (f == y).mean() >= 0.99
    assert (iq == f).mean() >= 0.995
