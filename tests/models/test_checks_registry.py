"""One set of image checks for every system, and one registry of the shipped models."""
from __future__ import annotations

import numpy as np
import pytest

from pyimgenc.models import check_capture, check_images, checkpoint, pretrained, registry


@pytest.mark.parametrize("bad, err, match", [
    ([[0] * 28] * 28, TypeError, "numpy"),
    (np.zeros((1, 28, 28), np.float32), TypeError, "dtype float32"),
    (np.zeros((1, 28, 28), np.int64), TypeError, "dtype int64"),
    (np.zeros((1, 32, 32), np.uint8), ValueError, "shape"),
    (np.zeros((0, 28, 28), np.uint8), ValueError, "N >= 1"),
    (np.zeros((1, 1, 28, 28), np.uint8), ValueError, "shape"),
    (np.zeros(28, np.uint8), ValueError, "shape"),
])
def test_check_images_rules(bad, err, match):
    with pytest.raises(err, match=match):
        check_images(bad)


def test_check_images_promotes_one_image_and_any_sides_when_asked():
    one = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    got = check_images(one)
    assert got.shape == (1, 28, 28) and np.array_equal(got[0], one)
    assert check_images(np.zeros((2, 5, 7), np.uint8), shape=None).shape == (2, 5, 7)
    view = np.zeros((3, 28, 56), np.uint8)[:, :, ::2]
    assert check_images(view).flags.c_contiguous


@pytest.mark.parametrize("bad, err, match", [
    ("not an image", TypeError, "numpy"),
    (np.zeros((4, 4), np.float32), TypeError, "dtype float32"),
    (np.zeros((4, 4, 2), np.uint8), ValueError, "shape"),
    (np.zeros((0, 4), np.uint8), ValueError, "shape"),
    (np.zeros((2, 4, 4, 3), np.uint8), ValueError, "shape"),
])
def test_check_capture_rules(bad, err, match):
    with pytest.raises(err, match=match):
        check_capture(bad)


def test_check_capture_accepts_grey_one_and_three_channels_and_limits_sides():
    for shape in ((4, 5), (4, 5, 1), (4, 5, 3)):
        assert check_capture(np.zeros(shape, np.uint8)).shape == shape
    with pytest.raises(ValueError, match="1..8"):
        check_capture(np.zeros((9, 4), np.uint8), max_side=8)


def test_registry_names_files_and_systems():
    assert registry.available() == ["mnist-icnn", "mnist-avgpool", "vae", "gan"]
    assert registry.available("twinserver") == ["mnist-icnn"] and registry.available("rns") == ["mnist-avgpool"]
    for name, entry in registry.REGISTRY.items():
        assert checkpoint.load(name).kind == entry.kind
    with pytest.raises(ValueError, match="unknown pretrained model 'imagenet'; available: mnist-icnn, mnist-avgpool"):
        pretrained("imagenet")
    with pytest.raises(ValueError, match="'vae' belongs to System C"):
        registry.lookup("vae", system="twinserver")
    with pytest.raises(ValueError, match="system must be"):
        registry.available("D")
    with pytest.raises(FileNotFoundError, match="shipped names: mnist-icnn"):
        checkpoint.load("icnn")                                   # a kind is not a name


def test_pretrained_builds_each_systems_integer_model():
    from pyimgenc.models.icnn import IntegerICNN
    from pyimgenc.models.qnn import QVAE
    from pyimgenc.rns import IntegerCNN
    assert isinstance(pretrained("mnist-icnn"), IntegerICNN)
    assert isinstance(pretrained("mnist-avgpool", delta=512), IntegerCNN)
    assert pretrained("mnist-avgpool", delta=512).delta == 512
    assert isinstance(pretrained("vae"), QVAE)
