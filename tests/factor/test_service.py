"""The verifier over HTTP (Starlette under uvicorn): approvals, every rejection with its reason code
only, hostile bodies, slow uploaders, concurrent requests, admin endpoints, TLS, transport failures
reaching the client as ConnectionError, and a terminal retrying through the client."""
from __future__ import annotations

import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from pyimgenc import factor
from pyimgenc.factor.service import Server, VerifierClient

NOW = 1_800_000_000.0


def ff(image):  # a stand-in first factor keeps these transport tests fast; the model path has its own tests
    return b"F" + bytes([int(image.sum()) % 251])


def check(image, claimed, model):
    return ff(image) == claimed


@pytest.fixture
def service(tmp_path):
    srv = factor.Verifier.create(tmp_path / "v.sqlite", check, clock=lambda: NOW)
    with Server(srv, "127.0.0.1", 0, admin_token="s3cret", timeout_s=1.0, max_body=1 << 20) as web:
        yield srv, web.url, ("127.0.0.1", web.port)


def _raw(addr, method, path, body=b"", headers=None):
    c = http.client.HTTPConnection(*addr, timeout=5)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    out = r.status, json.loads(r.read() or b"{}")
    c.close()
    return out


def _terminal(srv, dev_id="dev-1", **kw):
    t = factor.Terminal(dev_id, srv.public_key, ff, clock=lambda: NOW, **kw)
    srv.register_device(dev_id, t.public_key)
    return t


def test_public_key_registration_and_approval(service):
    srv, url, _ = service
    client = VerifierClient(url)
    assert client.public_key().public_bytes_raw() == srv.public_key.public_bytes_raw()
    t = factor.Terminal("dev-9", client.public_key(), ff, clock=lambda: NOW)
    with pytest.raises(PermissionError, match="unauthorized"):
        client.register_device("dev-9", t.public_key, admin_token="wrong")
    client.register_device("dev-9", t.public_key, admin_token="s3cret")
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    rec = client.verify(t.seal(img))
    assert rec["device_id"] == "dev-9" and rec["counter"] == 1 and rec["record_id"] == 1


def test_each_rejection_reason_over_http(service):
    srv, url, addr = service
    client = VerifierClient(url)
    t = _terminal(srv)
    img = np.full((8, 8), 7, np.uint8)
    good = t.seal(img)
    client.verify(good)
    cases = {"replayed_counter": good}
    env = bytearray(t.seal(img))
    env[40] ^= 1
    cases["bad_signature"] = bytes(env)
    cases["truncated"] = t.seal(img)[:30]
    cases["bad_magic"] = b"garbage" * 10
    stranger = factor.Terminal("nobody", srv.public_key, ff, clock=lambda: NOW)
    cases["unknown_device"] = stranger.seal(img)
    wrong_key = factor.Terminal("dev-1", X25519PrivateKey.generate().public_key(), ff, clock=lambda: NOW,
                                device_key=t._key)
    wrong_key.counter = 100
    cases["bad_capsule"] = wrong_key.seal(img)
    old = factor.Terminal("dev-1", srv.public_key, ff, clock=lambda: NOW - 3600, device_key=t._key)
    old.counter = 200
    cases["stale_timestamp"] = old.seal(img)
    bad_factor = factor.Terminal("dev-1", srv.public_key, lambda im: b"\x00" * 32, clock=lambda: NOW,
                                 device_key=t._key)
    bad_factor.counter = 300
    cases["first_factor_mismatch"] = bad_factor.seal(img)
    for reason, env in cases.items():
        with pytest.raises(factor.VerificationError) as ei:
            client.verify(env)
        assert ei.value.reason == reason
        status, body = _raw(addr, "POST", "/v1/verify", env)   # again: a counted failure spent its counter
        again = "replayed_counter" if reason == "first_factor_mismatch" else reason
        assert status == 403 and body == {"approved": False, "reason": again}   # the code, nothing else
    assert srv.last_counter("dev-1") == 301 and len(srv.records()) == 1     # the mismatch spent counter 301
    assert srv.failures("dev-1")[0]["reason"] == "first_factor_mismatch"    # the detail stays server-side


