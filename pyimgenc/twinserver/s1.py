"""S1, the compute server: runs the ICNN over blinded tensors with S2.

A tensor ``x`` in flight is *blinded*: S2 holds ``z = x + r`` in plaintext, S1 holds the
mask ``r`` (drawn by S1, 40 bits wider than x's public bound) and only ciphertexts under
S2's key.  Linear steps are local where they can be (slice, concat, shifts, sums);
SCVL/SCT, SACT (ReLU) and SMAP (max via ReLU of differences) run with S2.
Everything that does not depend on the image — every mask, every multiplier and sign
flip, the cross term ``conv(R, Wb)`` (homomorphic, from ``E(Wb)``), S2's encryption
randomness — is computed in :meth:`ComputeServer.offline` and kept on a one-time
:class:`Tape`; :meth:`ComputeServer.online` spends it.

The protocols sit in their own modules, each with S1's half beside S2's: SCVL/SCT in
:mod:`.linear`, the comparison in :mod:`.compare`, SACT in :mod:`.sact`, SMAP in
:mod:`.smap`, the session's random OTs in :mod:`.randot`; the messages in :mod:`.messages`.
This module drives them over the graph (:func:`.graph.icnn_forward`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..paillier import EncryptedTensor, ObfuscatorPool
from . import compare, linear, ot, randot, sact, smap, wire
from .channel import Channel
from .graph import STAT_BITS, concat_bounds, concat_shifted, icnn_forward, slots_for
from .messages import call
from .owner import S1Share, uniform_range
from .s2 import MAX_PREPARE


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
    ot: SimpleNamespace | None = None            # S1's OT keys after :func:`.randot.setup`
    sends: int = 0                               # ciphertexts S1 sends online (each re-randomized)
    pool: ObfuscatorPool | None = None           # their fresh randomness hs**r, drawn offline
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
    def new_name(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def entry(self, make):
        """Offline: record ``make()``; online: return the recorded entry (same order)."""
        if self.phase == "offline":
            e = make()
            self.tape.entries.append(e)
            return e
        e = self.tape.entries[self.step]
        self.step += 1
        return e

    def request(self, op: str, meta: dict, tensors=(), blobs=()) -> list:
        """Send ``op`` to S2 (:func:`.messages.call`); returns the reply's tensors, then its blobs.

        Every ciphertext leaves S1 re-randomized: S2 holds the key and could otherwise read
        the randomness of a product of its own ciphertexts, a function of S1's exponents.
        """
        meta = dict(meta, op=op, sid=self.tape.sid)
        if self.pre:
            meta["pre"], self.pre = self.pre, []
        _, tensors, blobs = call(self.ch, self.pk, meta, [self._fresh(t) for t in tensors], blobs)
        return tensors + blobs

    def _fresh(self, t: EncryptedTensor) -> EncryptedTensor:
        if self.phase == "offline":
            return t.rerandomize(statistical=True)
        if self.tape.pool is None:          # online: randomness drawn offline (Tape.pool)
            self.tape.pool = ObfuscatorPool(self.pk, statistical=True)
        return t.rerandomize(self.tape.pool.take(t.size))

    def _local(self, ins) -> None:
        if self.phase == "online":     # offline, S2 holds no tensors: masks only
            self.pre.append(ins)

    def shape(self, h: Blinded):
        return h.mask.shape

    # -------------------------------------------------------------- local steps
    def slice(self, h, axis, start, stop, step):
        sl = [slice(None)] * h.mask.ndim
        sl[axis] = slice(start, stop, step)
        out = self.new_name()
        self._local(["slice", h.name, out, axis, start, stop, step])
        return Blinded(out, h.mask[tuple(sl)], h.vb, h.mb)

    def concat(self, hs, axis, shifts=None):
        shifts = shifts or [0] * len(hs)
        out = self.new_name()
        self._local(["concat", [h.name for h in hs], out, axis, list(shifts)])
        mask = concat_shifted([h.mask for h in hs], axis, shifts)
        return Blinded(out, mask, *concat_bounds([(h.vb, h.mb) for h in hs], shifts))

    def local2(self, kind, a, b, mask, vb, mb):
        """A local ``add``/``sub`` of two blinded tensors (S2 runs it in the next request's ``pre``)."""
        out = self.new_name()
        self._local([kind, a.name, b.name, out])
        return Blinded(out, mask, vb, mb)

    # -------------------------------------------------------------- the protocols
    def conv(self, name, h, pad):
        res = linear.conv(self, name, h, pad)
        if self.phase == "online" and self.srv.trace is not None:
            self.srv.trace[name] = res           # tests: S2's tensor minus this mask is the layer's output
        return res

    def relu(self, h):
        return sact.relu(self, h)

    def max2(self, a, b):
        return smap.max2(self, a, b)

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
        e = self.entry(make)
        out = self.new_name()
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


class ComputeServer:
    """S1.  ``offline`` prepares a one-time :class:`Tape`; ``online`` classifies with it."""

    def __init__(self, share: S1Share):
        self.share = share
        self.pk = share.public_key
        self.arch = SimpleNamespace(fw=share.plan["fw"])   # all of the architecture S1 needs beyond the plan
        self.trace: dict | None = None
        self.layer_seconds: dict[str, float] = {}   # online seconds of each SCVL/SCT (S1 + S2), last run

    @property
    def max_batch(self) -> int:
        """Most images one session can hold: S2 keeps at most ``randot.MAX_OT`` f-instance OTs a session."""
        return randot.max_images(self.share.plan, {k: v.shape[0] for k, v in self.share.wa.items()})

    def offline(self, ch: Channel, n_images: int, sid: str) -> Tape:
        if not 1 <= n_images <= self.max_batch:
            raise ValueError(f"a session holds 1 to {self.max_batch} images (the key server's cap of {randot.MAX_OT} "
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
        tape.pool = ObfuscatorPool(self.pk, statistical=True)
        tape.pool.fill(tape.sends)
        ops.request("prepare", dict(count=min(tape.s2_encryptions, MAX_PREPARE)))   # the rest: drawn online
        randot.setup(ops, tape)

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

