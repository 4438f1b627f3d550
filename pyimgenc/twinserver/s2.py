"""S2, the key server of the fast protocol.

S2 keeps, per session, named tensors of **blinded** plaintexts ``z = x + r`` (the mask
``r`` is S1's) and answers the operations of :mod:`.s1`:

=========  ===================================================  ====================================
op         S2 receives                                          S2 returns
=========  ===================================================  ====================================
open       (user) SHA-256 of a 32-byte secret (hex), no sid     a fresh session id (S2 draws it)
prepare    a count                                              — (precomputes encryption randomness)
qterm      E(conv(R, Wb) + M2), packed by output channel         — (stores Q = -(conv(R, Wb) + M2))
load       E(d + R) packed (the user's image, re-masked by S1)  —
lin1       the name of X' = X + R                               E(cols of X'), E(conv(X', Wb) + bb + Q)
lin2       E(Y + R'), packed by position                        — (stores Y + R')
ot1        counts of selection OTs, leaves and triples            base OTs: E(k0_i), E(k1_i), E(s2_i)
ot2        base-OT replies, S1's IKNP matrix (blob)              k_{s_i} + rho_i (words), S2's IKNP matrix
cmp1       the name of z, the OT cursors                        leaf tables (16 entries a leaf), S2's openings
cmp2       S1's openings of one or two tree levels (bits)       S2's openings of the next levels (bits)
relu2      S1's last openings, delta = t1 xor f (bits)          e = t' xor c (bits), y0, y1 (words)
relu3      w0, w1, v (words)                                    — (stores relu(y) + m)
result     the name of the logits' blinded tensor               — (keeps it for the user)
fetch      (user) the session id and the secret                 v + r (hex), once
=========  ===================================================  ====================================

**Sessions belong to the user.**  Only ``open`` creates one; every other op names a
session S2 opened and has not dropped, or is refused ("session expired or unknown").
``fetch`` releases the result only to the holder of the secret whose SHA-256 was given
at ``open`` (compared with :func:`hmac.compare_digest`); a missing or wrong secret is
refused and leaves the session as it was.

**Bounded state.**  A session idle longer than ``session_ttl_s`` (one opened and never
used: ``open_ttl_s``) is dropped before a new one is admitted; at most
``max_sessions_per_peer`` live sessions per peer (the connection's ``peer``: the
remote address over TCP, each in-process connection its own) and ``max_sessions`` in
all; ``prepare`` asks for at most :data:`MAX_PREPARE` rows and the randomness pool
never holds more than ``max_pool`` rows; ``concat`` shifts are at most
:data:`MAX_SHIFT` bits and a ``pre`` list at most :data:`MAX_PRE` steps.

Local steps (slice, concat with shifts, add, sub, free) ride in a request's ``pre`` list.
Every value S2 decrypts is blinded by a mask of S1; SACT and SMAP decrypt nothing (the
comparison is :mod:`.compare`'s, over oblivious transfer); see ``docs/twinserver-protocol.md``.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
import time

import numpy as np

from ..paillier import EncryptedTensor
from . import compare, ot, wire
from .channel import Channel, ChannelError
from ..models.intops import conv2d, im2col
from .graph import STAT_BITS, slots_for
from .owner import S2Share
from .smp import ERROR_REPLY, KeyServer

FAST_REQUEST, FAST_REPLY = 10, 11
MAX_SESSIONS = 64              # live sessions in all (default of ``max_sessions``)
MAX_SESSIONS_PER_PEER = 8      # live sessions one peer may have opened (default of ``max_sessions_per_peer``)
SESSION_TTL_S = 600.0          # a session idle this long is dropped
OPEN_TTL_S = 60.0              # ... one opened and never used, this long
MAX_PREPARE = 1 << 21          # pool rows one prepare may ask for (1 GiB at 2048 bits; S1 asks for no more)
MAX_SHIFT = 256                # bits of a concat shift (the shipped plan uses 2*fw = 16)
MAX_PRE = 256                  # local steps riding in one request
SECRET_BYTES = 32              # the user's fetch secret
MAX_ELEMENTS = 1 << 22
MAX_SESSION_ELEMENTS = 1 << 24  # values one session may hold at once, over all its named tensors
MAX_NAMES = 4096               # named tensors one session may hold
MAX_SESSION_S = 3600.0         # a session's whole life, however busy (default of ``max_session_s``)
MAX_OT = 3 << 24               # f-instance OTs per session (one image of the shipped ICNN needs 4.8 million;
                               # the IKNP matrix of the cap, 16 bytes an OT, is 768 MiB)
OT_W1 = ot.KAPPA + 41          # slot width of S1's base OTs (k_s + rho, rho 40 bits wider than k)
OT_W2 = ot.KAPPA + 1           # slot width of S2's base OTs (k_s)
_BLOB_OPS = ("ot2", "cmp2", "relu2", "relu3")


class ProtocolError(ValueError):
    """A request that does not fit the session (unknown name, wrong shape, bad parameter)."""


class TwinKeyServer(KeyServer):
    """S2: the secret key, S2's model share, and per-session blinded tensors.

    Also answers the literal SMP/SACT requests of :mod:`.smp` (the reference paths).

    Args:
        secret_key: S2's Paillier secret key.
        share: S2's model share (``None``: the literal paths only).
        session_ttl_s: a session idle longer than this is dropped.
        open_ttl_s: a session opened and never used by S1 is dropped after this long.
        max_sessions: live sessions in all.
        max_sessions_per_peer: live sessions one peer may have opened.
        max_pool: most rows of precomputed encryption randomness held at once.
        clock: monotonic seconds (tests inject one).
    """

    def __init__(self, secret_key, share: S2Share | None = None, *, session_ttl_s: float = SESSION_TTL_S,
                 open_ttl_s: float = OPEN_TTL_S, max_sessions: int = MAX_SESSIONS,
                 max_sessions_per_peer: int = MAX_SESSIONS_PER_PEER, max_pool: int = MAX_PREPARE,
                 max_session_s: float = MAX_SESSION_S, allow_literal: bool = False,
                 clock=time.monotonic):
        super().__init__(secret_key)
        self.share = share
        self.sessions: dict[str, dict] = {}
        self.session_ttl_s, self.open_ttl_s = float(session_ttl_s), float(open_ttl_s)
        self.max_sessions, self.max_sessions_per_peer = int(max_sessions), int(max_sessions_per_peer)
        self.max_pool = int(max_pool)
        self.max_session_s = float(max_session_s)
        self.max_value_bits = 2 * self.pk.bits     # a blinded value is below n; shifted ones far below n**2
        self.allow_literal = bool(allow_literal)
        self._plans: dict[int, compare.Layout] = {}   # the plan's OT counts by image count
        self.require_s1_cert = False           # deploy.serve_s2 over TLS: compute ops only for S1's certificate
        self._pending = 0                      # pool rows being drawn by prepare calls now
        self._clock = clock
        self._lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool = np.zeros((0, self.pk.ct_limbs), dtype=np.uint64)
        self._peer = threading.local()
        self._conn_ids = itertools.count(1)
        self.stats = dict(encryptions=0, pool_misses=0, decryptions=0)

    # ------------------------------------------------------------------ plumbing
    def serve(self, ch: Channel) -> None:
        """Answer requests on ``ch`` (as :meth:`KeyServer.serve`), as the peer ``ch.peer``.

        A channel without a ``peer`` (in process) is a peer of its own.
        """
        peer = getattr(ch, "peer", None)
        self._peer.name = peer if peer is not None else f"conn-{next(self._conn_ids)}"
        self._peer.role = getattr(ch, "role", None)
        super().serve(ch)

    def handle(self, mtype: int, body: bytes) -> tuple[int, bytes]:
        if mtype != FAST_REQUEST:
            if not self.allow_literal:   # the literal paths decrypt whatever they are sent
                raise ProtocolError(f"message type {mtype} (literal SMP/SACT) is disabled on this key server")
            return super().handle(mtype, body)
        meta, tensors, blobs = wire.unpack_message_parts(body, self.pk)
        op = meta.get("op")
        fn = getattr(self, f"_op_{op}", None) if isinstance(op, str) and op != "open" else None
        if op == "open":
            return FAST_REPLY, wire.pack_message(*self._open(meta))
        if fn is None:
            raise ProtocolError(f"unknown operation {_short(op)}")
        if blobs and op not in _BLOB_OPS:
            raise ProtocolError(f"{op} takes no raw blobs")
        if op in _BLOB_OPS:
            tensors = (tensors, blobs)
        sid = meta.get("sid")
        if not isinstance(sid, str) or not 8 <= len(sid) <= 64:
            raise ProtocolError("missing or malformed session id")
        if op == "fetch":
            return FAST_REPLY, wire.pack_message(*fn(sid, meta, tensors))
        if self.require_s1_cert and getattr(self._peer, "role", None) != "s1":
            raise ProtocolError(f"{op} is a compute-server operation: only the peer with S1's certificate may run it")
        if self.share is None:
            raise ProtocolError("this key server has no model share loaded")
        pre = meta.get("pre", [])
        if not isinstance(pre, list) or len(pre) > MAX_PRE:
            raise ProtocolError(f"'pre' must be a list of at most {MAX_PRE} local steps")
        peer = getattr(self._peer, "name", "local")
        with self._lock:
            sess = self._live(sid)
            if sess["result"] is not None:
                raise ProtocolError("this session has its result already; only the user's fetch is left")
            if sess["s1"] is None:
                sess["s1"] = peer            # the compute server is whoever runs the first operation
            elif sess["s1"] != peer:
                raise ProtocolError("this session is bound to another compute-server connection")
            sess["busy"] += 1
            sess["used"] = True
            sess["last"] = self._clock()
        try:
            with sess["lock"]:                   # one operation at a time per session
                for ins in pre:
                    self._local(sess, ins)
                    self._check_budget(sess)
                reply = fn(sess, meta, tensors)
                self._check_budget(sess)
                return FAST_REPLY, wire.pack_message(*reply)
        finally:
            with self._lock:
                sess["busy"] -= 1
                sess["last"] = self._clock()

    # ------------------------------------------------------------------ sessions
    def _expired(self, sess, now: float) -> bool:
        ttl = self.session_ttl_s if sess["used"] else self.open_ttl_s
        too_old = now - sess["opened"] > self.max_session_s
        return sess["busy"] == 0 and (now - sess["last"] > ttl or too_old)

    def _check_budget(self, sess) -> None:
        """Refuse a session that holds too many tensors, values or too-long values."""
        t = sess["t"]
        if len(t) > MAX_NAMES:
            raise ProtocolError(f"session holds more than {MAX_NAMES} named tensors")
        total = sum(v.size for v in t.values())
        if total > MAX_SESSION_ELEMENTS:
            raise ProtocolError(f"session holds {total} values, more than {MAX_SESSION_ELEMENTS}")

    def _sweep(self) -> None:
        """Drop every expired session (caller holds ``self._lock``)."""
        now = self._clock()
        for sid in [k for k, v in self.sessions.items() if self._expired(v, now)]:
            del self.sessions[sid]

    def _live(self, sid: str) -> dict:
        """The live session ``sid`` (caller holds ``self._lock``); an expired one is dropped here."""
        sess = self.sessions.get(sid)
        if sess is not None and self._expired(sess, self._clock()):
            del self.sessions[sid]
            sess = None
        if sess is None:
            raise ProtocolError("session expired or unknown (the user opens sessions with 'open')")
        return sess

    def _open(self, meta) -> tuple[dict, list]:
        """The user's ``open``: store the verifier ``SHA-256(secret)``, return a fresh session id."""
        ver = meta.get("verifier")
        if not isinstance(ver, str) or len(ver) != 64:
            raise ProtocolError("open needs 'verifier': the SHA-256 of the user's secret, 64 hex digits")
        try:
            digest = bytes.fromhex(ver)
        except ValueError:
            raise ProtocolError("open: 'verifier' is not hexadecimal") from None
        if self.share is None:
            raise ProtocolError("this key server has no model share loaded")
        peer = getattr(self._peer, "name", "local")
        with self._lock:
            self._sweep()
            mine = sum(1 for v in self.sessions.values() if v["peer"] == peer)
            if mine >= self.max_sessions_per_peer:
                raise ProtocolError(f"too many open sessions for this peer ({mine} of "
                                    f"{self.max_sessions_per_peer}); finish or let some expire")
            if len(self.sessions) >= self.max_sessions:
                raise ProtocolError(f"too many open sessions ({len(self.sessions)} live); try again later")
            sid = new_session_id()
            self.sessions[sid] = {"t": {}, "q": {}, "result": None, "done": threading.Event(),
                                  "verifier": digest, "peer": peer, "used": False, "busy": 0,
                                  "last": self._clock(), "opened": self._clock(), "s1": None,
                                  "lock": threading.Lock()}
        return {"sid": sid}, []

    def _decrypt(self, ct: EncryptedTensor) -> list[int]:
        self.stats["decryptions"] += ct.size
        return self.sk.raw_decrypt(ct)

    def _encrypt(self, values) -> EncryptedTensor:
        """``rho * (1 + m*n) mod n**2`` with ``rho = hs**r`` from the precomputed pool (fresh if it runs dry)."""
        k = len(values)
        obf = self._take(k)
        if k == 0:
            return EncryptedTensor(self.pk, np.zeros((0, self.pk.ct_limbs), dtype=np.uint64))
        return EncryptedTensor(self.pk, self.pk.raw_add_plain(obf, values))

    def _take(self, k: int) -> np.ndarray:
        """``k`` rows of the pool, each handed out once (rows missing from the pool are drawn now)."""
        with self._pool_lock:
            take = min(k, len(self._pool))
            obf, self._pool = self._pool[:take], self._pool[take:]
            self.stats["encryptions"] += k
            self.stats["pool_misses"] += k - take
        if take < k:
            obf = np.concatenate([obf, self.pk.raw_obfuscators(k - take)])
        return obf

    @staticmethod
    def _get(sess, name) -> np.ndarray:
        t = sess["t"].get(name) if isinstance(name, str) else None
        if t is None:
            raise ProtocolError(f"no tensor named {_short(name)} in this session")
        return t

    @staticmethod
    def _int(meta, key, lo=0, hi=1 << 30) -> int:
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ProtocolError(f"parameter {_short(key)} must be an integer in [{lo}, {hi}], got {_short(v)}")
        return v

    def _shape(self, meta, key="shape") -> tuple:
        s = meta.get(key)
        if not isinstance(s, list) or not 1 <= len(s) <= 4 or not all(isinstance(d, int) and 0 < d <= 1 << 16 for d in s):
            raise ProtocolError(f"bad shape {_short(s)}")
        if int(np.prod(s)) > MAX_ELEMENTS:
            raise ProtocolError(f"shape {s} is too large")
        return tuple(s)

    def _width(self, meta) -> tuple[int, int]:
        w = self._int(meta, "width", 8, self.pk.bits - 2)
        return w, slots_for(w, self.pk.bits)

    def _local(self, sess, ins) -> None:
        if not isinstance(ins, list) or not ins:
            raise ProtocolError(f"bad local instruction {_short(ins)}")
        t, kind = sess["t"], ins[0]
        try:
            if kind == "slice":
                _, src, dst, axis, start, stop, step = ins
                x = self._get(sess, src)
                sl = [slice(None)] * x.ndim
                sl[axis] = slice(start, stop, step)
                t[dst] = x[tuple(sl)]
            elif kind == "concat":
                _, srcs, dst, axis, sh = ins
                if (not isinstance(srcs, list) or not isinstance(sh, list) or len(sh) != len(srcs)
                        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SHIFT
                                   for v in sh)):
                    raise ProtocolError(f"concat: one shift per part, each an integer in [0, {MAX_SHIFT}] bits")
                parts = [self._get(sess, s) for s in srcs]
                if sum(p.size for p in parts) > MAX_ELEMENTS:
                    raise ProtocolError(f"concat: more than {MAX_ELEMENTS} elements")
                out = np.concatenate([p * (1 << s) if s else p for p, s in zip(parts, sh)], axis=axis)
                if any(sh) and out.size and int(np.max(np.abs(out))).bit_length() > self.max_value_bits:
                    raise ProtocolError(f"concat: values over {self.max_value_bits} bits (shifts too large)")
                t[dst] = out
            elif kind in ("add", "sub"):
                _, a, b, dst = ins
                x, y = self._get(sess, a), self._get(sess, b)
                if x.shape != y.shape:
                    raise ProtocolError(f"{kind}: shapes {x.shape} and {y.shape} differ")
                t[dst] = x + y if kind == "add" else x - y
            elif kind == "free":
                for name in ins[1]:
                    t.pop(name, None)
            else:
                raise ProtocolError(f"unknown local instruction {_short(kind)}")
        except (TypeError, IndexError, ValueError) as exc:
            if isinstance(exc, ProtocolError):
                raise
            raise ProtocolError(f"bad local instruction {_short(ins)}: {exc}") from None

    # ------------------------------------------------------------------ offline
    def _op_prepare(self, sess, meta, tensors):
        """Top the pool of encryption randomness up to ``count`` rows (at most ``max_pool`` in all)."""
        count = self._int(meta, "count", 0, MAX_PREPARE)
        with self._pool_lock:   # reserve the rows first, so concurrent prepares never overshoot max_pool
            need = min(count, self.max_pool) - len(self._pool) - self._pending
            need = max(need, 0)
            self._pending += need
        if need > 0:
            try:
                rows = self.pk.raw_obfuscators(need)
            finally:
                with self._pool_lock:
                    self._pending -= need
            with self._pool_lock:
                room = max(self.max_pool - len(self._pool), 0)
                self._pool = np.concatenate([self._pool, rows[:room]])
        with self._pool_lock:
            return {"pool": len(self._pool)}, []

    def _op_qterm(self, sess, meta, tensors):
        layer = meta.get("layer")
        if layer not in (self.share.wb if self.share else {}):
            raise ProtocolError(f"unknown layer {_short(layer)}")
        shape = self._shape(meta)                    # (N, O, H, W)
        w, s = self._width(meta)
        o = self.share.wb[layer].shape[0]
        if len(shape) != 4 or shape[1] != o or len(tensors) != 1:
            raise ProtocolError(f"qterm for {layer}: bad shape {shape} or tensor count")
        if sess.setdefault("n", shape[0]) != shape[0]:
            raise ProtocolError(f"qterm for {layer}: {shape[0]} images, but this session has {sess['n']}")
        p = shape[0] * shape[2] * shape[3]
        g2 = -(-o // s)
        if tensors[0].shape != (p, g2):
            raise ProtocolError(f"qterm for {layer}: expected {(p, g2)} ciphertexts, got {tensors[0].shape}")
        vals = self._decrypt(tensors[0])
        d = [v for i in range(p) for v in wire.unpack(vals[i * g2:(i + 1) * g2], w, s, o)]
        q = -np.array(d, dtype=object).reshape(shape[0], shape[2], shape[3], o).transpose(0, 3, 1, 2)
        sess["q"][layer] = q
        return {}, []

    # ------------------------------------------------------------------ online
    def _store_packed(self, sess, meta, ct: EncryptedTensor) -> None:
        dst = meta.get("dst")
        if not isinstance(dst, str):
            raise ProtocolError("missing destination name")
        shape = self._shape(meta)
        w, s = self._width(meta)
        count = int(np.prod(shape))
        if ct.size != -(-count // s):
            raise ProtocolError(f"expected {-(-count // s)} packed ciphertexts for {shape}, got {ct.size}")
        vals = np.array(wire.unpack(self._decrypt(ct.reshape(-1)), w, s, count), dtype=object)
        sess["t"][dst] = vals.reshape(shape)

    def _op_load(self, sess, meta, tensors):
        if len(tensors) != 1:
            raise ProtocolError("load needs one tensor")
        self._store_packed(sess, meta, tensors[0])
        return {}, []

    def _layer_input(self, sess, meta):
        layer = meta.get("layer")
        if layer not in self.share.wb:
            raise ProtocolError(f"unknown layer {_short(layer)}")
        x = self._get(sess, meta.get("src"))
        wb = self.share.wb[layer]
        if layer == "fc":
            x = x.reshape(x.shape[0], -1, 1, 1)
        if x.ndim != 4 or x.shape[1] != wb.shape[1]:
            raise ProtocolError(f"{layer}: input shape {x.shape} does not fit weights {wb.shape}")
        return layer, x, wb

    def _op_lin1(self, sess, meta, tensors):
        layer, x, wb = self._layer_input(sess, meta)
        pad = self._int(meta, "pad", 0, 8)
        w, s = self._width(meta)
        n, c, h, wd = x.shape
        o, _, k, _ = wb.shape
        if k != 2 * pad + 1:
            raise ProtocolError(f"{layer}: padding {pad} does not keep the size for a {k}x{k} kernel")
        q = sess["q"].get(layer)
        if q is None or q.shape != (n, o, h, wd):
            raise ProtocolError(f"{layer}: no offline term for this input (run the offline phase first)")
        cols = im2col(x, k, pad)                                         # (C*k*k, N*H*W)
        packed_cols = [-v for col in cols for v in wire.pack(col, w, s)]   # E(-cols): S1's exponents stay >= 0
        a = conv2d(x, wb, pad) + self.share.bb[layer][None, :, None, None] + q   # (N, O, H, W)
        a = a.transpose(1, 0, 2, 3).reshape(o, -1)
        packed_a = [v for row in a for v in wire.pack(row, w, s)]
        g = -(-(n * h * wd) // s)
        return {}, [self._encrypt(packed_cols).reshape(len(cols), g), self._encrypt(packed_a).reshape(o, g)]

    def _op_lin2(self, sess, meta, tensors):
        if len(tensors) != 1:
            raise ProtocolError("lin2 needs one tensor")
        shape = self._shape(meta)                                  # (N, O, H, W)
        if len(shape) != 4:
            raise ProtocolError("lin2: shape must be (N, O, H, W)")
        n, o, h, wd = shape
        w, s = self._width(meta)
        g = -(-(n * h * wd) // s)
        if tensors[0].shape != (o, g):
            raise ProtocolError(f"lin2: expected {(o, g)} ciphertexts, got {tensors[0].shape}")
        vals = self._decrypt(tensors[0].reshape(-1))
        rows = [wire.unpack(vals[i * g:(i + 1) * g], w, s, n * h * wd) for i in range(o)]
        y = np.array(rows, dtype=object).reshape(o, n, h, wd).transpose(1, 0, 2, 3)
        sess["t"][self._dst(meta)] = y
        return {}, []

    @staticmethod
    def _dst(meta):
        dst = meta.get("dst")
        if not isinstance(dst, str):
            raise ProtocolError("missing destination name")
        return dst

    # ------------------------------------------------------------------ oblivious transfer (offline)
    def _layout(self, sess, meta) -> compare.Layout:
        """The counts S1 asks for, refused beyond the plan's for the session's images (and ``MAX_OT``)."""
        lay = compare.Layout(self._int(meta, "sel", 0, MAX_OT), self._int(meta, "leaf", 0, MAX_OT),
                             self._int(meta, "tri", 0, MAX_OT))
        n = sess.get("n", 1)
        plan = self._plans.get(n)
        if plan is None:
            plan = self._plans[n] = compare.plan_layout(self.share.plan, {k: v.shape[0] for k, v in
                                                                          self.share.wb.items()}, n)
        if not 1 <= lay.m_f <= MAX_OT or not plan.covers(lay):
            raise ProtocolError(f"ot1: {lay} is more than the plan needs for {n} image(s) ({plan}) or over "
                                f"{MAX_OT} transfers")
        return lay

    def _op_ot1(self, sess, meta, tensors):
        """Base OTs, step 1: S2's seed pairs for the c-instance, S2's choices for the f-instance."""
        lay = self._layout(sess, meta)
        base = dict(lay=lay, k0=ot.random_seeds(), k1=ot.random_seeds(), s=ot.random_bits(ot.KAPPA))
        sess["ot_base"] = base
        sh1 = wire.shifts(ot.KAPPA, OT_W1, slots_for(OT_W1, self.pk.bits))
        sh2 = wire.shifts(ot.KAPPA, OT_W2, slots_for(OT_W2, self.pk.bits))
        return {}, [self._encrypt([k * f for k, f in zip(base["k0"], sh1)]),
                    self._encrypt([k * f for k, f in zip(base["k1"], sh1)]),
                    self._encrypt([int(b) * f for b, f in zip(base["s"], sh2)])]

    def _op_ot2(self, sess, meta, parts):
        """Base OTs, step 2, both IKNP extensions, and S2's comparison and selection material."""
        tensors, blobs = parts
        base = sess.pop("ot_base", None)
        if base is None:
            raise ProtocolError("ot2 without ot1")
        lay = base["lay"]
        if self._layout(sess, meta) != lay:
            raise ProtocolError("ot2: the counts differ from ot1's")
        slots1, slots2 = slots_for(OT_W1, self.pk.bits), slots_for(OT_W2, self.pk.bits)
        shapes = ((-(-ot.KAPPA // slots1),), (-(-ot.KAPPA // slots2),))
        if len(tensors) != 2 or len(blobs) != 1 or tuple(t.shape for t in tensors) != shapes:
            raise ProtocolError(f"ot2 needs ciphertexts of shapes {shapes} and one matrix")
        masked = wire.unpack(self._decrypt(tensors[0]), OT_W1, slots1, ot.KAPPA)      # k_{s_i} + rho_i
        ls = wire.unpack(self._decrypt(tensors[1]), OT_W2, slots2, ot.KAPPA)
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

    def _ot(self, sess):
        st = sess.get("ot")
        if st is None:
            raise ProtocolError("no oblivious-transfer material in this session (run the offline phase first)")
        return st

    # ------------------------------------------------------------------ SACT
    def _op_cmp1(self, sess, meta, tensors):
        """Start the comparisons ``[y >= 0]`` of a tensor: S2's leaf tables and first openings."""
        zt = self._get(sess, meta.get("src"))
        z = zt.ravel()
        w, _ = self._width(meta)
        st = self._ot(sess)
        size = len(z)
        vb = w - STAT_BITS - 3
        if not 1 <= vb or w > ot.KEY_BITS:
            raise ProtocolError(f"cmp1: words of {w} bits: need {STAT_BITS + 4}..{ot.KEY_BITS}")
        if st["pending"] is not None:
            raise ProtocolError("cmp1 while the previous comparison is unfinished")
        cur = meta.get("ot")
        if cur != list(st["cursor"]):
            raise ProtocolError("cmp1: the oblivious transfers named are not the next unused ones")
        lay, q = st["lay"], compare.leaves(vb)
        js, jl, jt = cur
        end = (js + size, jl + size * q, jt + size * (q - 1))
        if end[0] > lay.sel or end[1] > lay.leaf or end[2] > lay.tri:
            raise ProtocolError("cmp1: not enough oblivious transfers left in this session")
        st["cursor"] = end                                # spent, whatever happens next
        msb, a = compare.s2_inputs(z, vb)
        lt2, eq2 = (ot.random_bits(size * q).reshape(size, q) for _ in range(2))
        table = compare.s2_table(a, st["pads"][jl:end[1]], lt2, eq2)
        tree = compare.AndTree(lt2, eq2, (t[jt:end[2]] for t in st["tri"]), adds_ef=False)
        st["pending"] = dict(kind="cmp", tree=tree, msb=msb, z=z, shape=zt.shape, w=w, js=js, size=size)
        return {}, [], [table, *compare.exchange(tree, [])]

    def _awaiting(self, st, kind: str, op: str) -> dict:
        p = st["pending"]
        if p is None or p["kind"] != kind:
            st["pending"] = None
            raise ProtocolError(f"{op} out of order")
        return p

    def _op_cmp2(self, sess, meta, parts):
        """One step of the comparison tree: S1's openings in, S2's out."""
        tensors, blobs = parts
        st = self._ot(sess)
        p = self._awaiting(st, "cmp", "cmp2")
        try:
            if tensors or p["tree"].done:
                raise ValueError("no comparison level is waiting")
            return {}, [], compare.exchange(p["tree"], blobs)
        except (ValueError, RuntimeError) as exc:
            st["pending"] = None
            raise ProtocolError(f"cmp2: {exc}") from None

    def _op_relu2(self, sess, meta, parts):
        """Finish the comparisons (t' = t2 xor delta); answer the two OT selections (see :mod:`.s1`)."""
        tensors, blobs = parts
        st = self._ot(sess)
        p = self._awaiting(st, "cmp", "relu2")
        st["pending"] = None
        w, _ = self._width(meta)
        size, tree = p["size"], p["tree"]
        try:
            if tensors or not blobs or w != p["w"]:
                raise ValueError(f"expected openings and the shares' bits at width {p['w']}")
            if compare.exchange(tree, blobs[:-1]) or not tree.done:
                raise ValueError("the comparison is unfinished")
            if len(blobs[-1]) != -(-size // 8):
                raise ValueError(f"expected {-(-size // 8)} bytes of share bits")
            tp = p["msb"] ^ tree.root ^ np.uint8(1) ^ ot.unpack_bits(blobs[-1], size)
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

    def _op_relu3(self, sess, meta, parts):
        """S2's value of relu(y) + m from S1's three words per element.

        The pending relu2 is consumed even when the request is refused: its OTs are never reused.
        """
        tensors, blobs = parts
        st = self._ot(sess)
        p = self._awaiting(st, "sel", "relu3")
        st["pending"] = None
        shape = self._shape(meta)
        w, _ = self._width(meta)
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
        sess["t"][self._dst(meta)] = np.array(out, dtype=object).reshape(shape)
        return {}, []

    def _op_result(self, sess, meta, tensors):
        result = self._get(sess, meta.get("src")).reshape(-1)
        sess["t"].clear()
        sess["q"].clear()
        sess.pop("ot", None)
        sess["result"] = result
        sess["done"].set()
        return {}, []

    def _op_fetch(self, sid, meta, tensors):
        """The user's request: check the secret, wait (bounded) for the result, hand it over once.

        A missing or wrong secret is refused before anything else and leaves the session untouched.
        """
        secret = meta.get("secret")
        if not isinstance(secret, str) or len(secret) != 2 * SECRET_BYTES:
            raise ProtocolError(f"fetch needs the session's secret ({SECRET_BYTES} bytes, hex)")
        try:
            digest = hashlib.sha256(bytes.fromhex(secret)).digest()
        except ValueError:
            raise ProtocolError("fetch: the secret is not hexadecimal") from None
        timeout = meta.get("timeout", 60.0)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout >= 0:
            raise ProtocolError(f"fetch: 'timeout' must be a number of seconds, got {_short(timeout)}")
        with self._lock:
            sess = self._live(sid)
            if not hmac.compare_digest(digest, sess["verifier"]):
                raise ProtocolError("fetch: wrong secret for this session")
        if not sess["done"].wait(min(float(timeout), 600.0)):
            raise ProtocolError("the session has no result yet (timed out)")
        with self._lock:
            if self.sessions.get(sid) is not sess:
                raise ProtocolError("session expired or unknown (its result was already fetched)")
            del self.sessions[sid]
        return {"v": wire.hexs(sess["result"])}, []


def _short(x) -> str:
    """``repr(x)`` cut to 80 characters: errors echo what a peer sent, one short line."""
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def new_session_id() -> str:
    """A fresh, unguessable session id (128 random bits, hex)."""
    return secrets.token_hex(16)


def new_secret() -> tuple[str, str]:
    """The user's fetch secret and its verifier: ``(secret hex, SHA-256(secret) hex)``."""
    secret = secrets.token_bytes(SECRET_BYTES)
    return secret.hex(), hashlib.sha256(secret).hexdigest()


def fast_request(ch: Channel, pk, meta: dict, tensors=(), blobs=()) -> tuple[dict, list, list]:
    """One round trip of the fast protocol to S2, for S1 and the user alike.

    Returns:
        ``(meta, tensors, blobs)`` of S2's reply.

    Raises:
        ChannelError: S2 refused (``peer_error``), answered with another message type or a
            malformed body (``bad_reply``), or the channel broke.
    """
    msg_id = ch.send(FAST_REQUEST, wire.pack_message(meta, tensors, blobs))
    ch.stats.rounds += 1
    rtype, _, data = ch.recv(expect_id=msg_id)
    if rtype == ERROR_REPLY:
        raise ChannelError("peer_error", f"S2 refused {meta.get('op')}: " + data.decode(errors="replace"))
    if rtype != FAST_REPLY:
        raise ChannelError("unexpected_type", f"got {rtype}, expected {FAST_REPLY}")
    try:
        return wire.unpack_message_parts(data, pk)
    except ValueError as exc:
        raise ChannelError("bad_reply", str(exc)) from None


def _user_call(ch: Channel, pk, meta: dict) -> dict:
    return fast_request(ch, pk, meta)[0]


def open_session(ch: Channel, pk) -> tuple[str, str]:
    """The user opens a session at S2 over ``ch``.

    Args:
        ch: the user's channel to S2.
        pk: S2's public key.

    Returns:
        ``(sid, secret)``: the id S2 drew (the user gives it to S1) and the secret that
        alone fetches the result (the user keeps it).

    Raises:
        ChannelError: S2 refused (``peer_error``, e.g. too many sessions) or the channel broke.
    """
    secret, verifier = new_secret()
    sid = _user_call(ch, pk, {"op": "open", "verifier": verifier}).get("sid")
    if not isinstance(sid, str) or not 8 <= len(sid) <= 64:
        raise ChannelError("bad_reply", "open: S2 returned no session id")
    return sid, secret


def fetch_result(ch: Channel, pk, sid: str, secret: str, timeout_s: float = 60.0) -> np.ndarray:
    """The user fetches ``logits + r`` (flat object array of ints) from S2 with the session's secret.

    Raises:
        ChannelError: S2 refused (wrong secret, unknown or expired session, no result in time).
    """
    reply = _user_call(ch, pk, {"op": "fetch", "sid": sid, "secret": secret, "timeout": float(timeout_s)})
    try:
        return np.array(wire.unhex(reply["v"]), dtype=object)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChannelError("bad_reply", f"fetch: {exc}") from None
