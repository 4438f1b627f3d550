"""System B's CUDA engine (numba.cuda kernels over all sub-images at once) against the numba
CPU engine and the plaintext integer model.

Without a GPU these run under Numba's CUDA simulator: CI runs this file with
``NUMBA_ENABLE_CUDASIM=1`` (the simulator must be set before numba is imported, hence a
separate pytest run), where a skip is a failure.  Inputs are kept small: the simulator runs
every CUDA thread as a Python thread."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pyimgenc import backend, rns
from pyimgenc.rns.engine import evaluate_cuda, evaluate_numba

_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
_OK, _WHY = backend._numba_cuda()
if _SIM:
    assert _OK, f"NUMBA_ENABLE_CUDASIM=1 but numba.cuda is unusable: {_WHY}"
pytestmark = pytest.mark.skipif(not _OK, reason=f"no CUDA device here and NUMBA_ENABLE_CUDASIM unset ({_WHY})")


@pytest.fixture(scope="module")
def net():
    return rns.IntegerCNN()


def test_kernels_equal_the_numba_engine(net):
    _, sk = rns.keygen(4, 2, delta=net.delta, seed=3)
    plan = net.plan(sk.eval_key)
    rng = np.random.default_rng(5)
    pidx = np.array([3, 0, 2], dtype=np.int64)                         # distinct moduli per sub-image
    moduli = np.asarray(plan.moduli)
    sub = np.stack([rng.integers(0, moduli[p], size=(1, 28, 28)) for p in pidx]).astype(np.int64)
    sub[0, 0, 0, :] = moduli[pidx[0]] - 1                              # the top residue, at the border
    got = evaluate_cuda(net, plan, sub, pidx)
    assert got.dtype == np.int64 and got.shape == (3, 10)
    assert np.array_equal(got, evaluate_numba(net, plan, sub, pidx))
    assert (got >= 0).all() and (got < moduli[pidx][:, None]).all()


def test_classify_end_to_end_equals_the_integer_model(net, mnist_test):
    clf = rns.RNSClassifier(net, n_moduli=4, redundancy=1, engine="cuda", seed=4)
    assert clf.server.engine == "cuda"
    x = mnist_test[0][:1]
    assert np.array_equal(clf.classify(x), clf.reference_logits(x))


def test_odd_convolution_output_is_refused(net):
    _, sk = rns.keygen(4, 1, delta=net.delta, seed=3)
    plan = net.plan(sk.eval_key)
    with pytest.raises(ValueError, match="must be even"):
        evaluate_cuda(net, plan, np.zeros((1, 1, 27, 28), dtype=np.int64), np.zeros(1, dtype=np.int64))


def test_automatic_choice_is_cuda_on_a_device_and_never_the_simulator():
    if _SIM:
        assert backend.available_rns_engines()[-1] == "cuda"
        assert backend.get_rns_engine()[0] != "cuda"
    else:
        assert backend.get_rns_engine() == ("cuda", "cuda")
