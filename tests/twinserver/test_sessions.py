"""S2's sessions: owned by the user (open, fetch with a secret), bounded (expiry, caps, pool)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from pyimgenc import paillier
from pyimgenc.twinserver import ChannelError, SecureClassifier, TwinKeyServer, User, in_process_pair, wire
from pyimgenc.twinserver import messages
from pyimgenc.twinserver import s2 as s2mod
from pyimgenc.twinserver.owner import S2Share


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture(scope="module")
def keys():
    return paillier.keygen(256, insecure=True)


def _server(keys, **kw) -> TwinKeyServer:
    """An S2 with an empty model share: enough for sessions, the pool and local steps."""
    return TwinKeyServer(keys[1], S2Share({}), **kw)


def _req(s2, meta, tensors=()):
    return wire.unpack_message(s2.handle(messages.FAST_REQUEST, wire.pack_message(meta, tensors))[1], s2.pk)[0]


def _open(s2) -> tuple[str, str]:
    secret, verifier = s2mod.new_secret()
    return _req(s2, {"op": "open", "verifier": verifier})["sid"], secret


def _serve(s2):
    """A fresh in-process connection to ``s2`` (its own peer)."""
    a, b = in_process_pair(timeout_s=10)
    threading.Thread(target=s2.serve, args=(b,), daemon=True).start()
    return a


def _finish(s2, sid, values):
    """What S1 does at the end: S2 holds ``values`` as the session's result."""
    s2.sessions[sid]["t"]["out"] = np.array(values, dtype=object)
    _req(s2, {"op": "result", "sid": sid, "src": "out"})


def test_fetch_needs_the_secret_and_a_wrong_one_changes_nothing(keys):
    s2 = _server(keys)
    sid, secret = _open(s2)
    assert len(sid) == 32 and sid in s2.sessions
    _finish(s2, sid, [5, -7, 1 << 80])
    before = dict(s2.sessions[sid])
    for meta, err in (({}, "needs the session's secret"),
                      ({"secret": s2mod.new_secret()[0]}, "wrong secret"),
                      ({"secret": "zz" * 32}, "not hexadecimal")):
        with pytest.raises(messages.ProtocolError, match=err):
            _req(s2, {"op": "fetch", "sid": sid, "timeout": 0, **meta})
        assert s2.sessions[sid] == before                  # not consumed, not touched
    with pytest.raises(messages.ProtocolError, match="only the user's fetch"):
        _req(s2, {"op": "result", "sid": sid, "src": "out"})
    got = _req(s2, {"op": "fetch", "sid": sid, "secret": secret, "timeout": 0})
    assert wire.unhex(got["v"]) == [5, -7, 1 << 80]
    with pytest.raises(messages.ProtocolError, match="expired or unknown"):   # released once
        _req(s2, {"op": "fetch", "sid": sid, "secret": secret, "timeout": 0})


def test_ops_on_a_session_s2_never_opened_are_refused(keys):
    s2 = _server(keys)
    sid = s2mod.new_session_id()                 # S1 makes up its own id: S2 creates nothing
    for meta in ({"op": "prepare", "count": 1}, {"op": "result", "src": "x"},
                 {"op": "cmp1", "src": "x", "width": 60},
                 {"op": "fetch", "secret": s2mod.new_secret()[0], "timeout": 0}):
        with pytest.raises(messages.ProtocolError, match="session expired or unknown"):
            _req(s2, dict(meta, sid=sid))
    assert s2.sessions == {}
    for bad in ({}, {"verifier": "ab"}, {"verifier": "g" * 64}):
        with pytest.raises(messages.ProtocolError, match="verifier"):
            _req(s2, {"op": "open", **bad})


def test_idle_sessions_expire(keys):
    clock = Clock()
    s2 = _server(keys, session_ttl_s=10, open_ttl_s=2, clock=clock)
    unused, _ = _open(s2)
    used, _ = _open(s2)
    _req(s2, {"op": "prepare", "sid": used, "count": 0})
    clock.t += 3                                             # past the open TTL, within the session TTL
    with pytest.raises(messages.ProtocolError, match="session expired or unknown"):
        _req(s2, {"op": "prepare", "sid": unused, "count": 0})
    _req(s2, {"op": "prepare", "sid": used, "count": 0})    # activity renews it
    clock.t += 9
    _req(s2, {"op": "prepare", "sid": used, "count": 0})
    clock.t += 11
    _open(s2)                                                # admitting a session sweeps the expired ones
    assert used not in s2.sessions and unused not in s2.sessions and len(s2.sessions) == 1


