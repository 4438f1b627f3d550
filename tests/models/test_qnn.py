"""The exact integer engine: layer kernels against simple references, both engines equal,
and the integer models close to the float32 torch models they quantise."""
from __future__ import annotations

import math

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="torch is an optional extra (pip install 'pyimgenc[torch]'), not installed")
from hypothesis import given
from hypothesis import strategies as st

from pyimgenc.models import checkpoint, nets, qnn
from pyimgenc.models.preprocess import model_input, resize_box, to_grey



@pytest.fixture(scope="module")
def faces(olivetti):
    return olivetti[0]


def test_sigmoid_table_is_correctly_rounded_and_monotone():
    t = qnn.sigmoid_table()
    n = qnn.TABLE_RANGE << qnn.TABLE_BITS
    assert len(t) == 2 * n + 1 and t[n] == 1 << 15
    assert np.all(np.diff(t) >= 0)
    for i in (-n, -300, -1, 1, 77, n):
        exact = (1 << 16) / (1 + math.exp(-i / 64))
        assert abs(t[i + n] - exact) <= 0.5 + 1e-9
    assert np.array_equal(t + t[::-1], np.full_like(t, 1 << 16))  # sigma(-x) = 1 - sigma(x)


def _engine():
    ck = checkpoint.Checkpoint({}, {"kind": "x"}, b"\0" * 32)
    return qnn.QNet(ck)


def _ref_conv(x, w, b, s, p):
    """Direct loops, Python ints."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))).astype(object)
    ho, wo = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    out = np.zeros((n, o, ho, wo), dtype=object)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * s:i * s + k, j * s:j * s + k]
            out[:, :, i, j] = np.tensordot(patch, w.astype(object), axes=([1, 2, 3], [1, 2, 3])) + b
    return (out + (1 << (qnn.FW - 1))) // (1 << qnn.FW)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(3, 9), st.sampled_from([1, 3, 5]),
       st.integers(1, 2), st.integers(0, 2**32 - 1))
def test_conv_matches_direct_loops(n, c, o, h, k, s, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-5000, 5000, (n, c, h, h))
    w = rng.integers(-8000, 8000, (o, c, k, k))
    b = rng.integers(-10**7, 10**7, o)
    got = _engine().conv(x, w, b, s, k // 2, "t")
    assert np.array_equal(got, _ref_conv(x, w, b, s, k // 2).astype(np.int64))


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(2, 6), st.sampled_from([3, 5]),
       st.integers(1, 2), st.integers(0, 2**32 - 1))
def test_deconv_matches_torch_float64(n, c, o, h, k, s, seed):
    """torch's float64 transposed convolution is exact on these small integers."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3000, 3000, (n, c, h, h))
    w = rng.integers(-4000, 4000, (c, o, k, k))
    b = rng.integers(-10**6, 10**6, o)
    got = _engine().deconv(x, w, b, s, k // 2, s - 1, "t")
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                                               torch.tensor(b, dtype=torch.float64), stride=s, padding=k // 2,
                                               output_padding=s - 1)
    ref = np.floor((ref.numpy() + 2048) / 4096).astype(np.int64)
    assert np.array_equal(got, ref)


def test_overflow_is_an_error_not_a_wrap():
    x = np.full((1, 1, 4, 4), 2**40, dtype=np.int64)
    w = np.full((1, 1, 3, 3), 2**20, dtype=np.int64)
    with pytest.raises(OverflowError, match="2\\^"):
        _engine().conv(x, w, None, 1, 1, "huge")


