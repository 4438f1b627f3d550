"""SMP: tensor and literal per-element paths equal the plaintext products; S2 sees masked values."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from pyimgenc import paillier
from pyimgenc.twinserver.channel import ChannelError, in_process_pair
from pyimgenc.twinserver.messages import SMP_REQUEST
from pyimgenc.twinserver.smp import KeyServer, smp, smp_literal, unpack_tensors


@pytest.fixture(scope="module")
def keys():
    return paillier.keygen(512, insecure=True)


@pytest.fixture
def s1(keys):
    pk, sk = keys
    a, b = in_process_pair(timeout_s=30)
    srv = KeyServer(sk)
    th = threading.Thread(target=srv.serve, args=(b,), daemon=True)
    th.start()
    yield a, srv
    a.close()
    th.join(timeout=5)


def test_smp_tensor_and_literal_match_plaintext(keys, s1):
    pk, sk = keys
    ch, _ = s1
    rng = np.random.default_rng(0)
    x = rng.integers(-(2**40), 2**40, (3, 4))
    y = rng.integers(-(2**40), 2**40, (3, 4))
    ex, ey = pk.encrypt(x), pk.encrypt(y)
    want = x.astype(object) * y.astype(object)
    fast = sk.decrypt(smp(ch, ex, ey))
    assert np.array_equal(fast.astype(object), want)
    rounds = ch.stats.rounds
    lit = sk.decrypt(smp_literal(ch, ex, ey))
    assert np.array_equal(lit.astype(object), want)
    assert ch.stats.rounds - rounds == x.size  # one round per element on the literal path


def test_key_server_sees_only_masked_values(keys, s1):
    pk, sk = keys
    ch, srv = s1
    seen = []
    orig = srv.handle

    def spy(mtype, body):
        if mtype == SMP_REQUEST:
            seen.extend(int(v) for t in unpack_tensors(body, pk, 2) for v in sk.decrypt(t).ravel())
        return orig(mtype, body)

    srv.handle = spy
    smp(ch, pk.encrypt(np.array([1, 2, 3])), pk.encrypt(np.array([4, 5, 6])))
    assert len(seen) == 6 and all(abs(v) > 2**64 for v in seen)  # uniform mod n, not 1..6


def test_bad_requests_get_an_error_and_the_server_keeps_serving(keys, s1):
    pk, sk = keys
    ch, _ = s1
    msg = ch.send(SMP_REQUEST, b"garbage")
    t, _, body = ch.recv(expect_id=msg)
    assert t == 255 and b"truncated" in body
    other_pk, _ = paillier.keygen(512, insecure=True)
    with pytest.raises(ValueError, match="different public keys"):
        smp(ch, pk.encrypt([1]), other_pk.encrypt([1]))
    with pytest.raises(ValueError, match="same shape"):
        smp(ch, pk.encrypt([1, 2]), pk.encrypt([1]))
    assert sk.decrypt(smp(ch, pk.encrypt([7]), pk.encrypt([-6])))[0] == -42  # still serving


def test_dead_key_server_is_a_clear_error(keys):
    pk, _ = keys
    a, b = in_process_pair(timeout_s=0.3)
    with pytest.raises(ChannelError, match="timeout"):
        smp(a, pk.encrypt([1]), pk.encrypt([2]))
