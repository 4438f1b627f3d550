"""SACT, the secure ReLU on a blinded tensor: S1's half and S2's half, no decryption.

S2 holds ``z = y + r``, S1 the mask ``r``.  The comparison of :mod:`.compare` gives XOR
shares ``t1`` (S1) and ``t2`` (S2) of ``t = [y >= 0]``; S1 sends ``delta = t1 xor f`` for
its offline selection bit f, S2 sets ``t' = t2 xor delta`` (so ``t = f xor t'``), and the
selection by two random OTs turns the shares into S2's blinded ``relu(y) + m``; words
are taken mod 2^L (L = the slot width)::

    S1 <-> S2 cmp1, cmp2 ...  the comparison (:mod:`.compare`)
    S1 -> S2  relu2: S1's last openings, delta
    S2 -> S1  e = t' xor c,  y_b = nu + (b xor t') z + K2_b           (OT: S1 opens y_f = nu + t z + K2_f)
    S1 -> S2  relu3: w_b = mu + (b xor f) r - Kc_(b xor e),  v = nu + t z + m + mu
              S2: x = w_t' + Kc_c = mu + t r;  v - nu - x = t (z - r) + m = relu(y) + m

``c, Kc`` and ``K2`` are random OTs made offline (:mod:`.randot`): S2 holds c and
``Kc_c``, S1 both Kc; S1 holds f and ``K2_f``, S2 both K2.  Everything S1 receives is
uniform given its view (``e`` is masked by c, the unopened ``y`` by K2); everything S2
receives is uniform given its view (``delta`` by f, ``w_(1 xor t')`` by the unknown key,
``v`` by ``mu``).  The new mask ``m`` is 40 bits wider than relu(y)'s bound.
"""
from __future__ import annotations

import secrets

import numpy as np

from . import compare, ot, wire
from .channel import ChannelError
from .graph import STAT_BITS
from .messages import ProtocolError


# ---------------------------------------------------------------------------------- S1's half

def relu(ops, h):
    """S1: the blinded ``relu`` of the blinded tensor ``h`` (a :class:`.s1.Blinded`)."""
    from .s1 import Blinded
    vb = h.vb
    width = vb + STAT_BITS + 3
    shape = h.mask.shape
    size = h.mask.size
    mod = (1 << width) - 1
    if width > ot.KEY_BITS:
        raise ValueError(f"SACT words of {width} bits exceed the {ot.KEY_BITS}-bit OT keys that mask them")

    def make():
        r = [int(v) for v in h.mask.ravel()]
        msb, x = compare.s1_inputs(r, vb)
        cur = ops.tape.layout.add(size, vb)
        f = ot.random_bits(size)                           # S1's selection share, its f-instance choice
        a1 = ot.random_bits(x.shape[0] * (x.shape[1] - 1))  # S1's triple bits, its f-instance choices
        ops.tape.choices.append((f, compare.leaf_choices(x), a1))
        m = [secrets.randbits(vb + STAT_BITS) for _ in range(size)]
        mu = [secrets.randbits(width) for _ in range(size)]
        return dict(m=np.array(m, dtype=object).reshape(shape), msb=msb, x=x, cur=cur, f=f, a1=a1,
                    x0=[(u + int(fi) * ri) & mod for u, fi, ri in zip(mu, f, r)],         # mu + (0 xor f) r
                    x1=[(u + (1 - int(fi)) * ri) & mod for u, fi, ri in zip(mu, f, r)],   # mu + (1 xor f) r
                    mm=[(u + mi) & mod for u, mi in zip(mu, m)])
    e = ops.entry(make)
    out = ops.new_name()
    if ops.phase == "online":
        select(ops, h, e, out, width)
    return Blinded(out, e["m"], vb, vb + STAT_BITS)


