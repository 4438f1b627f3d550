"""The millionaires' comparison of :mod:`pyimgenc.twinserver.compare`, both halves in process.

Real IKNP OTs, no channel: S1's and S2's functions are called as the servers call them,
and ``[y >= 0]`` is checked against Python integers.
"""
from __future__ import annotations

import secrets

import numpy as np
import pytest

from pyimgenc.twinserver import compare as C
from pyimgenc.twinserver import ot


def _iknp(choices):
    k0, k1 = ot.random_seeds(), ot.random_seeds()
    s = ot.random_bits(ot.KAPPA)
    ks = [b if si else a for a, b, si in zip(k0, k1, s)]
    u, t = ot.receiver(k0, k1, choices)
    q, srow = ot.sender(ks, s, u, len(choices))
    return t, q, srow


def _material(lay, x):
    """Both parties' leaf pads and triples for one layout (S1's leaf choices the nibbles ``x``)."""
    ns, nl = lay.sel, lay.leaf
    lo = ns + C.BLOCK * nl
    a1 = ot.random_bits(lay.tri)
    t, qf, sf = _iknp(np.concatenate([ot.random_bits(ns), C.leaf_choices(x), a1]))
    cch = ot.random_bits(lay.m_c)
    tc, qc, sc = _iknp(cch)
    pads2 = C.s2_leaf_pads(qf[ns:lo], sf, ns)
    pads1 = C.s1_leaf_pads(t[ns:lo], x.reshape(-1), ns)
    g0, g1 = (ot.low_bits(k, 2) for k in ot.sender_keys(qf[lo:], sf, C.DOMAIN_F, lo))
    u = ot.low_bits(ot.receiver_keys(t[lo:], C.DOMAIN_F, lo), 2)
    h0, h1 = (ot.low_bits(k, 2) for k in ot.sender_keys(qc[ns:], sc, C.DOMAIN_C, ns))
    ha = ot.low_bits(ot.receiver_keys(tc[ns:], C.DOMAIN_C, ns), 2)
    return (pads1, C.s1_triples(a1, u, h0, h1)), (pads2, C.s2_triples(cch[ns:], g0, g1, ha))


def _compare(y, vb, transcript=None):
    """XOR shares (t1, t2) of [y >= 0] for |y| < 2**vb, masks as S1 draws them."""
    n = len(y)
    r = [(1 << vb) + secrets.randbelow((1 << (vb + 40)) - (1 << vb)) for _ in range(n)]
    z = [a + b for a, b in zip(y, r)]
    lay = C.Layout()
    lay.add(n, vb)
    q = C.leaves(vb)
    msb1, x = C.s1_inputs(r, vb)
    msb2, a = C.s2_inputs(z, vb)
    (pads1, tri1), (pads2, tri2) = _material(lay, x)
    lt2, eq2 = ot.random_bits(n * q).reshape(n, q), ot.random_bits(n * q).reshape(n, q)
    table = C.s2_table(a, pads2.reshape(n, q, C.ENTRIES), lt2, eq2)
    lt1, eq1 = C.s1_read_table(table, x, pads1)
    t1, t2 = C.AndTree(lt1, eq1, tri1, adds_ef=True), C.AndTree(lt2, eq2, tri2, adds_ef=False)
    msg, turn, messages = C.exchange(t2, []), t1, 0
    while not (t1.done and t2.done):
        messages += bool(msg)
        if transcript is not None and turn is t2:
            transcript.extend(msg)                    # S1's openings, as S2 receives them
        msg = C.exchange(turn, msg)
        turn = t2 if turn is t1 else t1
    messages += bool(msg)
    return msb1 ^ t1.root, msb2 ^ t2.root ^ np.uint8(1), messages


@pytest.mark.parametrize("vb", [1, 3, 4, 5, 8, 9, 22, 34, 57, 84])
def test_comparison_is_the_sign_on_random_and_edge_values(vb):
    top = (1 << vb) - 1
    y = [secrets.randbelow(2 * top + 1) - top for _ in range(400)] + [0, 1, -1, top, -top, top - 1, -(top - 1)]
    y += [v for k in range(vb) for v in (1 << k, -(1 << k), (1 << k) - 1, -(1 << k) + 1)]
    s1, s2, _ = _compare(y, vb)
    assert list(s1 ^ s2) == [int(v >= 0) for v in y]


def test_each_share_alone_is_a_fair_coin_whatever_the_sign():
    y = [5] * 4000 + [-5] * 4000                  # all signs known: the shares must not show them
    s1, s2, _ = _compare(y, 22)
    for share in (s1, s2):
        for part in (share[:4000], share[4000:]):
            assert 0.45 < part.mean() < 0.55


def test_messages_are_one_tree_level_each():
    for vb, q in ((4, 1), (8, 2), (84, 21)):
        assert C.leaves(vb) == q
        assert sum(C.levels(q)) == q - 1
        _, _, messages = _compare([3, -3], vb)
        assert messages == (len(C.levels(q)) + 1 if q > 1 else 0)     # beyond the table


def test_s2s_view_of_the_openings_is_independent_of_y():
    """S1's openings as S2 receives them: balanced bits for all-positive and all-negative inputs alike."""
    for y in ([7] * 3000, [-7] * 3000, [0] * 3000):
        seen: list = []
        _compare(y, 22, seen)
        bits = np.unpackbits(np.frombuffer(b"".join(seen), dtype=np.uint8))
        assert 0.47 < bits.mean() < 0.53


def test_nibbles_and_inputs():
    assert C.nibbles([0x1234, 0xF], 4).tolist() == [[4, 3, 2, 1], [15, 0, 0, 0]]
    assert C.nibbles([0xABC], 3).tolist() == [[12, 11, 10]]
    msb, x = C.s1_inputs([5], 8)                  # B = -5 mod 512 = 507: msb 1, B' = 251, X = 255 - 251
    assert msb.tolist() == [1] and x.tolist() == [[4, 0]]


def test_bad_messages_are_refused():
    lt = np.zeros((3, 4), dtype=np.uint8)
    tri = (np.zeros((3, 3), np.uint8),) * 3
    with pytest.raises(ValueError, match="comparison table must be"):
        C.s1_read_table(b"\x00" * 5, lt, np.zeros(12, np.uint8))
    tree = C.AndTree(lt, lt, tri, adds_ef=True)
    with pytest.raises(ValueError, match="openings must be"):
        C.exchange(tree, [b"\x00"])
    with pytest.raises(RuntimeError, match="not finished"):
        tree.root
    done = C.AndTree(lt[:, :1], lt[:, :1], (np.zeros((3, 0), np.uint8),) * 3, adds_ef=True)
    with pytest.raises(ValueError, match="more openings than tree levels"):
        C.exchange(done, [b"\x00"])
