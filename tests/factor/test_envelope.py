"""Envelope: exact round trips on real faces, and a specific rejection for every kind of damage."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from pyimgenc.factor import EnvelopeError, SecondFactor, image_security_factor, open_envelope, seal

FACES = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces" / "olivetti.npz"


@pytest.fixture(scope="module")
def faces():
    if not FACES.is_file():
        pytest.skip(f"real faces not found at {FACES}")
    return np.load(FACES)["images"]


@pytest.fixture(scope="module")
def keys():
    srv = X25519PrivateKey.generate()
    dev = Ed25519PrivateKey.generate()
    return srv, dev


def _lookup(dev):
    return lambda device_id: dev.public_key() if device_id == "dev-1" else None


def _seal(img, keys, counter=1, first=b"first-factor-bytes", device="dev-1", model="vae"):
    srv, dev = keys
    sf = SecondFactor.new(device, counter, 1_700_000_000_000 + counter)
    return seal(img, first, sf, srv.public_key(), dev, model), sf


@pytest.mark.parametrize("index", [0, 17, 399])
def test_round_trip_grey_face_is_exact(faces, keys, index):
    env, sf = _seal(faces[index], keys, counter=index)
    out = open_envelope(env, keys[0], _lookup(keys[1]))
    assert out.image.dtype == np.uint8 and np.array_equal(out.image, faces[index])
    assert out.second == sf and out.first_factor == b"first-factor-bytes" and out.model == "vae"


def test_round_trip_rgb(faces, keys):
    rgb = np.stack([faces[1], faces[2], faces[3]], axis=-1)
    env, _ = _seal(rgb, keys, model="gan")
    out = open_envelope(env, keys[0], _lookup(keys[1]))
    assert np.array_equal(out.image, rgb) and out.model == "gan"


def test_every_flipped_byte_is_rejected(faces, keys):
    env, _ = _seal(faces[5][:16, :16], keys)
    for pos in range(len(env)):
        bad = bytearray(env)
        bad[pos] ^= 0x01
        with pytest.raises(EnvelopeError):
            open_envelope(bytes(bad), keys[0], _lookup(keys[1]))


def test_every_truncation_and_extension_is_rejected(faces, keys):
    env, _ = _seal(faces[6][:8, :8], keys)
    for cut in range(len(env)):
        with pytest.raises(EnvelopeError):
            open_envelope(env[:cut], keys[0], _lookup(keys[1]))
    with pytest.raises(EnvelopeError, match="trailing_bytes"):
        open_envelope(env + b"\x00", keys[0], _lookup(keys[1]))


def test_specific_reasons(faces, keys):
    env, _ = _seal(faces[7][:8, :8], keys)
    srv, dev = keys
    with pytest.raises(EnvelopeError, match="bad_capsule"):
        open_envelope(env, X25519PrivateKey.generate(), _lookup(dev))
    with pytest.raises(EnvelopeError, match="unknown_device"):
        open_envelope(env, srv, lambda _id: None)
    with pytest.raises(EnvelopeError, match="bad_signature"):
        open_envelope(env, srv, lambda _id: Ed25519PrivateKey.generate().public_key())
    with pytest.raises(EnvelopeError, match="bad_magic"):
        open_envelope(b"XXXX" + env[4:], srv, _lookup(dev))
    with pytest.raises(EnvelopeError, match="bad_version"):
        open_envelope(env[:4] + b"\x09" + env[5:], srv, _lookup(dev))
    with pytest.raises(EnvelopeError, match="truncated"):
        open_envelope(b"", srv, _lookup(dev))
    with pytest.raises(EnvelopeError, match="oversized"):
        open_envelope(os.urandom(16) * (1 << 20) * 4, srv, _lookup(dev))
    with pytest.raises(TypeError):
        open_envelope("not bytes", srv, _lookup(dev))


def test_bad_images_are_refused(keys):
    srv, dev = keys
    sf = SecondFactor.new("dev-1", 1, 1)
    with pytest.raises(TypeError, match="uint8"):
        seal(np.zeros((4, 4), dtype=np.float32), b"f", sf, srv.public_key(), dev)
    with pytest.raises(ValueError, match="shape"):
        seal(np.zeros((4, 4, 2), dtype=np.uint8), b"f", sf, srv.public_key(), dev)
    with pytest.raises(TypeError, match="X25519"):
        seal(np.zeros((4, 4), dtype=np.uint8), b"f", sf, dev, dev)


def test_image_security_factor_binds_both_factors():
    a = image_security_factor(b"f1", b"s1")
    assert len(a) == 32
    assert a != image_security_factor(b"f2", b"s1") and a != image_security_factor(b"f1", b"s2")
    assert a == image_security_factor(b"f1", b"s1")


def test_second_factor_splice_round_trip_and_errors():
    sf = SecondFactor.new("términal-7", 42, 1_700_000_000_123)
    raw = sf.splice()
    assert raw[:4] == b"PIS1" and SecondFactor.parse(raw) == sf
    with pytest.raises(ValueError, match="magic"):
        SecondFactor.parse(b"XXXX" + raw[4:])
    with pytest.raises(ValueError, match="bytes, expected"):
        SecondFactor.parse(raw[:-1])
    with pytest.raises(ValueError, match="device_info"):
        SecondFactor("", 1, 1, os.urandom(16))
    with pytest.raises(ValueError, match="counter"):
        SecondFactor("d", 1, -1, os.urandom(16))
