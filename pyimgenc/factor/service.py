"""The verifier as a web service (ASGI: Starlette under uvicorn), and the terminal's client.

Endpoints (JSON answers, errors as ``{"reason": code}`` plus ``"approved": false`` on
``/v1/verify``):

===================================  ==============================================================
``GET  /v1/health``                  ``{"ok": true}``
``GET  /v1/public-key``              ``{"x25519": hex}``: the key terminals seal to
``POST /v1/verify``                  body: one envelope (``application/octet-stream``).
                                     200 ``{"approved": true, "record": {...}}`` (the deduction
                                     record without its scores), or 403 ``{"approved": false,
                                     "reason": r}`` with the verifier's reason code only (no
                                     scores, no exception text: those stay in the server's log
                                     and database); 413 ``oversized`` (refused before the body
                                     is read), 411 ``length_required``, 400 ``bad_request`` /
                                     ``truncated``, 408 ``timeout``, 503 ``busy``
``GET  /v1/devices``                 admin: every device, its counter, lock state, recent failures
``POST /v1/devices``                 admin: ``{"device_id", "ed25519_public": hex}`` registers
``POST /v1/devices/{id}/unlock``     admin: unlock a device locked after failed matches
===================================  ==============================================================

Admin endpoints need ``Authorization: Bearer <token>`` and exist only when the server
has an admin token.  A request's headers must arrive within ``header_timeout_s``
(a client dribbling header bytes is disconnected); open connections are capped
(``max_connections``, 503 beyond).  A body must announce its length (``Content-Length``,
at most ``max_body``) and arrive whole within ``timeout_s`` (a deadline for the whole
body: a client trickling bytes gets 408); bodies being uploaded are capped per client
address and in total bytes (503 ``busy`` before reading beyond).  At most ``max_concurrent`` verifications run at once
and **only requests whose body has arrived count** towards it, so slow uploaders never
starve terminals (503 ``busy`` beyond, answered at once).  Verifications run on a
thread pool (the counters are safe under concurrency: the verifier advances them in one
transaction).  Any exception answers 500 ``internal_error`` and the server keeps
serving; a client that hangs up after its approval is not an error (the approval is
recorded).  With ``tls_cert``/``tls_key`` uvicorn serves HTTPS; the client checks the
server's certificate (``ca`` or the system store).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
import subprocess
import sys
import threading
import time

import anyio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from .envelope import MAX_ENVELOPE_BYTES
from .verifier import VerificationError, Verifier

log = logging.getLogger("pyimgenc.verifier")
# no image hash: an unsalted SHA-256 of the pixels would let whoever sees the reply test image guesses
CLIENT_RECORD_FIELDS = ("record_id", "device_id", "counter", "timestamp_ms", "received_ms", "model")
MAX_ADMIN_BODY = 4096


def client_record(record: dict) -> dict:
    """What a terminal gets back on approval: the deduction record without the match scores."""
    return {k: record[k] for k in CLIENT_RECORD_FIELDS if k in record}


class _Refusal(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def make_app(verifier: Verifier, *, admin_token: str | None = None, max_body: int = MAX_ENVELOPE_BYTES,
             timeout_s: float = 30.0, max_concurrent: int = 8, max_uploads_per_client: int = 8,
             max_upload_bytes: int = 512 << 20):
    """The Starlette application serving ``verifier`` (see the module docstring).

    Bodies being uploaded are bounded per client address (``max_uploads_per_client``) and
    in total bytes announced (``max_upload_bytes``); beyond either the request gets 503
    ``busy`` before its body is read.
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    busy = {"n": 0}
    uploads: dict[str, int] = {}                 # bodies being read, per client address
    upload_bytes = {"n": 0}
    limiter = anyio.CapacityLimiter(max_concurrent)

    def deny(status: int, reason: str, verify: bool = False) -> JSONResponse:
        # a refused body may be half-read: close the connection rather than read the rest
        headers = {"connection": "close"} if status in (400, 408, 411, 413, 503) else None
        return JSONResponse({"approved": False, "reason": reason} if verify else {"reason": reason}, status,
                            headers=headers)

    async def body(request, limit: int) -> bytes:
        raw = request.headers.get("content-length")
        if raw is None:
            raise _Refusal(411, "length_required")
        try:
            n = int(raw)
            if n < 0:
                raise ValueError
        except ValueError:
            raise _Refusal(400, "bad_request") from None
        if n > limit:
            raise _Refusal(413, "oversized")
        peer = request.client.host if request.client else "?"
        if uploads.get(peer, 0) >= max_uploads_per_client or upload_bytes["n"] + n > max_upload_bytes:
            raise _Refusal(503, "busy")
        uploads[peer] = uploads.get(peer, 0) + 1
        upload_bytes["n"] += n
        try:
            return await _read(request, n)
        finally:
            upload_bytes["n"] -= n
            uploads[peer] -= 1
            if not uploads[peer]:
                del uploads[peer]

    async def _read(request, n: int) -> bytes:
        async def read() -> bytes:
            data = bytearray()
            async for chunk in request.stream():
                data += chunk
                if len(data) > n:
                    raise _Refusal(400, "bad_request")
            return bytes(data)
        try:
            data = await asyncio.wait_for(read(), timeout_s)      # a deadline for the whole body
        except asyncio.TimeoutError:
            raise _Refusal(408, "timeout") from None
        except ClientDisconnect:
            raise _Refusal(400, "truncated") from None
        if len(data) != n:
            raise _Refusal(400, "truncated")
        return data

    def admin(request) -> None:
        token = request.headers.get("authorization", "")
        if admin_token is None or not hmac.compare_digest(token.encode(), f"Bearer {admin_token}".encode()):
            raise _Refusal(401, "unauthorized")

    async def health(request):
        return JSONResponse({"ok": True})

    async def public_key(request):
        raw = verifier.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return JSONResponse({"x25519": raw.hex()})

    async def verify(request):
        try:
            data = await body(request, max_body)
        except _Refusal as r:
            return deny(r.status, r.reason, verify=True)
        if busy["n"] >= max_concurrent:                   # only requests with a whole body count
            return deny(503, "busy", verify=True)
        busy["n"] += 1
        try:
            out = await anyio.to_thread.run_sync(verifier.open, data, limiter=limiter)
        except VerificationError as exc:
            return deny(403, exc.reason, verify=True)      # the code only; scores stay in the server's log
        finally:
            busy["n"] -= 1
        return JSONResponse({"approved": True, "record": client_record(out.record)})

    async def devices(request):
        try:
            admin(request)
            if request.method == "GET":
                return JSONResponse({"devices": await anyio.to_thread.run_sync(verifier.devices)})
            req = json.loads(await body(request, MAX_ADMIN_BODY))
            if not isinstance(req, dict):
                raise TypeError("expected a JSON object")
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(req["ed25519_public"]))
            device_id = req["device_id"]
            if not isinstance(device_id, str):
                raise TypeError("device_id must be a string")
            await anyio.to_thread.run_sync(verifier.register_device, device_id, key)
            return JSONResponse({"registered": device_id})
        except _Refusal as r:
            return deny(r.status, r.reason)
        except (ValueError, KeyError, TypeError, RecursionError):
            return deny(400, "bad_request")

    async def unlock(request):
        try:
            admin(request)
            await anyio.to_thread.run_sync(verifier.unlock_device, request.path_params["device_id"])
        except _Refusal as r:
            return deny(r.status, r.reason)
        except KeyError:
            return deny(404, "unknown_device")
        return JSONResponse({"unlocked": request.path_params["device_id"]})

    async def http_error(request, exc: HTTPException):
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse({"reason": reason}, exc.status_code)

    async def internal(request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"reason": "internal_error"}, 500)

    return Starlette(routes=[
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/public-key", public_key, methods=["GET"]),
        Route("/v1/verify", verify, methods=["POST"]),
        Route("/v1/devices", devices, methods=["GET", "POST"]),
        Route("/v1/devices/{device_id:path}/unlock", unlock, methods=["POST"]),
    ], exception_handlers={HTTPException: http_error, Exception: internal})


