"""Terminal: counters persist and never repeat; the retry loop stops at approval or the limit."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from pyimgenc.factor import Terminal, VerificationError, Verifier

NOW = 1_800_000_000.0


def ff(image):
    return hashlib.sha256(image.tobytes()).digest()


def check(image, claimed, model):
    return ff(image) == claimed


def test_round_trip_with_verifier_and_persistent_counter(tmp_path):
    srv = Verifier.create(tmp_path / "v.sqlite", check, clock=lambda: NOW)
    state = tmp_path / "dev.json"
    term = Terminal.create("dev-1", srv.public_key, ff, state_path=state, clock=lambda: NOW)
    srv.register_device("dev-1", term.public_key)
    img = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
    assert np.array_equal(srv.open(term.seal(img)).image, img)
    restarted = Terminal("dev-1", srv.public_key, ff, state_path=state, clock=lambda: NOW)
    assert restarted.counter == 1 and restarted.public_key == term.public_key
    assert srv.open(restarted.seal(img)).counter == 2
    with pytest.raises(ValueError, match="belongs to device"):
        Terminal("dev-2", srv.public_key, ff, state_path=state)


def test_submit_retries_until_approved_or_limit(tmp_path):
    srv = Verifier.create(tmp_path / "v.sqlite", check, clock=lambda: NOW)
    term = Terminal("dev-1", srv.public_key, ff, clock=lambda: NOW)
    srv.register_device("dev-1", term.public_key)
    frames = iter([np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)])
    calls = []

    def flaky_send(env):  # the first capture is "blurred": the server rejects it
        calls.append(env)
        if len(calls) == 1:
            raise VerificationError("first_factor_mismatch")
        return srv.open(env)

    out = term.submit(lambda: next(frames), flaky_send, max_attempts=3)
    assert len(calls) == 2 and out.counter == 2 and np.array_equal(out.image, np.ones((4, 4), np.uint8))

    def always_no(env):
        raise VerificationError("first_factor_mismatch")
    with pytest.raises(VerificationError):
        term.submit(lambda: np.zeros((4, 4), np.uint8), always_no, max_attempts=2)


def test_bad_arguments():
    pk = X25519PrivateKey.generate().public_key()
    with pytest.raises(TypeError):
        Terminal("d", "not a key", ff)
    with pytest.raises(TypeError):
        Terminal("d", pk, "not callable")
    with pytest.raises(ValueError, match="device_info"):
        Terminal("", pk, ff)


def test_state_file_is_owner_only_and_refused_otherwise(tmp_path):
    import os
    import stat

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from pyimgenc.factor import Terminal
    path = tmp_path / "dev.json"
    pk = X25519PrivateKey.generate().public_key()
    Terminal("dev-1", pk, lambda im: b"f", state_path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600         # it holds the device's private key
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        Terminal("dev-1", pk, lambda im: b"f", state_path=path)
