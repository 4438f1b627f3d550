"""The verifier as an HTTP service, and the terminal's client for it.

Endpoints (JSON answers, ``Content-Type: application/json``):

==========================  ===========================================================
``GET  /v1/health``         ``{"ok": true}``
``GET  /v1/public-key``     ``{"x25519": hex}``: the key terminals seal to
``POST /v1/verify``         body: one envelope (``application/octet-stream``).
                            200 ``{"approved": true, "record": {...}}`` (the deduction
                            record), or 403 ``{"approved": false, "reason": r, "detail": d}``
                            with the verifier's reason; 413 ``oversized`` (refused before
                            the body is read), 411 ``length_required``, 400 ``bad_request``
``POST /v1/devices``        admin (``Authorization: Bearer <token>``, only when the server
                            has an admin token): ``{"device_id", "ed25519_public": hex}``
==========================  ===========================================================

Requests run on threads (:class:`http.server.ThreadingHTTPServer`); the counters
are safe under concurrency because the verifier advances them in one SQLite
transaction.  A whole body must arrive within ``timeout_s`` (a deadline, not a
per-read timeout: a client trickling bytes gets 408); at most ``max_concurrent``
verifications run at once (503 ``busy`` beyond); an exception inside a handler
answers 500 ``internal_error`` and the server keeps serving.
"""
from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from .envelope import MAX_ENVELOPE_BYTES
from .verifier import VerificationError, Verifier

log = logging.getLogger("pyimgenc.verifier")


def _handler(verifier: Verifier, max_body: int, admin_token: str | None, timeout_s: float,
             max_concurrent: int):
    slots = threading.BoundedSemaphore(max_concurrent)

    class Handler(BaseHTTPRequestHandler):
        server_version = "pyimgenc-verifier/1"
        timeout = timeout_s

        def log_message(self, fmt, *args):  # route to logging instead of stderr
            log.info("%s " + fmt, self.address_string(), *args)

        def _send(self, code: int, obj: dict) -> None:
            body = json.dumps(obj, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _deny(self, code: int, reason: str, detail: str = "") -> None:
            self._send(code, {"approved": False, "reason": reason, "detail": detail})

        def _body(self) -> bytes | None:
            raw = self.headers.get("Content-Length")
            if raw is None:
                self._deny(411, "length_required", "Content-Length is required")
                return None
            try:
                n = int(raw)
                if n < 0:
                    raise ValueError
            except ValueError:
                self._deny(400, "bad_request", f"bad Content-Length {raw!r}")
                return None
            if n > max_body:
                self.close_connection = True
                self._deny(413, "oversized", f"{n} bytes > {max_body}")
                return None
            deadline = time.monotonic() + timeout_s  # for the whole body, not per read
            data = bytearray()
            try:
                while len(data) < n:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    self.connection.settimeout(left)
                    chunk = self.rfile.read1(min(n - len(data), 1 << 20))
                    if not chunk:
                        break
                    data += chunk
            except TimeoutError:
                self.close_connection = True
                self._deny(408, "timeout", f"body not received within {timeout_s:g} s")
                return None
            data = bytes(data)
            if len(data) != n:
                self._deny(400, "truncated", f"body ended after {len(data)} of {n} bytes")
                return None
            return data

        def do_GET(self):
            try:
                if self.path == "/v1/health":
                    self._send(200, {"ok": True})
                elif self.path == "/v1/public-key":
                    raw = verifier.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                    self._send(200, {"x25519": raw.hex()})
                else:
                    self._deny(404, "not_found", self.path)
            except Exception as exc:  # never take the server down
                log.exception("GET %s failed", self.path)
                self._deny(500, "internal_error", type(exc).__name__)

        def do_POST(self):
            try:
                if self.path == "/v1/verify":
                    if not slots.acquire(blocking=False):  # bounded memory and threads under load
                        self.close_connection = True
                        self._deny(503, "busy", f"{max_concurrent} requests in progress; retry")
                        return
                    try:
                        data = self._body()
                        if data is None:
                            return
                        try:
                            out = verifier.open(data)
                        except VerificationError as exc:
                            self._deny(403, exc.reason, str(exc))
                            return
                        self._send(200, {"approved": True, "record": out.record})
                    finally:
                        slots.release()
                elif self.path == "/v1/devices":
                    self._register()
                else:
                    self._deny(404, "not_found", self.path)
            except Exception as exc:
                log.exception("POST %s failed", self.path)
                self._deny(500, "internal_error", type(exc).__name__)

        def _register(self):
            token = self.headers.get("Authorization", "")
            if admin_token is None or not hmac.compare_digest(token.encode(), f"Bearer {admin_token}".encode()):
                self._deny(401, "unauthorized", "device registration needs the admin token")
                return
            data = self._body()
            if data is None:
                return
            try:
                req = json.loads(data)
                key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(req["ed25519_public"]))
                verifier.register_device(str(req["device_id"]), key)
            except (ValueError, KeyError, TypeError) as exc:
                self._deny(400, "bad_request", str(exc))
                return
            self._send(200, {"registered": req["device_id"]})

    return Handler


def make_server(verifier: Verifier, host: str = "127.0.0.1", port: int = 8080, *,
                max_body: int = MAX_ENVELOPE_BYTES, admin_token: str | None = None,
                timeout_s: float = 30.0, max_concurrent: int = 8) -> ThreadingHTTPServer:
    """An HTTP server for ``verifier`` (port 0 picks a free one: ``server.server_address``).

    ``timeout_s`` bounds the whole body's arrival; at most ``max_concurrent`` verifications
    run at once (more get 503 ``busy``), which bounds memory to about
    ``max_concurrent * max_body``.
    """
    srv = ThreadingHTTPServer((host, port), _handler(verifier, max_body, admin_token, timeout_s, max_concurrent))
    srv.daemon_threads = True
    return srv


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server.serve_forever`` on a daemon thread (tests, notebooks)."""
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


class VerifierClient:
    """A terminal's connection to the HTTP verifier.

    ``verify`` returns the deduction record or raises :class:`VerificationError` with the
    server's reason, so ``Terminal.submit(capture, client.verify)`` retries on rejections.
    Transport failures raise ``ConnectionError``.
    """

    def __init__(self, url: str, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read())
            except ValueError:
                return e.code, {"reason": "http_error", "detail": str(e)}
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f"verifier at {self.url} unreachable: {e}") from None

    def public_key(self) -> X25519PublicKey:
        status, obj = self._call("GET", "/v1/public-key")
        if status != 200:
            raise ConnectionError(f"public-key request failed ({status}): {obj}")
        return X25519PublicKey.from_public_bytes(bytes.fromhex(obj["x25519"]))

    def verify(self, envelope: bytes) -> dict:
        status, obj = self._call("POST", "/v1/verify", envelope, {"Content-Type": "application/octet-stream"})
        if status == 200 and obj.get("approved"):
            return obj["record"]
        raise VerificationError(obj.get("reason", f"http_{status}"), obj.get("detail", ""))

    def register_device(self, device_id: str, public_key: Ed25519PublicKey, admin_token: str) -> None:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        body = json.dumps({"device_id": device_id, "ed25519_public": raw.hex()}).encode()
        status, obj = self._call("POST", "/v1/devices", body, {"Authorization": f"Bearer {admin_token}",
                                                               "Content-Type": "application/json"})
        if status != 200:
            raise PermissionError(f"registration refused ({status}): {obj.get('reason')}: {obj.get('detail')}")
