"""sum / matmul / conv2d (multi-exponentiation) vs Python-int references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

HYP = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
vals = st.integers(-(2**30), 2**30)
weights = st.integers(-(2**15), 2**15)


def obj(a):
    return np.asarray(a).astype(object)


def conv_ref(x, w, b, stride, padding):
    """Direct 2-D cross-correlation over Python ints; x (N,C,H,W), w (O,C,kh,kw)."""
    (sh, sw), (ph, pw) = stride, padding
    x = np.pad(obj(x), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=0)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=object)
    for i in range(n):
        for j in range(o):
            for y in range(oh):
                for z in range(ow):
                    patch = x[i, :, y * sh:y * sh + kh, z * sw:z * sw + kw]
                    out[i, j, y, z] = int((patch * obj(w[j])).sum()) + (int(b[j]) if b is not None else 0)
    return out


@HYP
@given(x=hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=vals),
       data=st.data())
def test_sum(on_backend, keypair, exact, x, data):
    pk, sk = keypair
    e = pk.encrypt(x)
    exact(sk.decrypt(e.sum()), obj(x).sum())
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    exact(sk.decrypt(e.sum(axis=axis)), obj(x).sum(axis=axis))
    axes = tuple(data.draw(st.sets(st.integers(0, x.ndim - 1))))
    exact(sk.decrypt(e.sum(axis=axes)), obj(x).sum(axis=axes))


def test_sum_empty(on_backend, keypair, exact):
    pk, sk = keypair
    e = pk.encrypt(np.zeros((0, 3), np.int64))
    exact(sk.decrypt(e.sum()), 0)
    exact(sk.decrypt(e.sum(axis=0)), [0, 0, 0])
    with pytest.raises(ValueError, match="out of bounds"):
        e.sum(axis=2)


@HYP
@given(dims=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3)), data=st.data())
def test_matmul_all_forms(on_backend, keypair, exact, dims, data):
    pk, sk = keypair
    i, k, j = dims
    a = data.draw(hnp.arrays(np.int64, (i, k), elements=vals))
    w = data.draw(hnp.arrays(np.int64, (k, j), elements=weights))
    v = data.draw(hnp.arrays(np.int64, (k,), elements=weights))
    u = data.draw(hnp.arrays(np.int64, (j, i), elements=weights))
    ea, ev = pk.encrypt(a), pk.encrypt(obj(v))
    exact(sk.decrypt(ea @ w), obj(a).dot(obj(w)))                # 2-D @ 2-D
    exact(sk.decrypt(ea.dot(v)), obj(a).dot(obj(v)))             # 2-D @ 1-D
    exact(sk.decrypt(ea[0] @ w), obj(a[0]).dot(obj(w)))          # 1-D @ 2-D
    exact(sk.decrypt(ev @ v), obj(v).dot(obj(v)))                # 1-D @ 1-D -> 0-d
    exact(sk.decrypt(u @ ea), obj(u).dot(obj(a)))                # W @ E, 2-D @ 2-D
    exact(sk.decrypt(w.T @ ev), obj(w.T).dot(obj(v)))            # W @ E, 2-D @ 1-D
    exact(sk.decrypt(u[0] @ ea), obj(u[0]).dot(obj(a)))          # W @ E, 1-D @ 2-D
    exact(sk.decrypt(v @ ev), obj(v).dot(obj(v)))                # W @ E, 1-D @ 1-D


def test_matmul_batched_and_errors(on_backend, keypair, exact):
    pk, sk = keypair
    x = np.arange(-12, 12).reshape(2, 3, 4)
    w = np.arange(-4, 4).reshape(4, 2)
    exact(sk.decrypt(pk.encrypt(x) @ w), obj(x) @ obj(w))
    with pytest.raises(ValueError, match="not aligned"):
        pk.encrypt(x) @ np.ones((3, 2), np.int64)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        pk.encrypt(x) @ np.ones((4, 2, 2), np.int64)
    with pytest.raises(ValueError, match="1-D/2-D"):
        np.ones((2, 2), np.int64) @ pk.encrypt(x)
    with pytest.raises(ValueError, match="signed 64 bits"):
        pk.encrypt([1]) @ np.array([2**64], dtype=object)


@HYP
@given(n=st.integers(1, 2), c=st.integers(1, 2), o=st.integers(1, 3), h=st.integers(3, 5),
       wd=st.integers(3, 5), kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 1), with_bias=st.booleans(), data=st.data())
def test_conv2d(on_backend, keypair, exact, n, c, o, h, wd, kh, kw, stride, pad, with_bias, data):
    pk, sk = keypair
    x = data.draw(hnp.arrays(np.int64, (n, c, h, wd), elements=vals))
    w = data.draw(hnp.arrays(np.int64, (o, c, kh, kw), elements=weights))
    b = data.draw(hnp.arrays(np.int64, (o,), elements=vals)) if with_bias else None
    want = conv_ref(x, w, b, (stride, stride), (pad, pad))
    exact(sk.decrypt(pk.encrypt(x).conv2d(w, b, stride=stride, padding=pad)), want)
    exact(sk.decrypt(pk.encrypt(x[0]).conv2d(w, b, stride=stride, padding=pad)), want[0])


def test_conv2d_asymmetric_and_encrypted_bias(on_backend, keypair, exact):
    pk, sk = keypair
    rng = np.random.default_rng(5)
    x = rng.integers(-100, 100, (2, 3, 6, 5))
    w = rng.integers(-9, 9, (4, 3, 3, 2))
    b = rng.integers(-1000, 1000, (4,))
    want = conv_ref(x, w, b, (2, 1), (1, 0))
    exact(sk.decrypt(pk.encrypt(x).conv2d(w, pk.encrypt(b), stride=(2, 1), padding=(1, 0))), want)
    exact(sk.decrypt(pk.encrypt(x).conv2d(w, b.tolist(), stride=[2, 1], padding=(1, 0))), want)


def test_conv2d_errors(keypair):
    pk, _ = keypair
    e = pk.encrypt(np.zeros((2, 4, 4), np.int64))
    with pytest.raises(ValueError, match="input channels"):
        e.conv2d(np.ones((1, 3, 2, 2), np.int64))
    with pytest.raises(ValueError, match="does not fit"):
        e.conv2d(np.ones((1, 2, 5, 5), np.int64))
    with pytest.raises(ValueError, match="bias must have shape"):
        e.conv2d(np.ones((1, 2, 2, 2), np.int64), bias=[1, 2])
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        e[0].conv2d(np.ones((1, 2, 2, 2), np.int64))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        e.conv2d(np.ones((1, 2, 2, 2), np.int64), stride=0)
    with pytest.raises(TypeError, match="padding"):
        e.conv2d(np.ones((1, 2, 2, 2), np.int64), padding=1.5)
    with pytest.raises(TypeError, match="weight"):
        e.conv2d(np.ones((1, 2, 2, 2)))