def test_approval_carries_no_scores(service):
    srv, url, addr = service
    t = _terminal(srv)
    status, body = _raw(addr, "POST", "/v1/verify", t.seal(np.full((8, 8), 3, np.uint8)))
    assert status == 200 and set(body["record"]) == {"record_id", "device_id", "counter", "timestamp_ms",
                                                     "received_ms", "model"}   # no scores, no image hash
    assert {"face_score", "factor_distance", "image_sha256"} <= set(srv.records()[0])


def test_hostile_bodies_never_take_the_server_down(service):
    srv, url, addr = service
    assert _raw(addr, "POST", "/v1/verify", b"x" * 10, {"Content-Length": str(2 << 20)})[1]["reason"] == "oversized"
    # no Content-Length at all
    c = http.client.HTTPConnection(*addr, timeout=5)
    c.putrequest("POST", "/v1/verify")
    c.endheaders()
    r = c.getresponse()
    assert r.status == 411 and json.loads(r.read())["reason"] == "length_required"
    c.close()
    c = http.client.HTTPConnection(*addr, timeout=5)     # malformed HTTP: uvicorn's own 400, before the app
    c.request("POST", "/v1/verify", body=b"", headers={"Content-Length": "-5"})
    assert c.getresponse().status == 400
    c.close()
    assert _raw(addr, "POST", "/v1/verify", b"")[1]["reason"] == "truncated"
    assert _raw(addr, "GET", "/nope")[0] == 404
    # a client that announces more than it sends gets a timeout, not a hung server
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort")
    chunks = []
    while chunk := s.recv(4096):  # the server answers, then closes the connection
        chunks.append(chunk)
    s.close()
    resp = b"".join(chunks).decode()
    assert " 408 " in resp.splitlines()[0] and "timeout" in resp
    assert _raw(addr, "POST", "/v1/devices", b"{}", {"Authorization": "Bearer s3cret"})[1]["reason"] == "bad_request"
    assert _raw(addr, "GET", "/v1/health") == (200, {"ok": True})


def test_concurrent_requests_accept_each_counter_once(service):
    srv, url, _ = service
    client = VerifierClient(url)
    t = _terminal(srv)
    envs = [t.seal(np.full((16, 16), i, np.uint8)) for i in range(12)]
    work = envs + envs  # every envelope twice, all at once
    results = []
    lock = threading.Lock()

    def go(env):
        try:
            rec = client.verify(env)
            with lock:
                results.append(("ok", rec["counter"]))
        except factor.VerificationError as exc:
            with lock:
                results.append((exc.reason, None))
        except ConnectionError as exc:           # 503 busy: not judged, retry later
            assert "503 (busy)" in str(exc)
            with lock:
                results.append(("busy", None))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(go, work))
    accepted = sorted(c for r, c in results if r == "ok")
    # counters must strictly increase, so arrival order decides which survive; none twice
    assert len(accepted) == len(set(accepted)) >= 1
    assert all(r in ("ok", "replayed_counter", "busy") for r, _ in results)  # busy: over max_concurrent
    assert srv.last_counter("dev-1") == max(accepted) and len(srv.records()) == len(accepted)


def test_terminal_retries_through_the_client(service):
    srv, url, _ = service
    client = VerifierClient(url)
    t = _terminal(srv)
    t.counter = 0
    srv.open(factor.Terminal("dev-1", srv.public_key, ff, clock=lambda: NOW, device_key=t._key).seal(
        np.zeros((2, 2), np.uint8)))  # someone used counter 1 already
    rec = t.submit(lambda: np.ones((3, 3), np.uint8), client.verify, max_attempts=2)
    assert rec["counter"] == 2  # first attempt (counter 1) rejected as a replay, the fresh capture approved
    dead = VerifierClient("http://127.0.0.1:1", timeout_s=1)
    with pytest.raises(ConnectionError, match="unreachable"):
        dead.verify(b"x")


def test_a_trickling_client_gets_408_within_the_deadline(service):
    import time
    srv, url, addr = service          # the fixture's server has timeout_s = 1
    s = socket.create_connection(addr, timeout=10)
    s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    got = b""
    try:
        for _ in range(20):           # one byte every 0.3 s: each read is quick, the whole is not
            s.sendall(b"x")
            time.sleep(0.3)
    except OSError:
        pass                          # the server closed the connection
    s.settimeout(5)                   # the answer must already be there: a hung server fails here
    try:
        while chunk := s.recv(4096):
            got += chunk
    except OSError:
        pass
    s.close()
    assert b" 408 " in got.split(b"\r\n")[0]