def test_preprocessing_is_exact_integer_arithmetic():
    img = np.arange(12 * 10 * 3, dtype=np.int64).reshape(12, 10, 3) % 256
    img = img.astype(np.uint8)
    g = to_grey(img)
    r_, g_, b_ = (int(v) for v in img[5, 7])
    assert g[5, 7] == (299 * r_ + 587 * g_ + 114 * b_ + 500) // 1000
    r = resize_box(g, 4)
    assert r.shape == (4, 4) and r[0, 0] == (int(g[0:3, 0:2].astype(int).sum()) * 2 + 6) // 12
    assert np.array_equal(resize_box(g, 12)[:, :10].shape, (12, 10))  # upsampling repeats pixels
    with pytest.raises(TypeError, match="uint8"):
        model_input(img.astype(np.float32), 8)
    with pytest.raises(ValueError, match="shape"):
        model_input(np.zeros((4, 4, 2), np.uint8), 8)


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_integer_model_is_close_to_float_model_and_engines_agree(kind, faces):
    ck = checkpoint.load(kind)
    batch = faces[::50]
    if kind == "vae":
        q = qnn.QVAE(ck)
        m = nets.VAE(ck.meta["size"], ck.meta["latent"], ck.meta["base_channels"]).eval()
        m.load_state_dict({k: torch.from_numpy(v) for k, v in ck.weights.items()})
        mu, p = q(batch)
        with torch.no_grad():
            mu_f, _ = m.encode(torch.from_numpy(batch.astype(np.float32) / 255)[:, None])
            p_f = torch.sigmoid(m.decode(mu_f))[:, 0].numpy()
        assert np.abs(mu / 4096 - mu_f.numpy()).max() < 0.02
        assert np.abs(p / 65536 - p_f).max() < 0.01
        got_t = qnn.QVAE(ck, engine="torch:cpu")(batch)
        assert all(np.array_equal(a, b) for a, b in zip((mu, p), got_t))
    else:
        small = np.stack([resize_box(im, 32) for im in batch])
        q = qnn.QGAN(ck)
        x, y, fx, fy, score = q(small)
        g = nets.Generator(32, ck.meta["base_channels"]).eval()
        g.load_state_dict({k[10:]: torch.from_numpy(v) for k, v in ck.weights.items()
                           if k.startswith("generator.")}, strict=False)
        with torch.no_grad():
            y_f = g(torch.from_numpy(small.astype(np.float32) / 127.5 - 1)[:, None]).numpy()
        assert np.abs(y / 4096 - y_f).max() < 0.03
        got_t = qnn.QGAN(ck, engine="torch:cpu")(small)
        assert all(np.array_equal(a, b) for a, b in zip((x, y, fx, fy, score), got_t))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_cuda_engine_is_bit_identical(kind, faces):
    ck = checkpoint.load(kind)
    cls, size = (qnn.QVAE, 64) if kind == "vae" else (qnn.QGAN, 32)
    batch = np.stack([resize_box(im, size) for im in faces[::40]])
    for a, b in zip(cls(ck)(batch), cls(ck, engine="torch:cuda")(batch)):
        assert np.array_equal(a, b)


def test_bad_engine_and_checkpoint_kind():
    with pytest.raises(ValueError, match="engine"):
        qnn.QVAE(checkpoint.load("vae"), engine="tpu")
    with pytest.raises(ValueError, match="VAE checkpoint"):
        qnn.QVAE(checkpoint.load("gan"))
    with pytest.raises(FileNotFoundError, match="shipped names"):
        checkpoint.load("/nonexistent.npz")


@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([4, 8, 16]), st.integers(0, 2**32 - 1))
def test_resize_whole_block_path_equals_integral_image_path(kh, kw, size, seed):
    from pyimgenc.models import preprocess as P
    g = np.random.default_rng(seed).integers(0, 256, (size * kh, size * kw), dtype=np.uint8)
    h, w = g.shape
    ii = np.zeros((h + 1, w + 1), np.int64)
    ii[1:, 1:] = g.astype(np.int64).cumsum(0).cumsum(1)
    r0, r1 = P._bins(h, size)
    c0, c1 = P._bins(w, size)
    s = ii[r1][:, c1] - ii[r0][:, c1] - ii[r1][:, c0] + ii[r0][:, c0]
    area = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    assert np.array_equal(P.resize_box(g, size), ((2 * s + area) // (2 * area)).astype(np.uint8))


def test_engines_refuse_products_they_cannot_hold_exactly():
    eng = _engine()
    a, w = np.array([[2**39 + 1, -(2**39)]], dtype=np.int64), np.array([[18431, 18431]], dtype=np.int64)
    assert eng.dense(a, w, None, "t")[0, 0] == (18431 + 2048) >> 12        # exact via int64
    t = qnn.QNet(checkpoint.Checkpoint({}, {"kind": "x"}, b"\0" * 32), engine="torch:cpu")
    with pytest.raises(OverflowError, match="2\\^53"):
        t.dense(t.xp.asarray(a), t.xp.asarray(w), None, "t")
    with pytest.raises(OverflowError, match="int64"):
        eng.dense(np.array([[2**40, 0]], dtype=np.int64), np.array([[2**24, 0]], dtype=np.int64), None, "t")
    with pytest.raises(OverflowError, match="leaky"):
        eng.leaky(np.array([-(2**40)], dtype=np.int64))
