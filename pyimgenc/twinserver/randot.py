"""A session's random oblivious transfers (offline): S1's half and S2's half.

Two IKNP extensions (:mod:`.ot`) over 128 base OTs each, the base OTs run over S2's
Paillier key, carry every OT the comparisons and selections of the session need
(:class:`.compare.Layout`):

* **c-instance** (S2 receives with random choices ``c``; S1 sends): S2 sends ``E(k0_i)``,
  ``E(k1_i)`` slotted; S1, base receiver with random ``s``, returns ``E(k_{s_i} + rho_i)``
  packed and reads ``k_{s_i}`` back (``rho`` 40 bits wider than ``k``).
* **f-instance** (S1 receives with its choices: selection shares, the leaves' nibble
  bits, triple bits; S2 sends): S2 sends ``E(s2_i)`` slotted; S1 returns
  ``E(l0_i + s2_i (l1_i - l0_i))`` packed, which S2 decrypts.

::

    S1 -> S2  ot1: the counts (sel, leaf, tri)       S2 -> S1  E(k0), E(k1), E(s2)
    S1 -> S2  ot2: the counts, E(k_s + rho), E(l_s2), S1's IKNP matrix u_f
    S2 -> S1  k_s + rho (words), S2's IKNP matrix u_c

S2 refuses counts beyond what the public plan needs for the session's images, and
beyond :data:`MAX_OT`.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..paillier import EncryptedTensor, linalg
from . import compare, ot, wire
from .channel import ChannelError
from .graph import STAT_BITS, slots_for
from .messages import ProtocolError
from .owner import uniform_range

MAX_OT = 3 << 24               # f-instance OTs per session (one image of the shipped ICNN needs 4.8 million;
                               # the IKNP matrix of the cap, 16 bytes an OT, is 768 MiB)
OT_W1 = ot.KAPPA + 41          # slot width of S1's base OTs (k_s + rho, rho 40 bits wider than k)
OT_W2 = ot.KAPPA + 1           # slot width of S2's base OTs (k_s)


def max_images(plan: dict, out_channels: dict) -> int:
    """Most images one session can hold: S2 keeps at most :data:`MAX_OT` f-instance OTs a session."""
    return max(1, MAX_OT // compare.plan_layout(plan, out_channels, 1).m_f)


# ---------------------------------------------------------------------------------- S1's half

def setup(ops, tape) -> None:
    """S1, offline: run both extensions for ``tape.layout``; S1's keys land in ``tape.ot``."""
    lay = tape.layout
    pk = ops.pk
    counts = dict(sel=lay.sel, leaf=lay.leaf, tri=lay.tri)
    ek0, ek1, es2 = ops.request("ot1", counts)
    slots1, slots2 = slots_for(OT_W1, pk.bits), slots_for(OT_W2, pk.bits)
    if ek0.shape != (ot.KAPPA,) or ek1.shape != (ot.KAPPA,) or es2.shape != (ot.KAPPA,):
        raise ChannelError("bad_reply", "ot1: expected 3 x 128 ciphertexts")
    s = ot.random_bits(ot.KAPPA)
    rho = uniform_range(0, ot.KAPPA + STAT_BITS, ot.KAPPA)
    sel = np.where(s[:, None].astype(bool), ek1.limbs, ek0.limbs)     # E(k_{s_i}), chosen row by row
    idx1 = wire.group_index(ot.KAPPA, slots1)
    y1 = EncryptedTensor(pk, linalg.multiexp(pk, sel, idx1, np.ones(idx1.shape, dtype=np.int64)))
    y1 = y1.add_mod(wire.pack(rho, OT_W1, slots1))
    l0, l1 = ot.random_seeds(), ot.random_seeds()
    idx2 = wire.group_index(ot.KAPPA, slots2)
    d = np.array([b - a for a, b in zip(l0, l1)] + [0] * (idx2.size - ot.KAPPA), dtype=object)
    y2 = EncryptedTensor(pk, linalg.multiexp(pk, es2.limbs, idx2, d.reshape(idx2.shape)))
    y2 = y2.add_mod(wire.pack(l0, OT_W2, slots2))
    parts = list(zip(*tape.choices)) or [(), (), ()]
    f_sel, f_leaf, f_tri = (np.concatenate(p) if p else np.zeros(0, np.uint8) for p in parts)
    u2, t_f = ot.receiver(l0, l1, np.concatenate([f_sel, f_leaf, f_tri]))
    masked, u1 = ops.request("ot2", counts, [y1, y2], [u2])
    try:
        ks = [v - int(r) for v, r in zip(wire.unwords(masked, OT_W1, ot.KAPPA), rho)]
        if any(not 0 <= k < 1 << ot.KAPPA for k in ks):
            raise ValueError("a base-OT seed is out of range")
        q_c, srow = ot.sender(ks, s, u1, lay.m_c)
    except ValueError as exc:
        raise ChannelError("bad_reply", f"ot2: {exc}") from None
    ns, nl = lay.sel, lay.leaf
    leaf_x = np.concatenate([e["x"].reshape(-1) for e in tape.entries if "x" in e] or [np.zeros(0, np.uint8)])
    kc0, kc1 = ot.sender_keys(q_c[:ns], srow, compare.DOMAIN_C)
    h0, h1 = (ot.low_bits(k, 2) for k in ot.sender_keys(q_c[ns:], srow, compare.DOMAIN_C, ns))
    lo = ns + compare.BLOCK * nl
    tape.ot = SimpleNamespace(
        k2f=ot.key_ints(ot.receiver_keys(t_f[:ns], compare.DOMAIN_F)),
        pads=compare.s1_leaf_pads(t_f[ns:lo], leaf_x, ns),
        u=ot.low_bits(ot.receiver_keys(t_f[lo:], compare.DOMAIN_F, lo), 2),
        kc0=ot.key_ints(kc0), kc1=ot.key_ints(kc1), h0=h0, h1=h1)


