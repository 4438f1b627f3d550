"""Cipher-image mode and the image-encryption metrics on the classic test images.

The key of each cipher image is the image security factor of a capture; the first
factor here is a stand-in (SHA-256 of the pixels: it changes with any pixel, as
the model's factor must) until issue 3's VAE/DCGAN factor lands.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pyimgenc.factor import SecondFactor, image_security_factor
from pyimgenc.factor.cipher_image import decrypt_image, encrypt_image
from pyimgenc.factor.metrics import correlation, entropy, histogram, npcr, uaci

Image = pytest.importorskip("PIL.Image")
IMAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "images"
# Wu, Noonan & Agaian (2011), alpha = 0.05: NPCR lower bound, UACI interval
CRITICAL = {256: (99.5693, 33.2824, 33.6447), 512: (99.5893, 33.3730, 33.5541)}


def load(name):
    p = IMAGES / f"{name}.png"
    if not p.is_file():
        pytest.skip(f"test image {p} not found")
    return np.asarray(Image.open(p))


def cipher(img, counter=1):
    sf = SecondFactor("metrics", 1_700_000_000_000, counter, bytes(range(16)))
    key = image_security_factor(hashlib.sha256(img.tobytes()).digest(), sf.splice())
    return encrypt_image(img, key, bytes(12))


@pytest.mark.parametrize("name", ["camera", "peppers", "baboon", "astronaut"])
@pytest.mark.parametrize("side", [256, 512])
def test_cipher_images_meet_published_ranges(name, side):
    img = load(name)[:side, :side]
    c1, tag = cipher(img)
    assert c1.shape == img.shape and len(tag) == 16
    img2 = img.copy()
    img2[side // 2, side // 2] ^= 1  # one pixel, one bit
    c2, _ = cipher(img2)
    n_lo, u_lo, u_hi = CRITICAL[side]
    assert npcr(c1, c2) > n_lo
    assert u_lo < uaci(c1, c2) < u_hi
    for d in ("horizontal", "vertical", "diagonal"):
        assert abs(correlation(c1, d)) < 0.01
        assert correlation(img, d) > 0.7  # the plain image is strongly correlated
    if side == 256:
        # An ideal cipher's 65,536 grey bytes have entropy 7.99719 +- 0.00026 (400
        # simulated draws), so issue 3's 7.997 is its 25th percentile: a single grey
        # image misses it a quarter of the time.  Assert 4 sd below the mean
        # instead; 3 x 65,536 RGB samples sit at 7.99906 (minimum of 200: 7.99881).
        assert entropy(c1) >= (7.9961 if img.ndim == 2 else 7.998)


def test_cipher_image_round_trip_and_tamper():
    img = load("coffee")
    key, nonce = bytes(range(32)), bytes(12)
    c, tag = encrypt_image(img, key, nonce)
    assert np.array_equal(decrypt_image(c, tag, key, nonce), img)
    c[0, 0, 0] ^= 1
    with pytest.raises(ValueError, match="altered"):
        decrypt_image(c, tag, key, nonce)


def test_metric_definitions_on_small_cases():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 255
    assert npcr(a, b) == pytest.approx(100 / 16) and uaci(a, b) == pytest.approx(100 / 16)
    assert entropy(np.arange(256, dtype=np.uint8).reshape(16, 16)) == pytest.approx(8.0)
    assert entropy(a) == 0.0 and histogram(a)[0] == 16
    ramp = np.tile(np.arange(16, dtype=np.uint8), (16, 1))
    assert correlation(ramp, "horizontal") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="direction"):
        correlation(ramp, "sideways")
    with pytest.raises(TypeError):
        npcr(a.astype(np.int32), b)