def test_per_peer_and_global_caps_count_only_live_sessions(keys):
    clock = Clock()
    s2 = _server(keys, max_sessions=14, max_sessions_per_peer=4, open_ttl_s=5, clock=clock)
    pk = s2.pk
    flood = [_serve(s2) for _ in range(3)]
    for ch in flood:
        for _ in range(4):
            s2mod.open_session(ch, pk)
        with pytest.raises(ChannelError, match="too many open sessions for this peer"):
            s2mod.open_session(ch, pk)
    user = _serve(s2)
    s2mod.open_session(user, pk)                             # 12 by the flood, 2 by the user: full ...
    s2mod.open_session(user, pk)
    with pytest.raises(ChannelError, match=r"too many open sessions \(14 live\)"):
        s2mod.open_session(user, pk)
    clock.t += 6                                             # ... until the flood's unused sessions expire
    sid, secret = s2mod.open_session(user, pk)
    assert len(s2.sessions) == 1 and sid in s2.sessions


def test_oversize_prepare_and_shift_are_refused_and_s2_keeps_serving(keys):
    s2 = _server(keys, max_pool=50)
    ch = _serve(s2)
    sid, _ = s2mod.open_session(ch, s2.pk)
    s2.sessions[sid]["t"]["x"] = np.arange(4, dtype=object)

    def call(meta):
        msg_id = ch.send(messages.FAST_REQUEST, wire.pack_message(dict(meta, sid=sid)))
        rtype, _, data = ch.recv(expect_id=msg_id)
        return rtype, data
    for meta, err in (({"op": "prepare", "count": 1 << 24}, "'count' must be an integer in"),
                      ({"op": "prepare", "count": s2mod.MAX_PREPARE + 1}, "'count' must be an integer in"),
                      ({"op": "prepare", "count": 0,
                        "pre": [["concat", ["x", "x"], "y", 0, [0, 100000]]]}, "concat: one shift per part"),
                      ({"op": "prepare", "count": 0,
                        "pre": [["concat", ["x", "x"], "y", 0, [0, -1]]]}, "concat: one shift per part"),
                      ({"op": "prepare", "count": 0,
                        "pre": [["free", []]] * (s2mod.MAX_PRE + 1)}, "at most 256 local steps")):
        rtype, data = call(meta)
        assert rtype == messages.ERROR_REPLY and err in data.decode(), data
    rtype, data = call({"op": "prepare", "count": 0,
                        "pre": [["concat", ["x", "x"], "y", 0, [0, s2mod.MAX_SHIFT]]]})
    assert rtype == messages.FAST_REPLY
    rtype, data = call({"op": "prepare", "count": 80})      # the pool stops at max_pool
    assert rtype == messages.FAST_REPLY and wire.unpack_message(data, s2.pk)[0]["pool"] == 50


def test_concurrent_pool_takes_never_share_a_row(keys):
    s2 = _server(keys, max_pool=4000)
    sid, _ = _open(s2)
    assert _req(s2, {"op": "prepare", "sid": sid, "count": 4000})["pool"] == 4000
    got: list[list[bytes]] = [[] for _ in range(8)]

    def worker(i):
        for k in (1, 7, 30, 2, 60, 13) * 4:
            got[i].extend(r.tobytes() for r in s2.pool.take(k))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rows = [r for g in got for r in g]
    assert len(rows) == 8 * 4 * 113 == len(set(rows))       # no row handed out twice
    assert s2.pool.drawn_late == 0 and len(s2.pool) == 4000 - len(rows)   # every row came from the pool
    ct = s2.encrypt([5, 6])                                  # S2's encryptions spend the pool and are counted
    assert s2.stats["encryptions"] == 2 and s2.stats["pool_misses"] == 0 and len(s2.pool) == 4000 - len(rows) - 2
    assert [int(v) for v in keys[1].decrypt(ct)] == [5, 6]