# ---------------------------------------------------------------------------------- S2's half

def _layout(srv, sess, meta) -> compare.Layout:
    """The counts S1 asks for, refused beyond the plan's for the session's images (and ``MAX_OT``)."""
    lay = compare.Layout(*(srv.int_param(meta, k, 0, MAX_OT) for k in ("sel", "leaf", "tri")))
    plan = srv.plan_layout(sess.get("n", 1))
    if not 1 <= lay.m_f <= MAX_OT or not plan.covers(lay):
        raise ProtocolError(f"ot1: {lay} is more than the plan needs for {sess.get('n', 1)} image(s) ({plan}) "
                            f"or over {MAX_OT} transfers")
    return lay


def s2_ot1(srv, sess, meta, tensors, blobs):
    """S2: base OTs, step 1: S2's seed pairs for the c-instance, S2's choices for the f-instance."""
    lay = _layout(srv, sess, meta)
    base = dict(lay=lay, k0=ot.random_seeds(), k1=ot.random_seeds(), s=ot.random_bits(ot.KAPPA))
    sess["ot_base"] = base
    sh1 = wire.shifts(ot.KAPPA, OT_W1, slots_for(OT_W1, srv.pk.bits))
    sh2 = wire.shifts(ot.KAPPA, OT_W2, slots_for(OT_W2, srv.pk.bits))
    return {}, [srv.encrypt([k * f for k, f in zip(base["k0"], sh1)]),
                srv.encrypt([k * f for k, f in zip(base["k1"], sh1)]),
                srv.encrypt([int(b) * f for b, f in zip(base["s"], sh2)])]


def s2_ot2(srv, sess, meta, tensors, blobs):
    """S2: base OTs, step 2, both IKNP extensions, and S2's comparison and selection material."""
    base = sess.pop("ot_base", None)
    if base is None:
        raise ProtocolError("ot2 without ot1")
    lay = base["lay"]
    if _layout(srv, sess, meta) != lay:
        raise ProtocolError("ot2: the counts differ from ot1's")
    slots1, slots2 = slots_for(OT_W1, srv.pk.bits), slots_for(OT_W2, srv.pk.bits)
    shapes = ((-(-ot.KAPPA // slots1),), (-(-ot.KAPPA // slots2),))
    if len(tensors) != 2 or len(blobs) != 1 or tuple(t.shape for t in tensors) != shapes:
        raise ProtocolError(f"ot2 needs ciphertexts of shapes {shapes} and one matrix")
    masked = wire.unpack(srv.decrypt(tensors[0]), OT_W1, slots1, ot.KAPPA)      # k_{s_i} + rho_i
    ls = wire.unpack(srv.decrypt(tensors[1]), OT_W2, slots2, ot.KAPPA)
    if any(v >> ot.KAPPA for v in ls):
        raise ProtocolError("ot2: a base-OT seed is out of range")
    try:
        q_f, srow = ot.sender(ls, base["s"], blobs[0], lay.m_f)
    except ValueError as exc:
        raise ProtocolError(f"ot2: {exc}") from None
    c = ot.random_bits(lay.m_c)
    u, t_c = ot.receiver(base["k0"], base["k1"], c)
    ns, lo = lay.sel, lay.sel + compare.BLOCK * lay.leaf
    k2_0, k2_1 = ot.sender_keys(q_f[:ns], srow, compare.DOMAIN_F)
    g0, g1 = (ot.low_bits(k, 2) for k in ot.sender_keys(q_f[lo:], srow, compare.DOMAIN_F, lo))
    ha = ot.low_bits(ot.receiver_keys(t_c[ns:], compare.DOMAIN_C, ns), 2)
    sess["ot"] = dict(lay=lay, c=c[:ns], kc=ot.receiver_keys(t_c[:ns], compare.DOMAIN_C), k2=(k2_0, k2_1),
                      pads=compare.s2_leaf_pads(q_f[ns:lo], srow, ns),
                      tri=compare.s2_triples(c[ns:], g0, g1, ha), cursor=(0, 0, 0), pending=None)
    return {}, [], [wire.words(masked, OT_W1), u]


S2_OPS = {"ot1": s2_ot1, "ot2": s2_ot2}
