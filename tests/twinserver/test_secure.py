"""System A end to end: the secure classification equals the plaintext integer model bit for bit."""
from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest

from pyimgenc import paillier
from pyimgenc.paillier import linalg
from pyimgenc.twinserver import (ChannelError, SecureClassifier, deploy, in_process_pair, scvl_literal,
                                 TwinKeyServer)
from pyimgenc.twinserver import messages
from pyimgenc.twinserver import s2 as s2mod
from pyimgenc.twinserver import tls, wire
from pyimgenc.twinserver.graph import PlainOps, icnn_forward, layer_inputs, make_plan


@pytest.fixture(scope="module")
def clf():
    c = SecureClassifier.pretrained(key_bits=1024, insecure=True)
    yield c
    c.close()


@pytest.fixture(scope="module")
def fashion(fashion_test):
    return fashion_test[0][:4]


def test_graph_equals_the_integer_model(clf, mnist_test):
    x = mnist_test[0][:4]
    got = icnn_forward(PlainOps(clf.model), clf.model, clf.model.encode_images(x)).reshape(4, 10)
    assert (got == clf.model.logits(x)[0]).all()


def test_plan_slots_fit_the_key(clf):
    plan = make_plan(clf.model, 2048)
    assert plan["layers"]["fc"]["vb"] >= 69            # logits need 69 bits; the plan bounds them above
    assert all(lay["width"] < 2046 and lay["q_width"] < 2046 for lay in plan["layers"].values())


@pytest.fixture(scope="module")
def camera(photo):
    from PIL import Image
    return np.asarray(Image.fromarray(photo("camera")).convert("L").resize((28, 28)), dtype=np.uint8)[None]


def test_classify_equals_reference_mnist_fashion_photo(clf, mnist_test, fashion, camera):
    x = np.concatenate([mnist_test[0][:2], fashion[:1], camera])   # two digits, a garment, a photograph
    got = clf.classify(x, batch=4)
    assert got.shape == (4, 10)
    assert (got == clf.reference_logits(x)).all()
    assert clf.last.rounds_online > 50 and clf.last.bytes_online > 0 and clf.last.s2["pool_misses"] == 0


def test_classify_2048_bit_keys_exact(mnist_test):
    c = SecureClassifier.pretrained()                               # the default: 2048-bit keys
    assert c.public_key.bits == 2048
    x = mnist_test[0][5:6]
    assert (c.classify(x) == c.reference_logits(x)).all()
    c.close()


def test_fast_layer_equals_literal_smp_path(clf, mnist_test, monkeypatch):
    """The fast SCVL's output of one real layer equals the literal per-element SMP convolution."""
    snap = {}
    orig = clf.s2.ops["result"]

    def keep(sess, meta, tensors, blobs):
        snap.update(sess["t"])
        return orig(sess, meta, tensors, blobs)
    monkeypatch.setitem(clf.s2.ops, "result", keep)
    clf.s1.trace = {}
    try:
        x = mnist_test[0][7:8]
        clf.classify(x)
        h = clf.s1.trace["b1_3r"]
    finally:
        clf.s1.trace = None
    fast = snap[h.name] - h.mask                                   # (1, 4, 14, 14)
    seen = layer_inputs(clf.model, clf.model.encode_images(x))          # the layer's input, plaintext graph
    ref = PlainOps(clf.model).conv("b1_3r", seen["b1_3r"], 0)
    assert (fast == ref).all()
    # literal path on a 3x3 crop (a 1x1 convolution: cropping commutes with it)
    pk, sk = paillier.keygen(512, insecure=True)
    a, b = in_process_pair()
    threading.Thread(target=TwinKeyServer(sk, allow_literal=True).serve, args=(b,), daemon=True).start()
    inp = seen["b1_3r"][:, :, 5:8, 5:8]
    w = clf.model.w["b1_3r"].astype(object)
    lit = scvl_literal(a, pk.encrypt(inp), pk.encrypt(w), pk.encrypt(clf.model.int_bias("b1_3r")))
    assert (sk.decrypt(lit) == fast[:, :, 5:8, 5:8]).all()
    a.close()


