"""The verifier over HTTP: approvals, every rejection with its reason, hostile bodies,
concurrent requests, and a terminal retrying through the client."""
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
from pyimgenc.factor.service import VerifierClient, make_server, serve_in_thread

NOW = 1_800_000_000.0


def ff(image):  # a stand-in first factor keeps these transport tests fast; the model path has its own tests
    return b"F" + bytes([int(image.sum()) % 251])


def check(image, claimed, model):
    return ff(image) == claimed


@pytest.fixture
def service(tmp_path):
    srv = factor.Verifier.create(tmp_path / "v.sqlite", check, clock=lambda: NOW)
    http_srv = make_server(srv, "127.0.0.1", 0, admin_token="s3cret", timeout_s=1.0, max_body=1 << 20)
    serve_in_thread(http_srv)
    host, port = http_srv.server_address[:2]
    yield srv, f"http://{host}:{port}", (host, port)
    http_srv.shutdown()
    http_srv.server_close()


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
    for reason, env in cases.items():
        with pytest.raises(factor.VerificationError) as ei:
            client.verify(env)
        assert ei.value.reason == reason
    assert srv.last_counter("dev-1") == 1 and len(srv.records()) == 1


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
    assert _raw(addr, "POST", "/v1/verify", b"", {"Content-Length": "-5"})[1]["reason"] == "bad_request"
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
    t0 = time.monotonic()
    got = b""
    try:
        for _ in range(20):           # one byte every 0.3 s: each read is quick, the whole is not
            s.sendall(b"x")
            time.sleep(0.3)
    except OSError:
        pass                          # the server closed the connection
    s.settimeout(5)
    try:
        while chunk := s.recv(4096):
            got += chunk
    except OSError:
        pass
    s.close()
    assert b" 408 " in got.split(b"\r\n")[0] and time.monotonic() - t0 < 8
