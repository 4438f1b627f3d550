"""Fixed-point encoding and the plaintext-integer conversions."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyimgenc.paillier import decode_fixed, encode_fixed


def test_round_half_away_from_zero():
    got = encode_fixed([0.5, -0.5, 1.5, -2.5, 0.49, -0.49, 2.0], 1)
    assert got.dtype == np.int64
    assert got.tolist() == [1, -1, 2, -3, 0, 0, 2]
    assert encode_fixed(0.125, 1000).tolist() == 125
    assert encode_fixed(np.array([[1.25, -1.25]]), 2).tolist() == [[3, -3]]


def test_encode_rejects_bad_input():
    with pytest.raises(ValueError, match="overflows int64"):
        encode_fixed([1e300], 10)
    with pytest.raises(ValueError, match="NaN or infinity"):
        encode_fixed([np.nan], 10)
    with pytest.raises(ValueError, match="scale must be a positive int"):
        encode_fixed([1.0], 0)
    with pytest.raises(TypeError, match="scale must be a positive int"):
        encode_fixed([1.0], 2.5)
    with pytest.raises(TypeError, match="real-valued"):
        encode_fixed(np.array(["a"]), 2)


@settings(max_examples=50, deadline=None)
@given(x=st.floats(-1e6, 1e6), scale=st.sampled_from([1, 10, 2**16, 10**6]))
def test_decode_encode_within_half_ulp_of_scale(x, scale):
    back = decode_fixed(encode_fixed([x], scale), scale)[0]
    assert abs(back - x) <= 0.5 / scale + 1e-9 * max(1.0, abs(x))


def test_decode_big_values_exactly():
    big = np.array([3 * 2**200, -(2**200)], dtype=object)
    assert decode_fixed(big, 2**200).tolist() == [3.0, -1.0]
    with pytest.raises(TypeError, match="values"):
        decode_fixed(np.array([0.5]), 2)


def test_encrypted_fixed_point_scale_bookkeeping(on_backend, keypair):
    pk, sk = keypair
    s = 2**16
    a = np.array([1.5, -2.25, 0.1])
    b = np.array([0.5, 4.0, -3.0])
    ea = pk.encrypt_float(a, s)
    np.testing.assert_allclose(sk.decrypt_float(ea, s), a, atol=0.5 / s)
    # E(a*s) * round(b*s) carries scale s**2; adding E(b*s) needs it lifted to s**2 first
    prod = ea * encode_fixed(b, s)
    np.testing.assert_allclose(sk.decrypt_float(prod, s * s), a * b, atol=1e-4)
    total = prod + pk.encrypt_float(b, s) * s
    np.testing.assert_allclose(sk.decrypt_float(total, s * s), a * b + b, atol=1e-4)
    with pytest.raises(TypeError, match="x must be an integer array"):
        pk.encrypt(a)
