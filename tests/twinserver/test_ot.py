"""Oblivious transfer (IKNP, fixed-key AES hash) and the OT-based SACT of the fast protocol."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyimgenc.math.limbs import limbs_to_ints
from pyimgenc.paillier import EncryptedTensor, linalg
from pyimgenc.twinserver import SecureClassifier, compare, ot, randot, wire
from pyimgenc.twinserver import messages
from pyimgenc.twinserver import s2 as s2mod
from pyimgenc.twinserver.graph import slots_for
from pyimgenc.twinserver.s1 import Tape, _Ops


@pytest.fixture(scope="module")
def clf():
    c = SecureClassifier.pretrained(key_bits=1024, insecure=True)
    yield c
    c.close()


def _base(kappa=ot.KAPPA):
    k0, k1 = ot.random_seeds(kappa), ot.random_seeds(kappa)
    s = ot.random_bits(kappa)
    return k0, k1, s, [b if si else a for a, b, si in zip(k0, k1, s)]


def _keys(rows, dom, j0=0, *, q=None, srow=None):
    if q is None:
        return ot.receiver_keys(rows, dom, j0)
    return ot.sender_keys(q, srow, dom, j0)


@pytest.mark.parametrize("m", [1, 7, 8, 9, 1000, 4099, 300_001])
def test_iknp_receiver_gets_exactly_its_chosen_key(m):
    k0, k1, s, ks = _base()
    c = ot.random_bits(m)
    u, t = ot.receiver(k0, k1, c)
    q, srow = ot.sender(ks, s, u, m)
    kc = ot.receiver_keys(t, 2)
    K0, K1 = ot.sender_keys(q, srow, 2)
    assert kc.shape == K0.shape == K1.shape == (m, 16)
    chosen = np.where(c[:, None].astype(bool), K1, K0)
    other = np.where(c[:, None].astype(bool), K0, K1)
    assert (kc == chosen).all()
    assert not (kc == other).all(axis=1).any()
    assert len({bytes(r) for r in K0} | {bytes(r) for r in K1}) == 2 * m   # fresh 128-bit keys, no repeats
    if m >= 1000:                                             # choices are fair coins
        assert 0.4 < c.mean() < 0.6


def test_bit_transpose_matches_a_bit_by_bit_reference():
    rng = np.random.default_rng(5)
    for m in (1, 8, 13, 1000, ot.CHUNK + 77):
        mat = ot.expand(ot.random_seeds(), m)
        bits = np.unpackbits(mat, axis=1, count=m, bitorder="little")
        assert np.array_equal(ot.transpose(mat, m), np.packbits(bits.T.copy(), axis=1, bitorder="little"))
        j = int(rng.integers(m))
        assert [(ot.transpose(mat, m)[j, i // 8] >> (i % 8)) & 1 for i in range(128)] == list(bits[:, j])


def test_tccr_is_aes_based_and_tweak_separated():
    x = np.frombuffer(bytes(range(32)), dtype=np.uint8).reshape(2, 16)
    tw = ot.tweaks(3, np.array([0, 1]))
    h = ot.tccr(x, tw)
    assert h.shape == (2, 16) and not (h == ot.tccr(x, ot.tweaks(4, np.array([0, 1])))).all(axis=1).any()
    assert not (h == ot.tccr(x, ot.tweaks(3, np.array([0, 1]), 5))).all(axis=1).any()
    # H(x, i) = pi(pi(x) ^ i) ^ pi(x), pi = AES-128 under the fixed key: recompute with cryptography
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    enc = Cipher(algorithms.AES(ot._FIXED_KEY), modes.ECB()).encryptor()
    p = np.frombuffer(enc.update(x.tobytes()), dtype=np.uint8).reshape(2, 16)
    want = np.frombuffer(enc.update((p ^ tw).tobytes()), dtype=np.uint8).reshape(2, 16) ^ p
    assert (h == want).all()


def test_iknp_instances_are_separated_by_domain_and_index():
    k0, k1, s, ks = _base()
    c = np.zeros(16, dtype=np.uint8)
    u, t = ot.receiver(k0, k1, c)
    q, srow = ot.sender(ks, s, u, 16)
    kc = ot.receiver_keys(t, 1)
    K0, _ = ot.sender_keys(q, srow, 2)                        # wrong domain: keys do not match
    assert not (kc == K0).all(axis=1).any()
    assert len({bytes(r) for r in kc}) == 16                    # same choice, different index: different key


def test_iknp_matrix_of_wrong_size_is_refused():
    _, _, s, ks = _base()
    with pytest.raises(ValueError, match="matrix must be"):
        ot.sender(ks, s, b"\x00" * 100, 64)


def test_words_roundtrip_and_refusals():
    vals = [0, 1, (1 << 70) - 1, 12345]
    assert wire.unwords(wire.words(vals, 70), 70, 4) == vals
    with pytest.raises(ValueError, match="exceeds"):
        wire.unwords(wire.words([1 << 70], 72), 70, 1)
    with pytest.raises(ValueError, match="expected 4 words"):
        wire.unwords(wire.words(vals, 70)[:-1], 70, 4)


def test_blobs_travel_after_tensors_and_unknown_parts_are_refused(clf):
    ct = clf.public_key.encrypt(np.arange(3))
    body = wire.pack_message({"a": 1}, [ct], [b"xyz", b""])
    meta, tensors, blobs = wire.unpack_message_parts(body, clf.public_key)
    assert meta == {"a": 1} and tensors[0].shape == (3,) and blobs == [b"xyz", b""]
    with pytest.raises(ValueError, match="unexpected raw blobs"):
        wire.unpack_message(body, clf.public_key)
    bad = bytearray(wire.pack_message({}, (), [b"q"]))
    bad[bad.index(b"}") + 1] = 7
    with pytest.raises(ValueError, match="unknown part kind"):
        wire.unpack_message_parts(bytes(bad), clf.public_key)


def _relu_once(clf, values, vb):
    """Drive S1 and S2 through one load and one SACT on ``values`` (|v| < 2**vb <= input bound)."""
    s1 = clf.s1
    sid, secret = s2mod.open_session(clf._user_ch, clf.public_key)
    shape = (1, 1, 1, len(values))
    tape = Tape(sid, 1)
    off = _Ops(s1, clf._ch, tape, "offline")
    off.relu(off.load(shape, None))
    s1.finish_offline(off)
    width = clf.plan["input_width"]
    packed = wire.pack(values, width, slots_for(width, clf.public_key.bits))
    ct = clf.public_key.encrypt(wire.signed_mod(packed, clf.public_key.n))
    on = _Ops(s1, clf._ch, tape, "online")
    h = on.relu(on.load(shape, ct))
    on.result(h)
    blinded = s2mod.fetch_result(clf._user_ch, clf.public_key, sid, secret)
    return [int(b) - int(m) for b, m in zip(blinded, h.mask.ravel())]


def test_fast_sact_is_relu_on_the_edges(clf):
    vb = clf.plan["input_vb"]
    top = (1 << vb) - 1
    values = [0, 1, -1, 2, -2, top, -top, top - 1, -(top - 1)] + list(range(-40, 41, 3))
    for _ in range(3):                                   # fresh sign flips and masks each time
        assert _relu_once(clf, values, vb) == [max(v, 0) for v in values]


def test_s2_refuses_out_of_order_or_repeated_transfers(clf):
    sid, _ = s2mod.open_session(clf._user_ch, clf.public_key)
    tape = clf.s1.offline(clf._ch, 1, sid)
    lay = tape.layout
    assert lay.sel > 60000 and lay.leaf > 10 * lay.sel and lay.tri == lay.leaf - lay.sel
    assert len(tape.ot.k2f) == len(tape.ot.kc0) == lay.sel and len(tape.ot.pads) == lay.leaf
    sess = clf.s2.sessions[sid]
    clf.s2._peer.name = sess["s1"]           # speak to S2 as the session's compute server
    sess["t"]["x"] = np.arange(5, dtype=object) + 1000
    width = 60

    def op(name, blobs=(), **meta):
        return clf.s2.handle(messages.FAST_REQUEST, wire.pack_message(dict(meta, op=name, sid=sid), (), list(blobs)))

    def cmp1(cur):
        return op("cmp1", src="x", width=width, ot=cur)
    with pytest.raises(ValueError, match="not the next unused"):
        cmp1([7, 0, 0])
    with pytest.raises(ValueError, match="relu3 out of order"):
        op("relu3", [b"", b"", b""], dst="y", shape=[5], width=width)
    with pytest.raises(ValueError, match="relu2 out of order"):
        op("relu2", [b"\x00"], width=width)
    cmp1([0, 0, 0])
    with pytest.raises(ValueError, match="previous comparison is unfinished"):
        cmp1([0, 0, 0])
    with pytest.raises(ValueError, match="takes no raw blobs"):
        op("cmp1", [b"x"], src="x", width=width, ot=[0, 0, 0])
    with pytest.raises(ValueError, match="openings must be"):      # refused, and the comparison is dropped
        op("cmp2", [b"\x00"])
    with pytest.raises(ValueError, match="cmp2 out of order"):
        op("cmp2", [b"\x00"])
    with pytest.raises(ValueError, match="not the next unused"):
        cmp1([0, 0, 0])                                    # an OT is never used twice
    q = compare.leaves(width - 43)
    cmp1([5, 5 * q, 5 * (q - 1)])                          # the next unused ones are accepted
    clf.s2.sessions.pop(sid)


def test_s2_refuses_ot2_without_ot1(clf):
    sid, _ = s2mod.open_session(clf._user_ch, clf.public_key)
    with pytest.raises(ValueError, match="ot2 without ot1"):
        clf.s2.handle(messages.FAST_REQUEST, wire.pack_message({"op": "ot2", "sid": sid, "sel": 5, "leaf": 0, "tri": 0},
                                                            (), [b""]))
    clf.s2.sessions.pop(sid)


def _randomness(clf, ct):
    """What the key holder reads off each ciphertext besides its plaintext: c * (1 + n)^(-m) mod n^2."""
    n = clf.public_key.n
    cs = limbs_to_ints(ct.limbs.reshape(-1, ct.limbs.shape[-1]))
    return [c * (1 - m * n) % (n * n) for c, m in zip(cs, clf.s2.sk.raw_decrypt(ct))]


def _recover_choices(clf, r0, r1, packed, slots):
    """S2's attack on an un-re-randomized base-OT reply: find s with prod_i r_{s_i} = randomness of the product."""
    n2 = clf.public_key.n ** 2
    found = []
    for gi, target in enumerate(_randomness(clf, packed)):
        idx = range(gi * slots, min((gi + 1) * slots, len(r0)))
        hit = None
        for bits in itertools.product((0, 1), repeat=len(idx)):
            acc = 1
            for i, b in zip(idx, bits):
                acc = acc * (r1[i] if b else r0[i]) % n2
            if acc == target:
                hit = bits
                break
        if hit is None:
            return None
        found.extend(hit)
    return found


