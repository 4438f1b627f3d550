"""S2, the key server of the fast protocol.

S2 keeps, per session, named tensors of **blinded** plaintexts ``z = x + r`` (the mask
``r`` is S1's) and answers the operations of :data:`.messages.OPS` (the table of what
each receives and returns is in :mod:`.messages`).  This module holds sessions, limits,
dispatch and the operations of no protocol of their own (open, prepare, load, result,
fetch); each protocol's S2 half sits beside its S1 half: :mod:`.linear` (qterm, lin1,
lin2), :mod:`.randot` (ot1, ot2), :mod:`.compare` (cmp1, cmp2), :mod:`.sact` (relu2, relu3).

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

import functools
import hashlib
import hmac
import itertools
import secrets
import threading
import time

import numpy as np

from ..paillier import EncryptedTensor, ObfuscatorPool
from . import compare, linear, randot, sact, wire
from .channel import Channel, ChannelError
from .graph import slots_for
from .messages import FAST_REPLY, FAST_REQUEST, OPS, ProtocolError, call
from .owner import S2Share
from .smp import KeyServer

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
MAX_OT = randot.MAX_OT


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
        self._clock = clock
        self._lock = threading.Lock()
        self.pool = ObfuscatorPool(self.pk, max_rows=self.max_pool)
        self._peer = threading.local()
        self._conn_ids = itertools.count(1)
        self.stats = dict(encryptions=0, pool_misses=0, decryptions=0)
        mine = dict(prepare=self._op_prepare, load=self._op_load, result=self._op_result)
        protocols = {**linear.S2_OPS, **randot.S2_OPS, **compare.S2_OPS, **sact.S2_OPS}
        self.ops = {**mine, **{k: functools.partial(fn, self) for k, fn in protocols.items()}}
        assert set(self.ops) | {"open", "fetch"} == set(OPS), "every operation of messages.OPS has a handler"

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
        if op == "open":
            return FAST_REPLY, wire.pack_message(*self._open(meta))
        spec = OPS.get(op) if isinstance(op, str) else None
        if spec is None:
            raise ProtocolError(f"unknown operation {short(op)}")
        if blobs and not spec.blobs:
            raise ProtocolError(f"{op} takes no raw blobs")
        sid = meta.get("sid")
        if not isinstance(sid, str) or not 8 <= len(sid) <= 64:
            raise ProtocolError("missing or malformed session id")
        if op == "fetch":
            return FAST_REPLY, wire.pack_message(*self._fetch(sid, meta))
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
                reply = self.ops[op](sess, meta, tensors, blobs)
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

    def decrypt(self, ct: EncryptedTensor) -> list[int]:
        """Decrypt (counted): every value S2 decrypts is blinded by a mask of S1."""
        self.stats["decryptions"] += ct.size
        return self.sk.raw_decrypt(ct)

    def encrypt(self, values) -> EncryptedTensor:
        """``rho * (1 + m*n) mod n**2`` with ``rho = hs**r`` from the precomputed pool (fresh if it runs dry)."""
        k = len(values)
        late = self.pool.drawn_late
        obf = self.pool.take(k)
        self.stats["encryptions"] += k
        self.stats["pool_misses"] += self.pool.drawn_late - late
        if k == 0:
            return EncryptedTensor(self.pk, np.zeros((0, self.pk.ct_limbs), dtype=np.uint64))
        return EncryptedTensor(self.pk, self.pk.raw_add_plain(obf, values))

    def plan_layout(self, n: int) -> compare.Layout:
        """The OT counts the public plan needs for ``n`` images (cached)."""
        plan = self._plans.get(n)
        if plan is None:
            plan = self._plans[n] = compare.plan_layout(self.share.plan, {k: v.shape[0] for k, v in
                                                                          self.share.wb.items()}, n)
        return plan

    @staticmethod
    def get(sess, name) -> np.ndarray:
        t = sess["t"].get(name) if isinstance(name, str) else None
        if t is None:
            raise ProtocolError(f"no tensor named {short(name)} in this session")
        return t

    @staticmethod
    def int_param(meta, key, lo=0, hi=1 << 30) -> int:
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ProtocolError(f"parameter {short(key)} must be an integer in [{lo}, {hi}], got {short(v)}")
        return v

    def shape(self, meta, key="shape") -> tuple:
        s = meta.get(key)
        if not isinstance(s, list) or not 1 <= len(s) <= 4 or not all(isinstance(d, int) and 0 < d <= 1 << 16 for d in s):
            raise ProtocolError(f"bad shape {short(s)}")
        if int(np.prod(s)) > MAX_ELEMENTS:
            raise ProtocolError(f"shape {s} is too large")
        return tuple(s)

    def width(self, meta) -> tuple[int, int]:
        w = self.int_param(meta, "width", 8, self.pk.bits - 2)
        return w, slots_for(w, self.pk.bits)

    def _local(self, sess, ins) -> None:
        if not isinstance(ins, list) or not ins:
            raise ProtocolError(f"bad local instruction {short(ins)}")
        t, kind = sess["t"], ins[0]
        try:
            if kind == "slice":
                _, src, dst, axis, start, stop, step = ins
                x = self.get(sess, src)
                sl = [slice(None)] * x.ndim
                sl[axis] = slice(start, stop, step)
                t[dst] = x[tuple(sl)]
            elif kind == "concat":
                _, srcs, dst, axis, sh = ins
                if (not isinstance(srcs, list) or not isinstance(sh, list) or len(sh) != len(srcs)
                        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SHIFT
                                   for v in sh)):
                    raise ProtocolError(f"concat: one shift per part, each an integer in [0, {MAX_SHIFT}] bits")
                parts = [self.get(sess, s) for s in srcs]
                if sum(p.size for p in parts) > MAX_ELEMENTS:
                    raise ProtocolError(f"concat: more than {MAX_ELEMENTS} elements")
                out = np.concatenate([p * (1 << s) if s else p for p, s in zip(parts, sh)], axis=axis)
                if any(sh) and out.size and int(np.max(np.abs(out))).bit_length() > self.max_value_bits:
                    raise ProtocolError(f"concat: values over {self.max_value_bits} bits (shifts too large)")
                t[dst] = out
            elif kind in ("add", "sub"):
                _, a, b, dst = ins
                x, y = self.get(sess, a), self.get(sess, b)
                if x.shape != y.shape:
                    raise ProtocolError(f"{kind}: shapes {x.shape} and {y.shape} differ")
                t[dst] = x + y if kind == "add" else x - y
            elif kind == "free":
                for name in ins[1]:
                    t.pop(name, None)
            else:
                raise ProtocolError(f"unknown local instruction {short(kind)}")
        except (TypeError, IndexError, ValueError) as exc:
            if isinstance(exc, ProtocolError):
                raise
            raise ProtocolError(f"bad local instruction {short(ins)}: {exc}") from None

    # ------------------------------------------------------------------ offline
    def _op_prepare(self, sess, meta, tensors, blobs):
        """Top the pool of encryption randomness up to ``count`` rows (at most ``max_pool`` in all)."""
        return {"pool": self.pool.fill(self.int_param(meta, "count", 0, MAX_PREPARE))}, []

    # ------------------------------------------------------------------ online
    def _store_packed(self, sess, meta, ct: EncryptedTensor) -> None:
        dst = self.dst(meta)
        shape = self.shape(meta)
        w, s = self.width(meta)
        count = int(np.prod(shape))
        if ct.size != -(-count // s):
            raise ProtocolError(f"expected {-(-count // s)} packed ciphertexts for {shape}, got {ct.size}")
        vals = np.array(wire.unpack(self.decrypt(ct.reshape(-1)), w, s, count), dtype=object)
        sess["t"][dst] = vals.reshape(shape)

    def _op_load(self, sess, meta, tensors, blobs):
        if len(tensors) != 1:
            raise ProtocolError("load needs one tensor")
        self._store_packed(sess, meta, tensors[0])
        return {}, []

    @staticmethod
    def dst(meta) -> str:
        dst = meta.get("dst")
        if not isinstance(dst, str):
            raise ProtocolError("missing destination name")
        return dst

    def _op_result(self, sess, meta, tensors, blobs):
        result = self.get(sess, meta.get("src")).reshape(-1)
        sess["t"].clear()
        sess["q"].clear()
        sess.pop("ot", None)
        sess["result"] = result
        sess["done"].set()
        return {}, []

    def _fetch(self, sid, meta):
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
            raise ProtocolError(f"fetch: 'timeout' must be a number of seconds, got {short(timeout)}")
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


def short(x) -> str:
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


def _user_call(ch: Channel, pk, meta: dict) -> dict:
    return call(ch, pk, meta)[0]


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
