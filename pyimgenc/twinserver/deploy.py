"""Running S1 and S2 as separate processes over TCP, and the user's client.

Files written by :func:`setup` (``pyimgenc twinserver setup --out DIR``):

* ``s2.key`` — S2's Paillier secret key (S2 only);
* ``s2.share`` — S2's model share ``Wb, bb`` (S2 only);
* ``s1.share`` — S1's share: masks ``Wa, ba``, ``E(Wb)``, the public key and plan (S1 only);
* ``public.json`` — public key and plan (the user);
* ``ca.crt`` — the private CA's certificate (everyone: it authenticates the servers);
* ``s1.crt``, ``s1-tls.key`` — S1's TLS certificate and key (S1 only; S1 also shows it to S2);
* ``s2.crt``, ``s2-tls.key`` — S2's TLS certificate and key (S2 only).

Secret files are written owner-only (0600).  Every link runs TLS (:mod:`.tls`); S2 runs
compute-server operations only for the peer that presents S1's certificate.  Plaintext
TCP only with ``plaintext=True`` (the CLI's ``--insecure-plaintext``), for loopback tests.

Topology: the user opens a session at S2 (``open``: S2 draws the session id and keeps
``SHA-256(secret)`` of the user's random secret), then sends ``E(image)`` and the
session id to S1; S1 runs the offline and online phases with S2 over its own connection
and returns its half (the masks) to the user; the user fetches ``logits + masks`` from
S2 with the session id and the secret (``fetch``), which S1 never sees.
Neither server ever holds both halves.  Each connection is served on its own thread;
a peer that sends garbage gets an error reply, a peer that vanishes or stalls (timeout)
only ends its own connection — the server keeps serving.
"""
from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from ..paillier import PublicKey, SecretKey, keygen
from ..pki import read_secret
from . import tls, wire
from .messages import CLASSIFY_REPLY, CLASSIFY_REQUEST, ERROR_REPLY
from .channel import Channel, ChannelError, TcpChannel
from ..models.preprocess import check_images
from .classifier import load_integer_model
from .owner import DataOwner, S1Share, S2Share, User
from .s1 import ComputeServer
from .s2 import TwinKeyServer, fetch_result, open_session


MAX_CONNECTIONS = 64      # concurrent connections a server accepts; more are closed at once
IDLE_TIMEOUT_S = 900.0    # S2 drops a connection silent this long (a dead or parked peer)

