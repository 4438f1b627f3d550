"""Elementwise homomorphic ops and array manipulation vs a Python-int reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyimgenc.paillier import EncryptedTensor, concatenate

HYP = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
vals = st.integers(-(2**40), 2**40)
small = st.integers(-(2**20), 2**20)


def pair_shapes():
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def obj(a):
    return np.asarray(a).astype(object)


@HYP
@given(data=st.data(), shapes=pair_shapes())
def test_add_sub_encrypted_broadcast(on_backend, keypair, exact, data, shapes):
    pk, sk = keypair
    sa, sb = shapes.input_shapes
    a = data.draw(hnp.arrays(np.int64, sa, elements=vals))
    b = data.draw(hnp.arrays(np.int64, sb, elements=vals))
    ea, eb = pk.encrypt(a), pk.encrypt(b)
    exact(sk.decrypt(ea + eb), obj(a) + obj(b))
    exact(sk.decrypt(ea - eb), obj(a) - obj(b))
    exact(sk.decrypt(eb - ea), obj(b) - obj(a))


@HYP
@given(data=st.data(), shapes=pair_shapes())
def test_add_sub_plaintext_broadcast(on_backend, keypair, exact, data, shapes):
    pk, sk = keypair
    sa, sb = shapes.input_shapes
    a = data.draw(hnp.arrays(np.int64, sa, elements=vals))
    b = data.draw(hnp.arrays(np.int64, sb, elements=vals))
    ea = pk.encrypt(a)
    exact(sk.decrypt(ea + b), obj(a) + obj(b))
    exact(sk.decrypt(b + ea), obj(a) + obj(b))  # numpy defers to __radd__
    exact(sk.decrypt(ea - b), obj(a) - obj(b))
    exact(sk.decrypt(b - ea), obj(b) - obj(a))


@HYP
@given(data=st.data(), shapes=pair_shapes())
def test_mul_by_plaintext_broadcast(on_backend, keypair, exact, data, shapes):
    pk, sk = keypair
    sa, sb = shapes.input_shapes
    a = data.draw(hnp.arrays(np.int64, sa, elements=vals))
    k = data.draw(hnp.arrays(np.int64, sb, elements=small))
    ea = pk.encrypt(a)
    exact(sk.decrypt(ea * k), obj(a) * obj(k))
    exact(sk.decrypt(k * ea), obj(a) * obj(k))
    exact(sk.decrypt(-ea), -obj(a))


def test_scalar_python_ints(on_backend, keypair, exact):
    pk, sk = keypair
    a = np.array([3, -4, 0], dtype=np.int64)
    ea = pk.encrypt(a)
    exact(sk.decrypt(ea + 10), [13, 6, 10])
    exact(sk.decrypt(10 - ea), [7, 14, 10])
    exact(sk.decrypt(ea * -7), [-21, 28, 0])
    exact(sk.decrypt(ea * 0), [0, 0, 0])
    exact(sk.decrypt(2 * ea * [1, 2, 3]), [6, -16, 0])


def test_wraparound_and_big_factors(on_backend, keypair, centred, exact):
    pk, sk = keypair
    n, bound = pk.n, (pk.n - 1) // 2
    a = np.array([bound, -bound, 12345], dtype=object)
    ea = pk.encrypt(a)
    exact(sk.decrypt(ea + 1), centred([bound + 1, -bound + 1, 12346], n))
    exact(sk.decrypt(ea + ea), centred(2 * a, n))
    big = np.array([2**70, -(2**90) - 3, n + 5], dtype=object)  # beyond int64: exponent mod n
    exact(sk.decrypt(ea * big), centred(a * big, n))
    exact(sk.decrypt(ea * np.int64(-2**63)), centred(a * -(2**63), n))
    exact(sk.decrypt(ea - np.int64(-2**63)), centred(a + 2**63, n))


def test_indexing_and_shapes(on_backend, keypair, exact):
    pk, sk = keypair
    x = np.arange(-12, 12).reshape(2, 3, 4)
    e = pk.encrypt(x)
    assert (e.shape, e.ndim, e.size, len(e)) == ((2, 3, 4), 3, 24, 2)
    assert e.limbs.shape == (2, 3, 4, pk.ct_limbs) and e.limbs.dtype == np.uint64
    for key in [1, (1, 2), (1, 2, 3), slice(None, None, -1), (Ellipsis, 1), (slice(None), [0, 2]),
                x > 0, np.array([1, 0]), (None, 0)]:
        exact(sk.decrypt(e[key]), x[key])
    assert e[1, 2, 3].shape == ()
    exact(sk.decrypt(e.reshape(4, -1)), x.reshape(4, -1))
    exact(sk.decrypt(e.reshape((24,))), x.ravel())
    exact(sk.decrypt(e.flatten()), x.flatten())
    exact(sk.decrypt(e.T), x.T)
    exact(sk.decrypt(e.transpose(1, 0, 2)), x.transpose(1, 0, 2))
    exact(sk.decrypt(e.transpose((2, 0, 1))), x.transpose(2, 0, 1))
    exact(sk.decrypt(concatenate([e, e[:1]], axis=0)), np.concatenate([x, x[:1]]))
    exact(sk.decrypt(concatenate([e, e], axis=-1)), np.concatenate([x, x], axis=-1))
    assert [sk.decrypt(r).tolist() for r in e[0]] == x[0].tolist()
    with pytest.raises(ValueError, match="cannot reshape"):
        e.reshape(5, 5)
    with pytest.raises(ValueError, match="permutation"):
        e.transpose(0, 0, 1)
    with pytest.raises(TypeError, match="0-d"):
        len(e[0, 0, 0])


def test_rerandomize(on_backend, keypair, exact):
    pk, sk = keypair
    e = pk.encrypt([[1, -2], [3, 4]])
    f = e.rerandomize()
    assert f.shape == e.shape
    assert not set(f.to_ints()) & set(e.to_ints())
    exact(sk.decrypt(f), [[1, -2], [3, 4]])
    d = pk.raw_encrypt([5])
    assert d.rerandomize().to_ints() != d.to_ints()


def test_to_from_ints(on_backend, keypair, exact):
    pk, sk = keypair
    e = pk.encrypt(np.arange(6).reshape(2, 3))
    ints = e.to_ints()
    assert len(ints) == 6 and all(isinstance(v, int) and 0 < v < pk.nsquare for v in ints)
    f = EncryptedTensor.from_ints(pk, ints, (3, 2))
    assert f.to_ints() == ints
    exact(sk.decrypt(f), np.arange(6).reshape(3, 2))
    assert EncryptedTensor.from_ints(pk, ints[:1], ()).shape == ()