def test_s1_rerandomizes_so_s2_cannot_read_its_base_ot_choices(clf, monkeypatch):
    seen = {}
    ot1, ot2 = clf.s2.ops["ot1"], clf.s2.ops["ot2"]

    def spy1(sess, meta, tensors, blobs):
        out = ot1(sess, meta, tensors, blobs)
        seen["ek"] = out[1]
        return out

    def spy2(sess, meta, tensors, blobs):
        seen["y1"] = tensors[0]
        return ot2(sess, meta, tensors, blobs)
    monkeypatch.setitem(clf.s2.ops, "ot1", spy1)
    monkeypatch.setitem(clf.s2.ops, "ot2", spy2)
    sid, _ = s2mod.open_session(clf._user_ch, clf.public_key)
    clf.s1.offline(clf._ch, 1, sid)
    clf.s2.sessions.pop(sid)
    ek0, ek1, _ = seen["ek"]
    r0, r1 = _randomness(clf, ek0), _randomness(clf, ek1)
    slots = slots_for(randot.OT_W1, clf.public_key.bits)
    # the attack works on the product S1 would send without fresh randomness ...
    pk = clf.public_key
    bits = ot.random_bits(ot.KAPPA)
    sel = np.where(bits[:, None].astype(bool), ek1.limbs, ek0.limbs)
    raw = linalg.multiexp(pk, sel, wire.group_index(ot.KAPPA, slots),
                          np.ones(wire.group_index(ot.KAPPA, slots).shape, dtype=object))
    raw = EncryptedTensor(pk, raw).add_mod([12345] * raw.shape[0])
    assert _recover_choices(clf, r0, r1, raw, slots) == list(bits)
    # ... and finds nothing in what S1 really sent
    assert _recover_choices(clf, r0, r1, seen["y1"], slots) is None
