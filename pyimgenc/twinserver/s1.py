"""S1, the compute server: runs the ICNN over blinded tensors with S2.

A tensor ``x`` in flight is *blinded*: S2 holds ``z = x + r`` in plaintext, S1 holds the
mask ``r`` (drawn by S1, 40 bits wider than x's public bound) and only ciphertexts under
S2's key.  Linear steps are local where they can be (slice, concat, shifts, sums);
SCVL/SCT, SACT (ReLU) and SMAP (max via ReLU of differences) are the protocols below.
Everything that does not depend on the image — every mask, every multiplier and sign
flip, the cross term ``conv(R, Wb)`` (homomorphic, from ``E(Wb)``), S2's encryption
randomness — is computed in :meth:`ComputeServer.offline` and kept on a one-time
:class:`Tape`; :meth:`ComputeServer.online` spends it.

SCVL on ``X`` (S2: X' = X + R), weights ``W = Wb - Wa``, bias ``b = bb - ba``::

    online   S2 -> S1  E(cols_k(X')) packed by position, E(A) with A = conv(X', Wb) + bb + Q
             S1 -> S2  E(A) * prod_k E(cols_k)^(-Wa[o,k]) * E(C)       (one multiexp per layer)
                       = E(Y + R'),  C = conv(R, Wa) - ba + M2 + R'
    offline  S1 -> S2  E(conv(R, Wb) + M2) packed by output channel; S2 keeps Q = -(...)

SACT on ``y`` (S2: z = y + r): the comparison of :mod:`.compare` gives XOR shares
``t1`` (S1) and ``t2`` (S2) of ``t = [y >= 0]``; S1 sends ``delta = t1 xor f`` for its
offline selection bit f, S2 sets ``t' = t2 xor delta`` (so ``t = f xor t'``), and words
are taken mod 2^L (L = the slot width)::

    S1 -> S2  cmp1 (the name of z)      S2 -> S1  leaf tables, S2's openings of tree level 1
    S1 <-> S2 cmp2: openings of the next tree levels, one level completed per message
    S1 -> S2  relu2: S1's last openings, delta
    S2 -> S1  e = t' xor c,  y_b = nu + (b xor t') z + K2_b           (OT: S1 opens y_f = nu + t z + K2_f)
    S1 -> S2  w_b = mu + (b xor f) r - Kc_(b xor e),  v = nu + t z + m + mu
              S2: x = w_t' + Kc_c = mu + t r;  v - nu - x = t (z - r) + m = relu(y) + m

``c, Kc`` and ``K2`` are random OTs made offline (:mod:`.ot`, IKNP over Paillier base OTs):
S2 holds c and Kc_c, S1 both Kc; S1 holds f and K2_f, S2 both K2.  The same two IKNP
instances carry the comparison's leaf OTs and triples (:class:`.compare.Layout`).
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..paillier import EncryptedTensor, linalg
from . import compare, ot, wire
from .channel import Channel, ChannelError
from ..models.intops import conv2d, im2col
from .graph import (STAT_BITS, concat_bounds, concat_shifted, icnn_forward, max2_bounds,
                    slots_for, tap_index)
from .owner import S1Share, uniform_range
from .s2 import MAX_OT, MAX_PREPARE, OT_W1, OT_W2, fast_request


@dataclass
class Blinded:
    """S1's view of a tensor in flight: its name at S2, its mask, public bounds."""
    name: str
    mask: np.ndarray
    vb: int
    mb: int


@dataclass
class Tape:
    """One image batch's offline material; spent once by :meth:`ComputeServer.online`."""
    sid: str
    n_images: int
    entries: list = field(default_factory=list)
    s2_encryptions: int = 0
    layout: compare.Layout = field(default_factory=compare.Layout)   # the session's OT material, counted
    choices: list = field(default_factory=list)  # S1's f-instance choices per SACT: (f, leaf bits, triple bits)
    ot: SimpleNamespace | None = None            # S1's OT keys after :meth:`ComputeServer.ot_setup`
    sends: int = 0                               # ciphertexts S1 sends online (each re-randomized)
    obf: np.ndarray | None = None                # their fresh randomness hs**r, drawn offline; spent from the front
    spent: bool = False
    seconds: float = 0.0