def _slow_uploads(port: int, count: int, length: int) -> list[socket.socket]:
    """``count`` connections that announce a ``length``-byte body and send two bytes of it."""
    out = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nxx" % length)
        out.append(s)
    return out


def test_slow_uploaders_do_not_starve_terminals(tmp_path):
    """Twice max_concurrent clients trickle their bodies (for up to 20 s); a terminal is approved while they
    still hold their connections, within its client's 5 s timeout."""
    srv = factor.Verifier.create(tmp_path / "s.sqlite", check, clock=lambda: NOW)
    with Server(srv, "127.0.0.1", 0, timeout_s=20.0, max_concurrent=2) as web:
        slow = _slow_uploads(web.port, 4, 100000)
        t = _terminal(srv)
        with VerifierClient(web.url, timeout_s=5) as client:
            rec = client.verify(t.seal(np.full((8, 8), 5, np.uint8)))
        assert rec["counter"] == 1
        for s in slow:
            s.close()


def test_admin_endpoints_list_and_unlock(tmp_path):
    srv = factor.Verifier.create(tmp_path / "a.sqlite", check, clock=lambda: NOW, max_failures=2)
    with Server(srv, "127.0.0.1", 0, admin_token="s3cret") as web, VerifierClient(web.url) as client:
        t = factor.Terminal("dev-1", client.public_key(), lambda im: b"wrong", clock=lambda: NOW)
        client.register_device("dev-1", t.public_key, admin_token="s3cret")
        with pytest.raises(PermissionError, match="unauthorized"):
            client.devices(admin_token="nope")
        reasons = []
        for _ in range(3):
            with pytest.raises(factor.VerificationError) as ei:
                client.verify(t.seal(np.zeros((4, 4), np.uint8)))
            reasons.append(ei.value.reason)
        assert reasons == ["first_factor_mismatch", "first_factor_mismatch", "device_locked"]
        assert client.devices(admin_token="s3cret")[0]["locked"] is True
        client.unlock_device("dev-1", admin_token="s3cret")
        assert client.devices(admin_token="s3cret")[0] == {"device_id": "dev-1", "last_counter": 2, "locked": False,
                                                           "locked_ms": None, "recent_failures": 0}
        with pytest.raises(PermissionError, match="404"):
            client.unlock_device("dev-9", admin_token="s3cret")
        assert _raw(("127.0.0.1", web.port), "DELETE", "/v1/devices") == (405, {"reason": "method_not_allowed"})


def _fake_server(reply: bytes):
    """A TCP server that answers every request with ``reply`` and hangs up."""
    lsock = socket.create_server(("127.0.0.1", 0))

    def run():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            c.recv(65536)
            c.sendall(reply)
            c.close()
    threading.Thread(target=run, daemon=True).start()
    return lsock


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"approved\": tr",
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"approved\": tr",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!",
    b"garbage, not HTTP at all\r\n\r\n",
])
def test_transport_failures_are_connection_errors(reply):
    """A cut-off body, a truncated 200, an HTML 500, garbage: ConnectionError, never a rejection."""
    lsock = _fake_server(reply)
    try:
        with VerifierClient(f"http://127.0.0.1:{lsock.getsockname()[1]}", timeout_s=5) as client:
            with pytest.raises(ConnectionError):
                client.verify(b"envelope")
    finally:
        lsock.close()


def test_tls_the_client_checks_the_servers_certificate(tmp_path):
    from pyimgenc.pki import self_signed_certificate
    srv = factor.Verifier.create(tmp_path / "t.sqlite", check, clock=lambda: NOW)
    cert, key = self_signed_certificate(tmp_path, "127.0.0.1")
    other, _ = self_signed_certificate(tmp_path / "other", "127.0.0.1")
    with Server(srv, "127.0.0.1", 0, tls_cert=cert, tls_key=key) as web:
        assert web.url.startswith("https://")
        t = _terminal(srv)
        with VerifierClient(web.url, ca=cert) as client:
            assert client.verify(t.seal(np.ones((4, 4), np.uint8)))["counter"] == 1
        for ca in (None, other):                     # the system store, another certificate: refused
            with VerifierClient(web.url, ca=ca) as client, pytest.raises(ConnectionError, match="SSL|certificate"):
                client.public_key()
        with VerifierClient(web.url.replace("https", "http")) as client, pytest.raises(ConnectionError):
            client.public_key()                      # plain HTTP to a TLS port


