"""The shared integer operations and encodings (pyimgenc.models.intops) against torch and by hand."""
from __future__ import annotations

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="torch is an optional extra (pip install 'pyimgenc[torch]'), not installed")
from hypothesis import given
from hypothesis import strategies as st

from pyimgenc.models import intops


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 2, 3, 5]),
       st.integers(0, 2), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_conv2d_equals_torch_on_integers(n, c, o, k, pad, stride, seed):
    rng = np.random.default_rng(seed)
    side = k + int(rng.integers(0, 6))
    x = rng.integers(-1000, 1000, (n, c, side, side))
    w = rng.integers(-50, 50, (o, c, k, k))
    b = rng.integers(-10**6, 10**6, o)
    want = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                      torch.from_numpy(b).double(), stride=stride, padding=pad).numpy()
    got64 = intops.conv2d(x, w, pad, bias=b, stride=stride)
    got_obj = intops.conv2d(x.astype(object), w.astype(object), pad, bias=b.astype(object), stride=stride)
    assert got64.dtype == np.int64 and got_obj.dtype == object
    assert np.array_equal(got64, want.astype(np.int64)) and (got_obj == got64).all()


def test_conv2d_is_exact_beyond_64_bits_and_refuses_int64_overflow():
    x = np.array([[[[2**100, -(2**90)], [3, 4]]]], dtype=object)
    w = np.array([[[[1, 2], [3, 2**70]]]], dtype=object)
    assert intops.conv2d(x, w)[0, 0, 0, 0] == 2**100 - 2 * 2**90 + 9 + 4 * 2**70
    with pytest.raises(OverflowError, match="int64"):
        intops.conv2d(np.full((1, 1, 2, 2), 2**40), np.full((1, 1, 2, 2), 2**22))
    with pytest.raises(TypeError, match="float64"):
        intops.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 1, 1), np.int64))
    with pytest.raises(ValueError, match="input channels"):
        intops.conv2d(np.zeros((1, 2, 2, 2), np.int64), np.zeros((1, 1, 1, 1), np.int64))


def test_im2col_layout():
    x = np.arange(2 * 2 * 3 * 3).reshape(2, 2, 3, 3).astype(object)
    cols = intops.im2col(x, 3, 1)
    assert cols.shape == (2 * 9, 2 * 9)
    # row (c=1, i=0, j=0): channel 1 shifted by (-1, -1), zero where it leaves the image; columns (n, h, w)
    row = cols[9].reshape(2, 3, 3)
    assert row[1, 1, 1] == x[1, 1, 0, 0] and row[0, 0, 0] == 0 and row[0, 2, 2] == x[0, 1, 1, 1]


@pytest.mark.parametrize("k, stride, pad", [(2, 2, 0), (3, 1, 1), (3, 3, 0), (3, 2, 1)])
def test_max_pool_equals_torch_and_padding_never_wins(k, stride, pad):
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.integers(-(2**40), -(2**30), (2, 3, 10, 10))         # all negative: zero padding would win
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x).double(), k, stride, pad).numpy()
    assert np.array_equal(intops.max_pool2d(x.astype(object), k, stride, pad), want.astype(np.int64))


def test_sum_pool_and_relu():
    x = np.arange(16).reshape(1, 1, 4, 4) - 8
    assert intops.sum_pool2d(x, 2).tolist() == [[[[-8 - 7 - 4 - 3, -6 - 5 - 2 - 1], [0 + 1 + 4 + 5, 2 + 3 + 6 + 7]]]]
    with pytest.raises(ValueError, match="multiples"):
        intops.sum_pool2d(np.zeros((1, 1, 3, 4)), 2)
    r = intops.relu(x.astype(object))
    assert r.dtype == object and r.min() == 0 and r.max() == 7


def test_fixed_point_images_is_the_training_normalisation():
    p = np.array([0, 1, 128, 255], np.uint8)
    want = [round(((v / 255) - 0.1307) / 0.3081 * 256) for v in (0, 1, 128, 255)]
    assert intops.fixed_point_images(p, 256).tolist() == want
    assert intops.fixed_point_images(p, 1 << 8).dtype == np.int64
    with pytest.raises(ValueError, match="positive"):
        intops.fixed_point_images(p, 0)
    with pytest.raises(TypeError, match="integer"):
        intops.fixed_point_images(p, 2.5)