@pytest.mark.parametrize("bad, err", [
    (np.zeros((1, 28, 28), dtype=np.float32), TypeError),
    (np.zeros((1, 32, 32), dtype=np.uint8), ValueError),
    (np.zeros((0, 28, 28), dtype=np.uint8), ValueError),
    ([[0] * 28] * 28, TypeError),
])
def test_bad_images_are_refused(clf, bad, err):
    with pytest.raises(err):
        clf.classify(bad)


def test_one_image_is_a_batch_of_one_and_names_are_checked(clf, mnist_test):
    x = mnist_test[0][9]
    assert (clf.reference_logits(x) == clf.reference_logits(x[None])).all()
    with pytest.raises(ValueError, match="unknown pretrained model 'mnist-avgpool'.*System B.*available: mnist-icnn"):
        SecureClassifier.pretrained("mnist-avgpool")


@pytest.mark.parametrize("batch", [0, 65, 1.5, True])
def test_bad_batch_size_is_refused(clf, mnist_test, batch):
    with pytest.raises(ValueError, match="batch must be"):
        clf.classify(mnist_test[0][:1], batch=batch)


def test_ciphertext_from_another_key_is_refused(clf, mnist_test):
    other, _ = paillier.keygen(1024, insecure=True)
    from pyimgenc.twinserver import User
    ct = User(other, clf.plan, clf.model.encode_images).encrypt(mnist_test[0][:1])
    sid, _ = s2mod.open_session(clf._user_ch, clf.public_key)
    tape = clf.s1.offline(clf._ch, 1, sid)
    with pytest.raises(ValueError, match="different public key"):
        clf.s1.online(clf._ch, tape, ct)
    clf.s2.sessions.pop(sid)


def test_tape_is_one_time(clf, mnist_test):
    sid, secret = s2mod.open_session(clf._user_ch, clf.public_key)
    tape = clf.s1.offline(clf._ch, 1, sid)
    ct = clf.user.encrypt(mnist_test[0][:1])
    clf.s1.online(clf._ch, tape, ct)
    with pytest.raises(ValueError, match="already used"):
        clf.s1.online(clf._ch, tape, ct)
    s2mod.fetch_result(clf._user_ch, clf.public_key, sid, secret)


def test_tampered_and_truncated_messages_are_refused(clf):
    body = wire.pack_message({"op": "lin2", "sid": "x" * 16, "width": 60, "dst": "t1", "shape": [3]},
                       [clf.public_key.encrypt(np.arange(3))])
    flipped = bytearray(body)
    flipped[-5] ^= 1
    for bad in (bytes(flipped), body[:-7], b"\x00\x00\x00\x05{}", b"garbage"):
        with pytest.raises(ValueError):
            clf.s2.handle(messages.FAST_REQUEST, bad)
    with pytest.raises(ValueError, match="unknown operation"):
        clf.s2.handle(messages.FAST_REQUEST, wire.pack_message({"op": "steal_key", "sid": "x" * 16}))
    with pytest.raises(ValueError, match="session expired or unknown"):
        clf.s2.handle(messages.FAST_REQUEST, wire.pack_message({"op": "cmp1", "sid": "y" * 16, "src": "t9", "width": 60}))
    sid, _ = s2mod.open_session(clf._user_ch, clf.public_key)
    with pytest.raises(ValueError, match="no tensor named"):
        clf.s2.handle(messages.FAST_REQUEST, wire.pack_message({"op": "cmp1", "sid": sid, "src": "t9", "width": 60}))
    clf.s2.sessions.pop(sid)


def test_a_peer_that_vanishes_gives_a_clear_error(mnist_test):
    c = SecureClassifier.pretrained(key_bits=1024, insecure=True)
    c._ch.timeout_s = 5.0

    def die(sess, meta, tensors, blobs):
        threading.Event().wait(20)   # S2 stalls mid-protocol: no reply within S1's timeout
        raise ConnectionError("gone")
    c.s2.ops["relu2"] = die
    with pytest.raises(ChannelError) as ei:
        c.classify(mnist_test[0][:1])
    assert ei.value.reason in ("timeout", "closed")