def setup(out: str | Path, key_bits: int = 2048, model: str = "mnist-icnn", insecure: bool = False,
          s1_names=tls.DEFAULT_NAMES, s2_names=tls.DEFAULT_NAMES) -> dict:
    """Make S2's key, split the model (the data owner's step), issue the TLS certificates
    (``s1_names``/``s2_names``: the host names or addresses the servers are dialled at)
    and write the files above."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    integer = load_integer_model(model)
    pk, sk = keygen(key_bits, insecure=insecure)
    s1, s2 = DataOwner(integer).outsource(pk)
    tls.write_secret(out / "s2.key", sk.to_bytes())
    tls.write_secret(out / "s2.share", s2.to_bytes())
    tls.write_secret(out / "s1.share", s1.to_bytes())
    (out / "public.json").write_text(json.dumps({"model": model, "plan": s1.plan,
                                                 "public_key": base64.b64encode(pk.to_bytes()).decode()}))
    tls.make_pki(out, s1_names, s2_names)
    return {"dir": str(out), "key_bits": key_bits, "model": model}


def _serve_forever(host: str, port: int, handle_conn, ready: threading.Event | None = None,
                   stop: threading.Event | None = None, timeout_s: float = 300.0, ssl_context=None) -> None:
    srv = socket.create_server((host, port))
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    srv.settimeout(0.5)
    if ready is not None:
        ready.port = srv.getsockname()[1]
        ready.set()
    try:
        while stop is None or not stop.is_set():
            try:
                sock, _ = srv.accept()
            except TimeoutError:
                continue
            if not slots.acquire(blocking=False):     # at most MAX_CONNECTIONS at once: refuse the rest
                sock.close()
                continue
            threading.Thread(target=_guarded, args=(handle_conn, sock, slots, ssl_context, timeout_s),
                             daemon=True).start()
    finally:
        srv.close()


def _guarded(fn, sock, slots: threading.BoundedSemaphore | None = None, ssl_context=None,
             timeout_s: float = 300.0) -> None:
    ch = None
    try:
        ch = (TcpChannel.accept_tls(sock, ssl_context, timeout_s=timeout_s) if ssl_context is not None
              else TcpChannel(sock, timeout_s=timeout_s))   # a failed handshake ends only this connection
        fn(ch)
    except ChannelError:
        pass
    finally:
        if ch is not None:
            ch.close()
        else:
            sock.close()
        if slots is not None:
            slots.release()


def serve_s2(key_dir: str | Path, host: str = "127.0.0.1", port: int = 7002, ready=None, stop=None,
             timeout_s: float = 300.0, idle_timeout_s: float = IDLE_TIMEOUT_S, plaintext: bool = False,
             **limits) -> None:
    """Serve S2 from the files of :func:`setup`; ``limits`` go to :class:`TwinKeyServer`
    (``session_ttl_s``, ``open_ttl_s``, ``max_session_s``, ``max_sessions``,
    ``max_sessions_per_peer``, ``max_pool``).  The literal SMP/SACT message types are off;
    a connection silent for ``idle_timeout_s`` is closed.  Over TLS (the default) only the
    peer with S1's certificate may run compute-server operations; ``plaintext=True``
    (loopback tests only) serves plain TCP and trusts every peer as before."""
    d = Path(key_dir)
    sk = SecretKey.from_bytes(read_secret(d / "s2.key"))
    server = TwinKeyServer(sk, S2Share.from_bytes(read_secret(d / "s2.share")), **limits)
    server.idle_timeout_s = idle_timeout_s
    server.require_s1_cert = not plaintext
    ctx = None if plaintext else tls.server_context(d, "s2")
    _serve_forever(host, port, server.serve, ready, stop, timeout_s, ctx)


class S1Service:
    """S1 as a service: one connection to S2, classification requests from users."""

    def __init__(self, share: S1Share, s2_addr: tuple[str, int], timeout_s: float = 300.0, ssl_context=None):
        self.s1 = ComputeServer(share)
        self.addr, self.timeout_s, self.ssl_context = s2_addr, timeout_s, ssl_context
        self._lock = threading.Lock()
        self._s2: Channel | None = None

    def _channel(self) -> Channel:
        """The connection to S2, checked before use: one S2 closed while S1 was idle is replaced now."""
        if self._s2 is not None and (self._s2._broken is not None or not self._s2.alive()):
            self._s2.close()
            self._s2 = None
        if self._s2 is None:
            self._s2 = TcpChannel.connect(*self.addr, ssl_context=self.ssl_context, timeout_s=self.timeout_s)
        return self._s2

    def classify(self, sid: str, ct, n_images: int) -> np.ndarray:
        with self._lock:           # one classification at a time over the S2 connection
            ch = self._channel()
            try:
                tape = self.s1.offline(ch, n_images, sid)
                return self.s1.online(ch, tape, ct)
            except ChannelError:
                self._s2 = None    # reconnect next time
                raise

    def handle(self, ch: Channel) -> None:
        pk = self.s1.pk
        while True:
            mtype, msg_id, body = ch.recv(idle_timeout_s=None)
            try:
                if mtype != CLASSIFY_REQUEST:
                    raise ValueError(f"unknown request type {mtype}")
                meta, tensors = wire.unpack_message(body, pk)
                sid, n = meta.get("sid"), meta.get("n")
                if not isinstance(sid, str) or not 8 <= len(sid) <= 64 or not isinstance(n, int) or not 1 <= n <= 64:
                    raise ValueError("bad session id or image count")
                if len(tensors) != 1:
                    raise ValueError("expected one encrypted image tensor")
                mask = self.classify(sid, tensors[0], n)
                reply = (CLASSIFY_REPLY, wire.pack_message({"r": wire.hexs(mask.ravel()), "shape": list(mask.shape)}))
            except Exception as exc:   # a bad request must not end the service
                reply = (ERROR_REPLY, f"{type(exc).__name__}: {exc}".encode())
            ch.send(reply[0], reply[1], msg_id=msg_id)


def serve_s1(share_path: str | Path, s2_host: str, s2_port: int, host: str = "127.0.0.1", port: int = 7001,
             ready=None, stop=None, timeout_s: float = 300.0, plaintext: bool = False) -> None:
    """Serve S1 (its TLS files beside ``share_path``); S1 dials S2 over TLS with its own certificate."""
    d = Path(share_path).parent
    server_ctx = None if plaintext else tls.server_context(d, "s1")
    client_ctx = None if plaintext else tls.client_context(d / tls.FILES["ca"], d / tls.FILES["s1_cert"],
                                                            d / tls.FILES["s1_key"])
    service = S1Service(S1Share.from_bytes(read_secret(share_path)), (s2_host, s2_port), timeout_s, client_ctx)
    _serve_forever(host, port, service.handle, ready, stop, timeout_s, server_ctx)


def classify_remote(public_path: str | Path, images, s1: tuple[str, int], s2: tuple[str, int],
                    timeout_s: float = 300.0, plaintext: bool = False,
                    step: Callable[[str], None] | None = None) -> np.ndarray:
    """The user's client: logits (N, 10) from the two servers; neither server sees them.

    Both servers are checked against ``ca.crt`` beside ``public_path`` (TLS), unless
    ``plaintext=True`` (loopback tests only).  ``step(name)`` is called as each of the four
    steps begins (``open``, ``encrypt``, ``classify``, ``fetch``): a progress display.
    """
    step = step or (lambda name: None)
    ctx = None if plaintext else tls.client_context(Path(public_path).parent / tls.FILES["ca"])
    doc = json.loads(Path(public_path).read_text())
    pk = PublicKey.from_bytes(base64.b64decode(doc["public_key"]))
    images = check_images(images)
    integer = load_integer_model(doc["model"])          # public preprocessing (encode) only
    user = User(pk, doc["plan"], integer.encode_images)
    step("open")
    with TcpChannel.connect(*s2, ssl_context=ctx, timeout_s=timeout_s) as c2:
        sid, secret = open_session(c2, pk)               # S2 draws the sid; the secret stays with the user
    step("encrypt")
    ct = user.encrypt(images)
    step("classify")
    with TcpChannel.connect(*s1, ssl_context=ctx, timeout_s=timeout_s) as c1:
        body = c1.request(CLASSIFY_REQUEST, wire.pack_message({"sid": sid, "n": len(images)}, [ct]), CLASSIFY_REPLY)
    meta, _ = wire.unpack_message(body, pk)
    mask = np.array(wire.unhex(meta["r"]), dtype=object).reshape(meta["shape"])
    step("fetch")
    with TcpChannel.connect(*s2, ssl_context=ctx, timeout_s=timeout_s) as c2:
        blinded = fetch_result(c2, pk, sid, secret, timeout_s)
    if blinded.size != mask.size:
        raise ChannelError("bad_reply", f"S2 returned {blinded.size} values for {mask.size} logits")
    return User.recover(blinded.reshape(mask.shape), mask)