def _protocol(header_timeout_s: float):
    """uvicorn's h11 protocol with a deadline for each request's headers.

    uvicorn arms no timer until a first response (and its keep-alive timer restarts on
    every byte), so a client dribbling header bytes would hold a connection forever.
    Here the headers of every request must be complete within ``header_timeout_s`` of
    the connection opening (or of the previous response), or the connection is closed.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        _header_timer = None
        _timed_cycle = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def _arm(self):
            self._disarm()
            self._timed_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout_s, self._expired)

        def _disarm(self):
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self):
            self._header_timer = None
            if self.cycle is self._timed_cycle and not self.transport.is_closing():
                self.transport.close()       # no complete request headers in time

        def data_received(self, data):
            super().data_received(data)
            if self.cycle is not self._timed_cycle:
                self._disarm()               # a request's headers are complete

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

    return Protocol


class Server:
    """The verifier under uvicorn; ``start()`` runs it on a thread, ``run()`` in the foreground.

    Args:
        verifier: the :class:`Verifier` to serve.
        host, port: where to listen (port 0 picks a free one: :attr:`port` after start).
        tls_cert, tls_key: PEM files: serve HTTPS (anything but loopback should).
        admin_token, max_body, timeout_s, max_concurrent, max_uploads_per_client,
            max_upload_bytes: see :func:`make_app`.
        header_timeout_s: a request's headers must arrive within this (slow-header clients).
        max_connections: open connections beyond this get 503 (file descriptors stay bounded).
    """

    def __init__(self, verifier: Verifier, host: str = "127.0.0.1", port: int = 8080, *,
                 tls_cert: str | None = None, tls_key: str | None = None, admin_token: str | None = None,
                 max_body: int = MAX_ENVELOPE_BYTES, timeout_s: float = 30.0, max_concurrent: int = 8,
                 header_timeout_s: float = 10.0, max_connections: int = 256, max_uploads_per_client: int = 8,
                 max_upload_bytes: int = 512 << 20, log_level: str = "warning"):
        import uvicorn
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key")
        app = make_app(verifier, admin_token=admin_token, max_body=max_body, timeout_s=timeout_s,
                       max_concurrent=max_concurrent, max_uploads_per_client=max_uploads_per_client,
                       max_upload_bytes=max_upload_bytes)
        self.tls = tls_cert is not None
        cfg = uvicorn.Config(app, host=host, port=port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                             log_level=log_level, access_log=False, lifespan="off", http=_protocol(header_timeout_s),
                             timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024,
                             limit_concurrency=max_connections)
        self._server = uvicorn.Server(cfg)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self._server.config.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def run(self) -> None:
        """Serve in the foreground until interrupted."""
        self._server.run()

    def start(self, timeout_s: float = 20.0) -> "Server":
        """Serve on a daemon thread; returns once it listens."""
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the verifier did not start (port in use?)")
            time.sleep(0.02)
        return self

    def wait(self) -> None:
        """Block until the server thread ends (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn(db: str, *args: str) -> tuple[subprocess.Popen, str]:
    """Start ``pyimgenc serve verifier --db DB --port 0 ARGS...`` as a process; returns it and its URL.

    For several verifier processes on one machine (tests, benchmarks, a local cluster on one
    PostgreSQL).  The caller stops it (``terminate()``/``wait()``).

    Raises:
        RuntimeError: the process did not announce its address.
    """
    proc = subprocess.Popen([sys.executable, "-m", "pyimgenc.cli", "serve", "verifier", "--db", str(db),
                             "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("verifier on "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"verifier did not start: {line.strip()!r}")
    return proc, line.split()[2]


class VerifierClient:
    """A terminal's connection to the verifier (``httpx``).

    ``verify`` returns the deduction record or raises :class:`VerificationError` with the
    server's reason code, so ``Terminal.submit(capture, client.verify)`` retries on
    rejections.  Every transport failure — unreachable, TLS, a cut-off or malformed
    reply — raises ``ConnectionError``, never a rejection.

    Args:
        url: ``http://`` or ``https://`` base URL.
        timeout_s: per request.
        ca: PEM file of the CA (or the self-signed certificate) to check the server
            against; default: the system's trust store.
    """

    def __init__(self, url: str, timeout_s: float = 30.0, ca: str | None = None):
        import httpx
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        verify = ssl.create_default_context(cafile=str(ca)) if ca else True
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, verify=verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "VerifierClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        import httpx
        try:
            r = self._http.request(method, path, content=body, headers=headers or {})
        except httpx.HTTPError as e:      # connect, TLS, timeouts, a reply cut off mid-body
            raise ConnectionError(f"verifier at {self.url} unreachable or broken reply: {type(e).__name__}: {e}") \
                from None
        try:
            obj = r.json()
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError:
            raise ConnectionError(f"verifier at {self.url} answered {r.status_code} with a malformed body") from None
        return r.status_code, obj

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Return once ``/v1/health`` answers 200 (a server just started); ConnectionError after
        ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self._call("GET", "/v1/health")[0] == 200:
                    return
            except ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise ConnectionError(f"verifier at {self.url} not ready after {timeout_s:g} s")
            time.sleep(0.2)

    def public_key(self) -> X25519PublicKey:
        status, obj = self._call("GET", "/v1/public-key")
        if status != 200:
            raise ConnectionError(f"public-key request failed ({status}): {obj.get('reason')}")
        try:
            return X25519PublicKey.from_public_bytes(bytes.fromhex(obj["x25519"]))
        except (KeyError, TypeError, ValueError):
            raise ConnectionError("public-key reply is malformed") from None

    def verify(self, envelope: bytes) -> dict:
        """The deduction record of an approval.

        Raises:
            VerificationError: the verifier rejected the envelope (403 with a reason code).
            ConnectionError: anything else — unreachable, TLS, a cut-off or malformed
                reply, a redirect, a proxy's page, ``busy`` (503: retry the same envelope
                later), a refused body (408/413/400).
        """
        status, obj = self._call("POST", "/v1/verify", envelope, {"Content-Type": "application/octet-stream"})
        if status == 200 and obj.get("approved") is True and isinstance(obj.get("record"), dict):
            return obj["record"]
        reason = obj.get("reason")
        if status == 403 and obj.get("approved") is False and isinstance(reason, str) and reason:
            raise VerificationError(reason)
        raise ConnectionError(f"verifier at {self.url} answered {status} ({reason or 'no reason'}); "
                              f"the envelope was not judged")

    def _admin(self, method: str, path: str, admin_token: str, obj: dict | None = None) -> dict:
        body = json.dumps(obj).encode() if obj is not None else None
        status, reply = self._call(method, path, body, {"Authorization": f"Bearer {admin_token}",
                                                        "Content-Type": "application/json"})
        if status != 200:
            raise PermissionError(f"{path} refused ({status}): {reply.get('reason')}")
        return reply

    def register_device(self, device_id: str, public_key: Ed25519PublicKey, admin_token: str) -> None:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._admin("POST", "/v1/devices", admin_token, {"device_id": device_id, "ed25519_public": raw.hex()})

    def devices(self, admin_token: str) -> list[dict]:
        return self._admin("GET", "/v1/devices", admin_token)["devices"]

    def unlock_device(self, device_id: str, admin_token: str) -> None:
        from urllib.parse import quote
        self._admin("POST", f"/v1/devices/{quote(device_id, safe='')}/unlock", admin_token)