def test_a_client_that_hangs_up_after_sending_is_approved_without_an_error(service, caplog):
    """The approval is recorded and nothing is logged as an error (no 500) when the terminal is gone."""
    import logging
    import time
    srv, url, addr = service
    t = _terminal(srv)
    env = t.seal(np.full((8, 8), 9, np.uint8))
    caplog.set_level(logging.WARNING)
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\n\r\n" % len(env) + env)
    s.close()                                     # gone before the answer
    deadline = time.monotonic() + 10
    while not srv.records() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert [r["counter"] for r in srv.records()] == [1]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_a_client_dribbling_headers_is_disconnected(tmp_path):
    """Attack review H2: headers must be complete within header_timeout_s, however slowly they come."""
    import time
    srv = factor.Verifier.create(tmp_path / "h.sqlite", check, clock=lambda: NOW)
    with Server(srv, "127.0.0.1", 0, header_timeout_s=1.0) as web:
        s = socket.create_connection(("127.0.0.1", web.port), timeout=10)
        closed = False
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40   # ~7 s at 0.1 s a byte
        for b in head:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
        s.close()
        assert closed                 # cut off before the headers ended (the timeout is 1 s, sending takes ~7 s)
        assert _raw(("127.0.0.1", web.port), "GET", "/v1/health") == (200, {"ok": True})


def test_uploads_in_flight_are_capped_per_client(tmp_path):
    """Attack review M1: one address cannot hold more than max_uploads_per_client bodies in memory."""
    srv = factor.Verifier.create(tmp_path / "u.sqlite", check, clock=lambda: NOW)
    with Server(srv, "127.0.0.1", 0, timeout_s=20.0, max_uploads_per_client=2) as web:
        slow = _slow_uploads(web.port, 2, 1000000)
        import time
        time.sleep(0.3)
        status, body = _raw(("127.0.0.1", web.port), "POST", "/v1/verify", b"x" * 100)
        assert (status, body) == (503, {"approved": False, "reason": "busy"})
        for s in slow:
            s.close()


def _http(status: str, body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


@pytest.mark.parametrize("reply", [
    _http("302 Found", b"{}", "Location: http://127.0.0.1:1/\r\n"),
    _http("429 Too Many Requests", b'{"reason": "slow down"}'),
    _http("403 Forbidden", b'{"reason": "waf"}'),
    _http("503 Service Unavailable", b'{"approved": false, "reason": "busy"}'),
])
def test_only_a_verdict_is_a_rejection(reply):
    """Attack review L1: redirects, proxies' 403/429, busy: ConnectionError (the envelope was not judged)."""
    lsock = _fake_server(reply)
    try:
        with VerifierClient(f"http://127.0.0.1:{lsock.getsockname()[1]}", timeout_s=5) as client:
            with pytest.raises(ConnectionError, match="not judged"):
                client.verify(b"envelope")
    finally:
        lsock.close()


def test_admin_unlock_takes_any_device_id(tmp_path):
    """Attack review L3: a device id with '/' can be unlocked; a deeply nested body is a 400, not a 500."""
    srv = factor.Verifier.create(tmp_path / "d.sqlite", check, clock=lambda: NOW)
    with Server(srv, "127.0.0.1", 0, admin_token="s3cret") as web, VerifierClient(web.url) as client:
        t = factor.Terminal("site/a b", client.public_key(), ff, clock=lambda: NOW)
        client.register_device("site/a b", t.public_key, admin_token="s3cret")
        client.unlock_device("site/a b", admin_token="s3cret")
        deep = b"[" * 2000 + b"]" * 2000                  # under the 4 KiB admin body limit
        assert _raw(("127.0.0.1", web.port), "POST", "/v1/devices", deep,
                    {"Authorization": "Bearer s3cret"}) == (400, {"reason": "bad_request"})
