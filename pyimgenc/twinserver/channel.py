"""Channels between the System A parties: framed, versioned, length-checked, counted.

Protocols are functions over ciphertexts plus a :class:`Channel`: only
the channel moves bytes, so tests run S1 and S2 in one process
(:func:`in_process_pair`) and the servers run as processes over TCP
(:class:`TcpChannel`) with the same code, and every byte and round is counted.

Frame (all integers big-endian)::

    4  magic   b"PTS1"
    1  version 1
    1  type    message type (the protocol's own numbering, 1..255)
    4  id      request id (the reply carries the request's id)
    4  length  body length, at most ``max_body``
    n  body

A frame with the wrong magic, version, type or id, a length over the limit, or a
connection that ends inside a frame raises :class:`ChannelError` with a reason
(``bad_magic``, ``bad_version``, ``unexpected_type``, ``unexpected_id``,
``oversized``, ``closed``, ``timeout``); the channel is then unusable and the
caller drops the connection — a server keeps serving other peers.
"""
from __future__ import annotations

import queue
import select
import socket
import ssl
import struct
import threading
from dataclasses import dataclass

from .messages import ERROR_REPLY

MAGIC = b"PTS1"
VERSION = 1
_HEAD = struct.Struct(">4sBBII")
DEFAULT_MAX_BODY = 1 << 30      # 1 GiB: a full layer of 2048-bit ciphertexts fits with room
DEFAULT_TIMEOUT_S = 300.0


class ChannelError(ConnectionError):
    """A broken or hostile peer; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Stats:
    """Bytes and frames each way, and rounds (request/reply pairs started by this side)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    rounds: int = 0


