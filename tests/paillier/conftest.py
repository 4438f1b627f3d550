"""Shared fixtures: small keys made once per session, every backend / CPU path."""
from __future__ import annotations

import numpy as np
import pytest

from pyimgenc import backend
from pyimgenc.paillier import keygen

_COMBOS = ([("cuda", None)] if "cuda" in backend.available_backends() else []) + \
    [("cpu", p) for p in backend.available_cpu_paths()] + [("python", None)]


@pytest.fixture(scope="session")
def keypair():
    """A 256-bit key pair (insecure; unit tests only)."""
    return keygen(256, insecure=True)


@pytest.fixture(scope="session")
def keypair512():
    """A 512-bit key pair: limb counts differ from the 256-bit one."""
    return keygen(512, insecure=True)


@pytest.fixture(scope="session")
def other_keypair():
    """A second, unrelated 256-bit key pair."""
    return keygen(256, insecure=True)


@pytest.fixture(params=_COMBOS, ids=[f"{b}-{p}" if p else b for b, p in _COMBOS])
def on_backend(request):
    """Run the test with one backend (and CPU path) forced; restore the defaults after."""
    name, path = request.param
    backend.set_backend(name)
    backend.set_cpu_path(path)
    try:
        yield request.param
    finally:
        backend.set_backend(None)
        backend.set_cpu_path(None)


def _centred(values, n):
    arr = np.asarray(values, dtype=object)
    flat = [(int(v) % n) - n if int(v) % n > n // 2 else int(v) % n for v in arr.ravel()]
    out = np.empty(arr.shape, dtype=object)
    out.ravel()[:] = flat
    return out


def _assert_exact(got, want):

    want = np.asarray(want, dtype=object)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert [int(v) for v in np.asarray(got).ravel()] == [int(v) for v in want.ravel()]


@pytest.fixture(scope="session")
def centred():
    """Reference map of Python ints to the centred residue range (-n/2, n/2]: ``centred(values, n)``."""
    return _centred


@pytest.fixture(scope="session")
def exact():
    """``exact(got, want)``: same shape and the same integers, element by element."""
    return _assert_exact