def select(ops, h, e: dict, out: str, width: int) -> None:
    """S1, online: the comparison, then the selection (relu2, relu3)."""
    size, shape = h.mask.size, h.mask.shape
    mod = (1 << width) - 1
    mat = ops.tape.ot
    js = e["cur"][0]
    tree, mine = compare.s1_compare(ops, h.name, width, e)
    delta = ot.pack_bits(e["msb"] ^ tree.root ^ e["f"]).tobytes()        # t1 xor f: S2 turns t2 into t'
    eb, y0, y1 = ops.request("relu2", dict(width=width), blobs=[*mine, delta])
    try:
        bits = ot.unpack_bits(eb, size) if len(eb) == -(-size // 8) else None
        y0, y1 = wire.unwords(y0, width, size), wire.unwords(y1, width, size)
    except ValueError as exc:
        raise ChannelError("bad_reply", f"relu2: {exc}") from None
    if bits is None:
        raise ChannelError("bad_reply", "relu2: wrong number of OT bits")
    kc0, kc1, k2f = (k[js:js + size] for k in (mat.kc0, mat.kc1, mat.k2f))
    w0, w1, v = [], [], []
    for i, (fi, bi) in enumerate(zip(e["f"], bits)):
        a = (y1[i] if fi else y0[i]) - k2f[i]                      # nu + t z
        w0.append((e["x0"][i] - (kc1[i] if bi else kc0[i])) & mod)
        w1.append((e["x1"][i] - (kc0[i] if bi else kc1[i])) & mod)
        v.append((a + e["mm"][i]) & mod)
    ops.request("relu3", dict(dst=out, shape=list(shape), width=width),
                blobs=[wire.words(w0, width), wire.words(w1, width), wire.words(v, width)])


# ---------------------------------------------------------------------------------- S2's half

def s2_relu2(srv, sess, meta, tensors, blobs):
    """S2: finish the comparisons (t' = t2 xor delta); answer the two OT selections."""
    st = compare.session_ot(sess)
    p = compare.awaiting(st, "cmp", "relu2")
    st["pending"] = None
    w, _ = srv.width(meta)
    size = p["size"]
    try:
        if tensors or not blobs or w != p["w"]:
            raise ValueError(f"expected openings and the shares' bits at width {p['w']}")
        t2 = compare.s2_finish(p, blobs[:-1])
        if len(blobs[-1]) != -(-size // 8):
            raise ValueError(f"expected {-(-size // 8)} bytes of share bits")
        tp = t2 ^ ot.unpack_bits(blobs[-1], size)
    except (ValueError, RuntimeError) as exc:
        raise ProtocolError(f"relu2: {exc}") from None
    js = p["js"]
    e = tp ^ st["c"][js:js + size]
    mask = (1 << w) - 1
    nu = [secrets.randbits(w) for _ in range(size)]
    k0, k1 = (ot.key_ints(k[js:js + size]) for k in st["k2"])
    zi = [int(v) for v in p["z"]]
    y0 = [(n + (v if t else 0) + k) & mask for n, v, t, k in zip(nu, zi, tp, k0)]
    y1 = [(n + (0 if t else v) + k) & mask for n, v, t, k in zip(nu, zi, tp, k1)]
    st["pending"] = dict(kind="sel", j0=js, size=size, w=w, tp=tp, nu=nu, shape=p["shape"])
    return {}, [], [ot.pack_bits(e).tobytes(), wire.words(y0, w), wire.words(y1, w)]


def s2_relu3(srv, sess, meta, tensors, blobs):
    """S2: its value of relu(y) + m from S1's three words per element.

    The pending relu2 is consumed even when the request is refused: its OTs are never reused.
    """
    st = compare.session_ot(sess)
    p = compare.awaiting(st, "sel", "relu3")
    st["pending"] = None
    shape = srv.shape(meta)
    w, _ = srv.width(meta)
    if tensors or len(blobs) != 3 or w != p["w"] or shape != p["shape"]:
        raise ProtocolError(f"relu3: expected three word blobs matching relu2's width {p['w']} and "
                            f"shape {p['shape']}")
    try:
        w0, w1, v = (wire.unwords(x, w, p["size"]) for x in blobs)
    except ValueError as exc:
        raise ProtocolError(f"relu3: {exc}") from None
    mask = (1 << w) - 1
    kc = ot.key_ints(st["kc"][p["j0"]:p["j0"] + p["size"]])
    out = [(vi - n - ((b1 if t else b0) + k)) & mask
           for vi, n, b0, b1, t, k in zip(v, p["nu"], w0, w1, p["tp"], kc)]
    sess["t"][srv.dst(meta)] = np.array(out, dtype=object).reshape(shape)
    return {}, []


S2_OPS = {"relu2": s2_relu2, "relu3": s2_relu3}