class Channel:
    """One end of a bidirectional, ordered, framed connection.

    ``peer`` names the other end for a server's per-peer limits: the remote address of a
    :class:`TcpChannel`, ``None`` in process (each such connection then counts as its own peer).
    """

    def __init__(self, max_body: int = DEFAULT_MAX_BODY, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.max_body, self.timeout_s = max_body, timeout_s
        self.stats = Stats()
        self._next_id = 1
        self._broken: ChannelError | None = None
        self.peer: str | None = None

    # transport hooks --------------------------------------------------------
    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _read(self, n: int) -> bytes:
        raise NotImplementedError

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    # framing ------------------------------------------------------------------
    def send(self, mtype: int, body: bytes, msg_id: int | None = None) -> int:
        """Send one frame; returns its id (a fresh one unless replying to ``msg_id``)."""
        if not 1 <= mtype <= 255:
            raise ValueError(f"message type must be 1..255, got {mtype}")
        body = bytes(body)
        if len(body) > self.max_body:
            raise ValueError(f"body of {len(body)} bytes exceeds the channel limit {self.max_body}")
        self._check_usable()
        if msg_id is None:
            msg_id, self._next_id = self._next_id, self._next_id + 1
        frame = _HEAD.pack(MAGIC, VERSION, mtype, msg_id, len(body)) + body
        self._write(frame)
        self.stats.bytes_sent += len(frame)
        self.stats.frames_sent += 1
        return msg_id

    def recv(self, expect_type: int | None = None, expect_id: int | None = None, *,
             idle_timeout_s: float | None | str = "default") -> tuple[int, int, bytes]:
        """Receive one frame: ``(type, id, body)``, checked against what is expected.

        ``idle_timeout_s`` bounds the wait for the *first* byte (``None``: forever — a
        server waiting for its next request); once a frame has started, the rest must
        arrive within ``timeout_s`` or the channel is broken (a stalled peer).  An idle
        timeout raises ``ChannelError("idle")`` and leaves the channel usable.
        """
        self._check_usable()
        if idle_timeout_s != "default":
            self._wait_data(idle_timeout_s)
        try:
            magic, ver, mtype, msg_id, n = _HEAD.unpack(self._read(_HEAD.size))
            if magic != MAGIC:
                raise ChannelError("bad_magic", repr(magic))
            if ver != VERSION:
                raise ChannelError("bad_version", str(ver))
            if n > self.max_body:
                raise ChannelError("oversized", f"{n} bytes > {self.max_body}")
            if expect_type is not None and mtype != expect_type:
                raise ChannelError("unexpected_type", f"got {mtype}, expected {expect_type}")
            if expect_id is not None and msg_id != expect_id:
                raise ChannelError("unexpected_id", f"got {msg_id}, expected {expect_id}")
            body = self._read(n)
        except ChannelError as exc:
            self._broken = exc
            raise
        self.stats.bytes_received += _HEAD.size + n
        self.stats.frames_received += 1
        return mtype, msg_id, body

    def alive(self) -> bool:
        """False once the channel is known to be broken."""
        return self._broken is None

    def _wait_data(self, timeout: float | None) -> None:
        """Block until at least one byte can be read (``ChannelError('idle')`` after ``timeout``)."""

    def request(self, mtype: int, body: bytes, reply_type: int, what: str = "") -> bytes:
        """One round: send a request, wait for its reply, return the reply's body.

        Every request/reply round trip of System A goes through here, so rounds and bytes
        are counted for every caller.

        Raises:
            ChannelError: ``peer_error`` when the peer answered with an error frame (its
                text, after ``what``; the channel stays usable), ``unexpected_type`` for
                another reply type, or any framing error of :meth:`recv`.
        """
        msg_id = self.send(mtype, body)
        self.stats.rounds += 1
        rtype, _, data = self.recv(expect_id=msg_id)
        if rtype == ERROR_REPLY:
            text = data.decode(errors="replace")
            raise ChannelError("peer_error", f"{what}: {text}" if what else text)
        if rtype != reply_type:
            raise ChannelError("unexpected_type", f"got {rtype}, expected {reply_type}")
        return data

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise ChannelError("closed", f"channel unusable after {self._broken.reason}")


class _QueueChannel(Channel):
    def __init__(self, inbox: queue.Queue, outbox: queue.Queue, **kw):
        super().__init__(**kw)
        self._in, self._out, self._buf = inbox, outbox, b""

    def _write(self, data: bytes) -> None:
        self._out.put(data)

    def _wait_data(self, timeout: float | None) -> None:
        if self._buf:
            return
        try:
            chunk = self._in.get(timeout=timeout)
        except queue.Empty:
            raise ChannelError("idle", f"no request within {timeout:g} s") from None
        if chunk is None:
            self._broken = ChannelError("closed", "peer closed the channel")
            raise self._broken
        self._buf += chunk

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self._in.get(timeout=self.timeout_s)
            except queue.Empty:
                raise ChannelError("timeout", f"no data within {self.timeout_s:g} s") from None
            if chunk is None:
                raise ChannelError("closed", "peer closed the channel")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def close(self) -> None:
        self._out.put(None)


def in_process_pair(**kw) -> tuple[Channel, Channel]:
    """Two connected channel ends for running both parties in one process (threads)."""
    a, b = queue.Queue(), queue.Queue()
    return _QueueChannel(a, b, **kw), _QueueChannel(b, a, **kw)


class TcpChannel(Channel):
    """A channel over a connected TCP socket."""

    def __init__(self, sock: socket.socket, **kw):
        super().__init__(**kw)
        self.sock = sock
        sock.settimeout(self.timeout_s)
        try:
            self.peer = str(sock.getpeername()[0])
        except (OSError, IndexError, TypeError):
            self.peer = None
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.role = _peer_role(sock) if self.tls else None     # "s1": the peer showed S1's certificate
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, host: str, port: int, ssl_context: ssl.SSLContext | None = None, **kw) -> "TcpChannel":
        """Connect to ``host:port``; with ``ssl_context``, over TLS checking the server's certificate."""
        try:
            sock = socket.create_connection((host, port), timeout=kw.get("timeout_s", DEFAULT_TIMEOUT_S))
        except OSError as exc:
            raise ChannelError("unreachable", f"{host}:{port}: {exc}") from None
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise ChannelError("tls", f"{host}:{port}: {getattr(exc, 'verify_message', None) or exc}") from None
        return cls(sock, **kw)

    def alive(self) -> bool:
        """False when the peer has closed the connection (checked without blocking)."""
        if self._broken is not None:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        if self.tls:                 # a server sends nothing unasked: readable while idle means closed
            return False
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return True
        except OSError:
            return False

    @classmethod
    def accept_tls(cls, sock: socket.socket, ssl_context: ssl.SSLContext, **kw) -> "TcpChannel":
        """The server side of a TLS connection (handshake within the channel's timeout)."""
        sock.settimeout(kw.get("timeout_s", DEFAULT_TIMEOUT_S))
        try:
            tls_sock = ssl_context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise ChannelError("tls", f"handshake failed: {getattr(exc, 'verify_message', None) or exc}") from None
        return cls(tls_sock, **kw)

    def _write(self, data: bytes) -> None:
        try:
            with self._lock:
                self.sock.sendall(data)
        except OSError as exc:
            self._broken = ChannelError("closed", str(exc))
            raise self._broken from None

    def _wait_data(self, timeout: float | None) -> None:
        if self.tls:                     # no MSG_PEEK under TLS: wait for bytes; a close shows in _read
            if self.sock.pending():
                return
            try:
                ready, _, _ = select.select([self.sock], [], [], timeout)
            except (OSError, ValueError) as exc:
                self._broken = ChannelError("closed", str(exc))
                raise self._broken from None
            if not ready:
                raise ChannelError("idle", f"no request within {timeout:g} s")
            return
        try:
            self.sock.settimeout(timeout)
            data = self.sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            raise ChannelError("idle", f"no request within {timeout:g} s") from None
        except OSError as exc:
            self._broken = ChannelError("closed", str(exc))
            raise self._broken from None
        finally:
            try:
                self.sock.settimeout(self.timeout_s)
            except OSError:
                pass
        if not data:
            self._broken = ChannelError("closed", "peer closed the connection")
            raise self._broken

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except TimeoutError:
                raise ChannelError("timeout", f"no data within {self.timeout_s:g} s") from None
            except (OSError, ssl.SSLError) as exc:
                raise ChannelError("closed", str(exc)) from None
            if not chunk:
                raise ChannelError("closed", f"peer closed the connection after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _peer_role(sock) -> str | None:
    from .tls import peer_role          # cryptography is loaded only where TLS is used
    return peer_role(sock)