class _Ops:
    """The graph operations of :func:`icnn_forward` on :class:`Blinded` tensors."""

    def __init__(self, server: "ComputeServer", ch: Channel | None, tape: Tape, phase: str):
        self.srv, self.share, self.pk = server, server.share, server.share.public_key
        self.ch, self.tape, self.phase = ch, tape, phase
        self.plan = self.share.plan
        self.count = 0
        self.pre: list = []
        self.step = 0

    # -------------------------------------------------------------- plumbing
    def _name(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def _entry(self, make):
        """Offline: record ``make()``; online: return the recorded entry (same order)."""
        if self.phase == "offline":
            e = make()
            self.tape.entries.append(e)
            return e
        e = self.tape.entries[self.step]
        self.step += 1
        return e

    def request(self, op: str, meta: dict, tensors=(), blobs=(), reply=(0, 0)) -> list:
        """Send ``op``; S2's reply must hold ``reply = (tensors, blobs)``; returns them, tensors first.

        Every ciphertext leaves S1 re-randomized: S2 holds the key and could otherwise read
        the randomness of a product of its own ciphertexts, a function of S1's exponents.
        """
        meta = dict(meta, op=op, sid=self.tape.sid)
        if self.pre:
            meta["pre"], self.pre = self.pre, []
        return self.srv.call(self.ch, meta, [self._fresh(t) for t in tensors], blobs, reply)

    def _fresh(self, t: EncryptedTensor) -> EncryptedTensor:
        if self.phase == "offline":
            return t.rerandomize(statistical=True)
        tp = self.tape                      # online: randomness drawn offline (Tape.obf)
        pool = tp.obf if tp.obf is not None else np.zeros((0, self.pk.ct_limbs), dtype=np.uint64)
        obf, tp.obf, _ = wire.take_obfuscators(self.pk, pool, t.size, statistical=True)
        return t.rerandomize(obf)

    def _local(self, ins) -> None:
        if self.phase == "online":     # offline, S2 holds no tensors: masks only
            self.pre.append(ins)

    def shape(self, h: Blinded):
        return h.mask.shape

    # -------------------------------------------------------------- local steps
    def slice(self, h, axis, start, stop, step):
        sl = [slice(None)] * h.mask.ndim
        sl[axis] = slice(start, stop, step)
        out = self._name()
        self._local(["slice", h.name, out, axis, start, stop, step])
        return Blinded(out, h.mask[tuple(sl)], h.vb, h.mb)

    def concat(self, hs, axis, shifts=None):
        shifts = shifts or [0] * len(hs)
        out = self._name()
        self._local(["concat", [h.name for h in hs], out, axis, list(shifts)])
        mask = concat_shifted([h.mask for h in hs], axis, shifts)
        return Blinded(out, mask, *concat_bounds([(h.vb, h.mb) for h in hs], shifts))

    def _local2(self, kind, a, b, mask, vb, mb):
        out = self._name()
        self._local([kind, a.name, b.name, out])
        return Blinded(out, mask, vb, mb)

    def max2(self, a, b):
        """SMAP's step: max(a, b) = b + relu(a - b)."""
        diff, out = max2_bounds((a.vb, a.mb), (b.vb, b.mb))
        r = self.relu(self._local2("sub", a, b, a.mask - b.mask, *diff))
        return self._local2("add", b, r, b.mask + r.mask, *out)

    # -------------------------------------------------------------- input / output
    def load(self, shape, ct: EncryptedTensor | None):
        vb = self.plan["input_vb"]
        width = self.plan["input_width"]
        s = slots_for(width, self.pk.bits)
        size = int(np.prod(shape))

        def make():
            r = uniform_range(vb, vb + STAT_BITS, shape)
            self.tape.sends += -(-size // s)
            return dict(r=r, packed=wire.pack(r.ravel(), width, s))
        e = self._entry(make)
        out = self._name()
        if self.phase == "online":
            g = -(-size // s)
            if ct.shape != (g,):
                raise ValueError(f"the encrypted image must be {g} packed ciphertexts for {shape}, got {ct.shape}")
            self.request("load", dict(dst=out, shape=list(shape), width=width), [ct.add_mod(e["packed"])])
        return Blinded(out, e["r"], vb, vb + STAT_BITS)

    def result(self, h: Blinded) -> np.ndarray:
        if self.phase == "online":
            self.request("result", dict(src=h.name))
        return h.mask.reshape(h.mask.shape[0], -1)

    # -------------------------------------------------------------- SCVL / SCT
    def conv(self, name, h, pad):
        lay = self.plan["layers"][name]
        width = lay["width"]
        s = slots_for(width, self.pk.bits)
        wa = self.share.wa[name]
        o, c, k, _ = wa.shape
        rx = h.mask.reshape(h.mask.shape[0], -1, 1, 1) if name == "fc" else h.mask
        n, _, hh, ww = rx.shape
        p = n * hh * ww
        g = -(-p // s)
        t = c * k * k

        def make():
            vb = lay["vb"]
            r_out = uniform_range(vb, vb + STAT_BITS, (n, o, hh, ww))
            m2 = self.srv.qterm(self, name, rx, pad)                       # (N, O, H, W)
            corr = conv2d(rx, wa, pad) - self.share.ba[name][None, :, None, None] + m2 + r_out
            corr = corr.transpose(1, 0, 2, 3).reshape(o, p)
            self.tape.s2_encryptions += (t + o) * g
            self.tape.sends += o * g
            return dict(r=r_out, corr=[v for row in corr for v in wire.pack(row, width, s)])
        e = self._entry(make)
        out = self._name()
        if self.phase == "online":
            t0 = time.perf_counter()
            cols, a = self.request("lin1", dict(layer=name, src=h.name, pad=pad, width=width), reply=(2, 0))
            if cols.shape != (t, g) or a.shape != (o, g):
                raise ChannelError("bad_reply", f"lin1 for {name}: unexpected shapes {cols.shape}, {a.shape}")
            idx = tap_index(o, t, g)
            exps = np.repeat(wa.reshape(o, t).astype(np.int64), g, axis=0)     # cols arrive negated
            y = linalg.multiexp(self.pk, cols.limbs.reshape(t * g, -1), idx, exps)
            y = (EncryptedTensor(self.pk, y.reshape(o, g, -1)) + a).add_mod(_ints(e["corr"], (o, g)))
            self.request("lin2", dict(dst=out, shape=[n, o, hh, ww], width=width), [y])
            self.srv.layer_seconds[name] = time.perf_counter() - t0
        res = Blinded(out, e["r"], lay["vb"], lay["vb"] + STAT_BITS)
        if self.phase == "online" and self.srv.trace is not None:
            self.srv.trace[name] = res           # tests: S2's tensor minus this mask is the layer's output
        return res

    # -------------------------------------------------------------- SACT
    def relu(self, h):
        """SACT: ``[y >= 0]`` by the comparison of :mod:`.compare`, then the OT selection."""
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
            cur = self.tape.layout.add(size, vb)
            f = ot.random_bits(size)                           # S1's selection share, its f-instance choice
            a1 = ot.random_bits(x.shape[0] * (x.shape[1] - 1))  # S1's triple bits, its f-instance choices
            self.tape.choices.append((f, compare.leaf_choices(x), a1))
            m = [secrets.randbits(vb + STAT_BITS) for _ in range(size)]
            mu = [secrets.randbits(width) for _ in range(size)]
            return dict(m=np.array(m, dtype=object).reshape(shape), msb=msb, x=x, cur=cur, f=f, a1=a1,
                        x0=[(u + int(fi) * ri) & mod for u, fi, ri in zip(mu, f, r)],         # mu + (0 xor f) r
                        x1=[(u + (1 - int(fi)) * ri) & mod for u, fi, ri in zip(mu, f, r)],   # mu + (1 xor f) r
                        mm=[(u + mi) & mod for u, mi in zip(mu, m)])
        e = self._entry(make)
        out = self._name()
        if self.phase == "online":
            self._relu_online(h, e, out, width, size, shape)
        return Blinded(out, e["m"], vb, vb + STAT_BITS)

    def _relu_online(self, h, e, out, width, size, shape):
        mod = (1 << width) - 1
        mat = self.tape.ot
        js, jl, jt = e["cur"]
        x = e["x"]
        nl, nt = x.size, x.shape[0] * (x.shape[1] - 1)
        try:
            table, *theirs = self.request("cmp1", dict(src=h.name, width=width, ot=[js, jl, jt]), reply=(0, None))
            lt1, eq1 = compare.s1_read_table(table, x, mat.pads[jl:jl + nl])
            tree = compare.AndTree(lt1, eq1, compare.s1_triples(e["a1"], mat.u[jt:jt + nt], mat.h0[jt:jt + nt],
                                                                mat.h1[jt:jt + nt]), adds_ef=True)
            mine = compare.exchange(tree, theirs)
            while not tree.done:
                mine = compare.exchange(tree, self.request("cmp2", {}, blobs=mine, reply=(0, None)))
        except ValueError as exc:
            raise ChannelError("bad_reply", f"comparison: {exc}") from None
        delta = ot.pack_bits(e["msb"] ^ tree.root ^ e["f"]).tobytes()        # t1 xor f: S2 turns t2 into t'
        eb, y0, y1 = self.request("relu2", dict(width=width), blobs=[*mine, delta], reply=(0, 3))
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
        self.request("relu3", dict(dst=out, shape=list(shape), width=width),
                     blobs=[wire.words(w0, width), wire.words(w1, width), wire.words(v, width)])


class ComputeServer:
    """S1.  ``offline`` prepares a one-time :class:`Tape`; ``online`` classifies with it."""

    def __init__(self, share: S1Share):
        self.share = share
        self.pk = share.public_key
        self.arch = SimpleNamespace(fw=share.plan["fw"])   # all of the architecture S1 needs beyond the plan
        self.trace: dict | None = None
        self.layer_seconds: dict[str, float] = {}   # online seconds of each SCVL/SCT (S1 + S2), last run

    def call(self, ch: Channel, meta: dict, tensors=(), blobs=(), reply=(0, 0)) -> list:
        _, tensors, blobs = fast_request(ch, self.pk, meta, tensors, blobs)
        if len(tensors) != reply[0] or (reply[1] is not None and len(blobs) != reply[1]):
            raise ChannelError("bad_reply", f"{meta.get('op')}: expected {reply[0]} tensors and {reply[1]} blobs, "
                                            f"got {len(tensors)} and {len(blobs)}")
        return tensors + blobs

    def ot_setup(self, ops: _Ops, tape: Tape) -> None:
        """Offline: the session's random OTs (IKNP), base OTs over S2's Paillier key.

        c-instance (S2 receives with random choices): S2 sends E(k0_i), E(k1_i) slotted; S1,
        base receiver with random s, returns E(k_{s_i} + rho_i) packed and reads k_{s_i} back.
        f-instance (S1 receives with its choices: selection shares, leaf nibbles' bits,
        triple bits): S2 sends E(s2_i) slotted; S1 returns E(l0_i + s2_i (l1_i - l0_i))
        packed, which S2 decrypts.
        """
        lay = tape.layout
        pk = self.pk
        ek0, ek1, es2 = ops.request("ot1", dict(sel=lay.sel, leaf=lay.leaf, tri=lay.tri), reply=(3, 0))
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
        masked, u1 = ops.request("ot2", dict(sel=lay.sel, leaf=lay.leaf, tri=lay.tri), [y1, y2], [u2], reply=(0, 2))
        try:
            ks = [v - int(r) for v, r in zip(wire.unwords(masked, OT_W1, ot.KAPPA), rho)]
            if any(not 0 <= k < 1 << ot.KAPPA for k in ks):
                raise ValueError("a base-OT seed is out of range")
            q_c, srow = ot.sender(ks, s, u1, lay.m_c)
        except ValueError as exc:
            raise ChannelError("bad_reply", f"ot2: {exc}") from None
        ns, nl = lay.sel, lay.leaf
        leaf_x = np.concatenate([x.reshape(-1) for x in (e["x"] for e in tape.entries if "x" in e)] or
                                [np.zeros(0, np.uint8)])
        kc0, kc1 = ot.sender_keys(q_c[:ns], srow, compare.DOMAIN_C)
        h0, h1 = (ot.low_bits(k, 2) for k in ot.sender_keys(q_c[ns:], srow, compare.DOMAIN_C, ns))
        tape.ot = SimpleNamespace(
            k2f=ot.key_ints(ot.receiver_keys(t_f[:ns], compare.DOMAIN_F)),
            pads=compare.s1_leaf_pads(t_f[ns:ns + compare.BLOCK * nl], leaf_x, ns),
            u=ot.low_bits(ot.receiver_keys(t_f[ns + compare.BLOCK * nl:], compare.DOMAIN_F, ns + compare.BLOCK * nl), 2),
            kc0=ot.key_ints(kc0), kc1=ot.key_ints(kc1), h0=h0, h1=h1)

    def qterm(self, ops: _Ops, name: str, rx: np.ndarray, pad: int) -> np.ndarray:
        """Offline cross term: S2 learns conv(R, Wb) + M2 (blinded); S1 returns M2 as (N, O, H, W)."""
        lay = self.share.plan["layers"][name]
        qw = lay["q_width"]
        slots = slots_for(qw, self.pk.bits)
        wbp = self.share.wbp[name]                       # (T, G2)
        t, g2 = wbp.shape
        n, _, hh, ww = rx.shape
        o, _, k, _ = self.share.wa[name].shape
        cols = im2col(rx, k, pad).T                      # (P, T)
        p = cols.shape[0]
        idx = tap_index(p, t, g2)
        exps = np.repeat(cols, g2, axis=0)
        q_bits = qw - STAT_BITS - 1
        m2 = uniform_range(q_bits, q_bits + STAT_BITS, (p, o))
        y = EncryptedTensor(self.pk, linalg.multiexp(self.pk, wbp.limbs.reshape(t * g2, -1), idx, exps)
                            .reshape(p, g2, -1))
        y = y.add_mod(_ints([v for row in m2 for v in wire.pack(row, qw, slots)], (p, g2)))
        ops.request("qterm", dict(layer=name, shape=[n, o, hh, ww], width=qw), [y])
        return m2.reshape(n, hh, ww, o).transpose(0, 3, 1, 2)

    @property
    def max_batch(self) -> int:
        """Most images one session can hold: S2 keeps at most ``MAX_OT`` f-instance OTs a session."""
        per = compare.plan_layout(self.share.plan, {k: v.shape[0] for k, v in self.share.wa.items()}, 1).m_f
        return max(1, MAX_OT // per)

    def offline(self, ch: Channel, n_images: int, sid: str) -> Tape:
        if not 1 <= n_images <= self.max_batch:
            raise ValueError(f"a session holds 1 to {self.max_batch} images (the key server's cap of {MAX_OT} "
                             f"oblivious transfers), not {n_images}: classify in smaller batches")
        t0 = time.perf_counter()
        tape = Tape(sid, n_images)
        ops = _Ops(self, ch, tape, "offline")
        icnn_forward(ops, self.arch, ops.load((n_images, 1, 28, 28), None))
        self.finish_offline(ops)
        tape.seconds = time.perf_counter() - t0
        return tape

    def finish_offline(self, ops: _Ops) -> None:
        """After the graph's masks are drawn: S1's send randomness, S2's pool, the random OTs."""
        tape = ops.tape
        tape.s2_encryptions += 3 * ot.KAPPA           # S2's base-OT ciphertexts
        # Full-size r: S2 holds p and q and can read a ciphertext's randomness, so only a
        # statistically uniform hs**r hides S1's exponents from it (not DJN's short r).
        tape.obf = self.pk.raw_obfuscators(tape.sends, statistical=True)
        ops.request("prepare", dict(count=min(tape.s2_encryptions, MAX_PREPARE)))   # the rest: drawn online
        self.ot_setup(ops, tape)

    def online(self, ch: Channel, tape: Tape, ct: EncryptedTensor) -> np.ndarray:
        """Run the classification; returns S1's half of the result (the logits' masks) for the user."""
        if tape.spent:
            raise ValueError("this offline tape was already used (masks are one-time)")
        if ct.public_key != self.pk:
            raise ValueError("the encrypted image is under a different public key than the servers'")
        tape.spent = True
        ops = _Ops(self, ch, tape, "online")
        logits = icnn_forward(ops, self.arch, ops.load((tape.n_images, 1, 28, 28), ct))
        return ops.result(logits)


def _ints(values: list, shape: tuple) -> np.ndarray:
    """Python ints (any size) as an object array of ``shape``: the plaintext operand of ``add_mod``."""
    return np.array(values, dtype=object).reshape(shape)