def test_packing_roundtrip_and_overflow():
    vals = [secrets.randbits(50) for _ in range(37)]
    p = wire.pack(vals, 50, 8)
    assert len(p) == 5 and wire.unpack(p, 50, 8, 37) == vals
    with pytest.raises(ValueError, match="overflow"):
        wire.unpack([1 << 400], 50, 8, 8)
    with pytest.raises(ValueError):
        wire.unpack([-1], 50, 8, 8)


def test_multiexp_matches_powmod_for_big_signed_exponents():
    pk, sk = paillier.keygen(512, insecure=True)
    c = pk.encrypt(np.arange(1, 7))
    idx = np.array([[0, 1, 2], [3, 4, -1]])
    e = np.array([[secrets.randbits(130), -secrets.randbits(70), 1], [-1, secrets.randbits(62), 5]], dtype=object)
    out = linalg.multiexp(pk, c.limbs, idx, e)
    got = sk.decrypt(paillier.EncryptedTensor(pk, out))
    m = np.arange(1, 7)
    n = pk.n
    want = [(int(m[0]) * e[0, 0] + int(m[1]) * e[0, 1] + int(m[2])) % n, (-int(m[3]) + int(m[4]) * e[1, 1]) % n]
    want = [v - n if v > n // 2 else v for v in want]
    assert list(got) == want


@pytest.mark.parametrize("bits", [1024, 2048])
def test_tcp_servers_classify_exactly_and_survive_garbage(tmp_path, mnist_test, bits):
    import socket
    deploy.setup(tmp_path, key_bits=bits, insecure=bits < 2048)
    stop = threading.Event()
    r2, r1 = threading.Event(), threading.Event()
    threading.Thread(target=deploy.serve_s2, args=(tmp_path,), kwargs=dict(port=0, ready=r2, stop=stop),
                     daemon=True).start()
    assert r2.wait(30)
    threading.Thread(target=deploy.serve_s1, args=(tmp_path / "s1.share", "127.0.0.1", r2.port),
                     kwargs=dict(port=0, ready=r1, stop=stop), daemon=True).start()
    assert r1.wait(30)
    try:
        for port in (r1.port, r2.port):          # garbage, then a half frame and a hang-up
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"PTS1\x01")
        x = mnist_test[0][11:12]
        got = deploy.classify_remote(tmp_path / "public.json", x, ("127.0.0.1", r1.port), ("127.0.0.1", r2.port))
        from pyimgenc.twinserver import load_integer_model
        assert (got == load_integer_model().logits(x)[0]).all()
        ctx = tls.client_context(tmp_path / "ca.crt")
        with pytest.raises(ChannelError, match="peer_error"):   # the user asks S2 for a session that never ran
            ch = deploy.TcpChannel.connect("127.0.0.1", r2.port, ssl_context=ctx)
            ch.request(messages.FAST_REQUEST, wire.pack_message({"op": "fetch", "sid": "z" * 32, "timeout": 1}),
                       messages.FAST_REPLY)
    finally:
        stop.set()


@pytest.fixture(scope="module")
def sys_a(tmp_path_factory):
    d = tmp_path_factory.mktemp("sysA")
    deploy.setup(d, key_bits=1024, insecure=True)
    return d


def test_setup_writes_secrets_owner_only_and_a_ca(sys_a):
    import stat
    for name in ("s2.key", "s2.share", "s1.share", "s1-tls.key", "s2-tls.key"):
        assert stat.S_IMODE((sys_a / name).stat().st_mode) == 0o600, name
    assert b"BEGIN CERTIFICATE" in (sys_a / "ca.crt").read_bytes()
    assert not list(sys_a.glob("ca*.key"))                  # the CA's private key is not kept