def test_pool_fills_to_its_cap_under_concurrent_prepares(keys):
    pool = paillier.ObfuscatorPool(keys[0], max_rows=300)
    threads = [threading.Thread(target=pool.fill, args=(200,)) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(pool) == 200                                  # concurrent fills never overshoot the request
    assert pool.fill(10_000) == 300                          # nor the cap
    rows = pool.take(305)                                    # 5 more than held: drawn now
    assert rows.shape == (305, keys[0].ct_limbs) and pool.drawn_late == 5 and len(pool) == 0
    with pytest.raises(ValueError, match="non-negative"):
        pool.take(-1)


def test_s1_cannot_fetch_and_a_flood_does_not_stop_the_user(mnist_test):
    """A real 512-bit classification while one peer floods S2 and S1 tries to take the result."""
    clf = SecureClassifier.pretrained(key_bits=512, insecure=True)
    try:
        pk = clf.public_key
        junk = _serve(clf.s2)
        opened, refused = 0, 0
        for _ in range(70):
            try:
                s2mod.open_session(junk, pk)
                opened += 1
            except ChannelError as exc:
                assert "too many open sessions for this peer" in str(exc)
                refused += 1
        assert (opened, refused) == (s2mod.MAX_SESSIONS_PER_PEER, 70 - s2mod.MAX_SESSIONS_PER_PEER)
        x = mnist_test[0][3:4]
        sid, secret = s2mod.open_session(clf._user_ch, pk)           # the user opens, gives S1 the sid
        tape = clf.s1.offline(clf._ch, 1, sid)
        mask = clf.s1.online(clf._ch, tape, clf.user.encrypt(x))
        for meta in ({"op": "fetch", "sid": sid, "timeout": 1},        # S1, over its own connection
                     {"op": "fetch", "sid": sid, "timeout": 1, "secret": s2mod.new_secret()[0]}):
            with pytest.raises(ChannelError, match="peer_error"):
                messages.call(clf._ch, pk, meta)
        with pytest.raises(ChannelError, match="only the user's fetch"):
            messages.call(clf._ch, pk, {"op": "result", "sid": sid, "src": "t1"})
        blinded = s2mod.fetch_result(clf._user_ch, pk, sid, secret)
        assert (User.recover(blinded.reshape(mask.shape), mask) == clf.reference_logits(x)).all()
        assert (clf.classify(mnist_test[0][4:5]) == clf.reference_logits(mnist_test[0][4:5])).all()
    finally:
        clf.close()


# ---------------------------------------------------------------- after the attack review

def _as_peer(s2, name):
    s2._peer.name = name            # what serve() sets for each connection


def test_a_session_is_bound_to_the_first_compute_server_connection(keys):
    s2 = _server(keys)
    sid, _ = _open(s2)
    _as_peer(s2, "s1-host")
    _req(s2, {"op": "prepare", "sid": sid, "count": 0})                  # S1's first operation binds
    _as_peer(s2, "someone-else")
    with pytest.raises(messages.ProtocolError, match="bound to another compute-server"):
        _req(s2, {"op": "prepare", "sid": sid, "count": 0,
                  "pre": [["concat", [], "t1", 0, []]]})
    assert "t1" not in s2.sessions[sid]["t"]                           # nothing of it ran
    _as_peer(s2, "s1-host")
    _req(s2, {"op": "prepare", "sid": sid, "count": 0})                  # S1 carries on


def test_literal_message_types_are_off_unless_asked_for(keys):
    pk, _ = keys
    body = wire.pack_message({}, [pk.encrypt([1]), pk.encrypt([2])])
    with pytest.raises(messages.ProtocolError, match="literal SMP/SACT.*disabled"):
        _server(keys).handle(1, body)


def test_session_memory_is_bounded(keys, monkeypatch):
    s2 = _server(keys)
    sid, _ = _open(s2)
    s2.sessions[sid]["t"]["x"] = np.array([3] * 8, dtype=object)
    chain = [["concat", ["x" if i == 0 else f"c{i - 1}"], f"c{i}", 0, [s2mod.MAX_SHIFT]] for i in range(8)]
    with pytest.raises(messages.ProtocolError, match="values over"):      # shifts piled up past 2|n| bits
        _req(s2, {"op": "prepare", "sid": sid, "count": 0, "pre": chain})
    monkeypatch.setattr(s2mod, "MAX_NAMES", 4)
    many = [["slice", "x", f"n{i}", 0, 0, 1, 1] for i in range(6)]
    with pytest.raises(messages.ProtocolError, match="more than 4 named tensors"):
        _req(s2, {"op": "prepare", "sid": sid, "count": 0, "pre": many})
    monkeypatch.setattr(s2mod, "MAX_NAMES", 4096)
    monkeypatch.setattr(s2mod, "MAX_SESSION_ELEMENTS", 20)
    big = [["concat", ["x", "x"], f"b{i}", 0, [0, 0]] for i in range(3)]  # 16 values each
    with pytest.raises(messages.ProtocolError, match="more than 20"):
        _req(s2, {"op": "prepare", "sid": sid, "count": 0, "pre": big})


def test_errors_echo_at_most_a_short_line(keys):
    s2 = _server(keys)
    sid, _ = _open(s2)
    with pytest.raises(messages.ProtocolError) as err:
        _req(s2, {"op": "prepare", "sid": sid, "count": 0, "pre": [["x" * 100_000]]})
    assert len(str(err.value)) < 200
    with pytest.raises(messages.ProtocolError) as err:
        _req(s2, {"op": "y" * 100_000, "sid": sid})
    assert len(str(err.value)) < 200


def test_a_session_ends_after_its_lifetime_however_busy(keys):
    clock = Clock()
    s2 = _server(keys, clock=clock, max_session_s=100.0, session_ttl_s=60.0)
    sid, _ = _open(s2)
    for _ in range(2):                      # pinged every 50 s: never idle for the ttl
        clock.t += 50
        _req(s2, {"op": "prepare", "sid": sid, "count": 0})
    clock.t += 50                           # 150 s after open, 50 s after the last use
    with pytest.raises(messages.ProtocolError, match="expired or unknown"):
        _req(s2, {"op": "prepare", "sid": sid, "count": 0})