def test_tls_refuses_wrong_certificates_and_s2_decrypts_only_for_s1(sys_a, tmp_path, mnist_test,
                                                                    start_server_pair):
    stop = threading.Event()
    p1, p2 = start_server_pair(sys_a, stop)
    other = tmp_path / "other"
    other.mkdir()
    tls.make_pki(other)                                       # a second, unrelated CA
    try:
        with pytest.raises(ChannelError, match="tls"):      # a user who trusts another CA refuses both servers
            deploy.TcpChannel.connect("127.0.0.1", p2, ssl_context=tls.client_context(other / "ca.crt"))
        with pytest.raises(ChannelError, match="tls"):
            deploy.TcpChannel.connect("127.0.0.1", p1, ssl_context=tls.client_context(other / "ca.crt"))
        with pytest.raises(ChannelError, match="tls"):      # a server certificate for another name
            tls_connect_as(sys_a, p2, "not-the-server.example")
        pk = paillier.PublicKey.from_bytes(__import__("base64").b64decode(
            __import__("json").loads((sys_a / "public.json").read_text())["public_key"]))
        ch = deploy.TcpChannel.connect("127.0.0.1", p2, ssl_context=tls.client_context(sys_a / "ca.crt"))
        sid, secret = s2mod.open_session(ch, pk)              # a user may open a session ...
        ct = pk.encrypt(np.array([42]))
        with pytest.raises(ChannelError, match="only the peer with S1's certificate"):   # ... but not decrypt
            ch.request(messages.FAST_REQUEST, wire.pack_message(
                {"op": "load", "sid": sid, "dst": "x", "shape": [1], "width": 60}, [ct]), messages.FAST_REPLY)
        ch.close()
        forged = tls.client_context(sys_a / "ca.crt", other / "s1.crt", other / "s1-tls.key")  # S1's name, wrong CA
        with pytest.raises(ChannelError, match="closed"):   # S2 refuses the certificate at the handshake
            ch = deploy.TcpChannel.connect("127.0.0.1", p2, ssl_context=forged, timeout_s=10)
            s2mod.open_session(ch, pk)
        with pytest.raises(ChannelError, match="closed"):   # plaintext to a TLS server: no service
            ch = deploy.TcpChannel.connect("127.0.0.1", p2, timeout_s=5)
            s2mod.open_session(ch, pk)
        x = mnist_test[0][3:4]                               # and the servers keep serving
        got = deploy.classify_remote(sys_a / "public.json", x, ("127.0.0.1", p1), ("127.0.0.1", p2))
        assert (got == deploy.load_integer_model().logits(x)[0]).all()
    finally:
        stop.set()


def tls_connect_as(d, port, name):
    import socket
    import ssl
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        tls.client_context(d / "ca.crt").wrap_socket(sock, server_hostname=name)
    except ssl.SSLError as exc:
        raise ChannelError("tls", str(exc)) from None
    finally:
        sock.close()


def _s2_process(d, port):
    import subprocess
    import sys
    import time
    proc = subprocess.Popen([sys.executable, "-m", "pyimgenc.cli", "serve", "s2", "--dir", str(d), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            tls_connect_as(d, port, "localhost")
            return proc
        except (ChannelError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("S2 did not start")


def test_s1_reconnects_to_a_restarted_s2_before_use(sys_a, mnist_test):
    import socket
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = sys_a
    client = tls.client_context(d / "ca.crt", d / "s1.crt", d / "s1-tls.key")
    svc = deploy.S1Service(deploy.S1Share.from_bytes((d / "s1.share").read_bytes()), ("127.0.0.1", port), 120, client)
    proc = _s2_process(d, port)
    try:
        first = svc._channel()
        assert first.alive()
        proc.kill()                                      # S2 dies while S1 is idle ...
        proc.wait()
        deadline = time.time() + 10
        while first.alive() and time.time() < deadline:
            time.sleep(0.1)
        assert not first.alive()
        proc = _s2_process(d, port)                      # ... and comes back on the same address
        pk = svc.s1.pk
        with deploy.TcpChannel.connect("127.0.0.1", port, ssl_context=tls.client_context(d / "ca.crt")) as u:
            sid, secret = s2mod.open_session(u, pk)
        x = mnist_test[0][5:6]
        from pyimgenc.twinserver.owner import User
        model = deploy.load_integer_model()
        mask = svc.classify(sid, User(pk, svc.s1.share.plan, model.encode_images).encrypt(x), 1)   # first try
        assert svc._channel() is not first
        with deploy.TcpChannel.connect("127.0.0.1", port, ssl_context=tls.client_context(d / "ca.crt")) as u:
            blinded = s2mod.fetch_result(u, pk, sid, secret)
        assert (User.recover(blinded.reshape(mask.shape), mask) == model.logits(x)[0]).all()
    finally:
        proc.kill()
