"""Verifier: acceptance, each rejection with its reason, no state change on rejection,
replay protection that survives a restart and concurrent requests."""
from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from pyimgenc.factor import SecondFactor, VerificationError, Verifier, seal

NOW = 1_800_000_000.0


def digest_factor(image: np.ndarray) -> bytes:
    """Test double for the model's first factor (the real one is the VAE/GAN of pyimgenc.factor.first)."""
    return hashlib.sha256(image.tobytes()).digest()


def check(image, claimed, model):
    return digest_factor(image) == claimed


@pytest.fixture()
def face(faces):
    return faces[11][:32, :32]


@pytest.fixture()
def setup(db):
    """A verifier on each store (SQLite file, PostgreSQL database: tests/factor/conftest.py)."""
    srv = Verifier.create(db, check, clock=lambda: NOW)
    dev = Ed25519PrivateKey.generate()
    srv.register_device("dev-1", dev.public_key())
    yield srv, dev, db
    srv.close()


def env(img, srv_pk, dev, counter, ts=NOW, first=None, device="dev-1"):
    sf = SecondFactor.new(device, counter, int(ts * 1000))
    return seal(img, digest_factor(img) if first is None else first, sf, srv_pk, dev)


def test_accepts_and_returns_exact_image(setup, face):
    srv, dev, _ = setup
    out = srv.open(env(face, srv.public_key, dev, 1))
    assert np.array_equal(out.image, face) and out.device_id == "dev-1" and out.counter == 1
    assert srv.last_counter("dev-1") == 1


def test_replay_rejected_even_after_restart(setup, face):
    srv, dev, path = setup
    e = env(face, srv.public_key, dev, 5)
    srv.open(e)
    with pytest.raises(VerificationError, match="replayed_counter"):
        srv.open(e)
    restarted = Verifier(path, check, clock=lambda: NOW)
    with pytest.raises(VerificationError, match="replayed_counter"):
        restarted.open(e)
    with pytest.raises(VerificationError, match="replayed_counter"):  # reordered: older counter
        restarted.open(env(face, restarted.public_key, dev, 4))
    assert restarted.open(env(face, restarted.public_key, dev, 6)).counter == 6


@pytest.mark.parametrize("case, reason", [
    ("stale", "stale_timestamp"), ("future", "stale_timestamp"),
    ("unknown", "unknown_device"), ("wrong_server", "bad_capsule"), ("wrong_device_key", "bad_signature"),
    ("tampered", "bad_signature"), ("truncated", "truncated"), ("garbage", "bad_magic"),
])
def test_rejections_change_no_state(setup, face, case, reason):
    srv, dev, _ = setup
    srv.open(env(face, srv.public_key, dev, 1))
    e = {
        "stale": lambda: env(face, srv.public_key, dev, 2, ts=NOW - 3600),
        "future": lambda: env(face, srv.public_key, dev, 2, ts=NOW + 3600),
        "unknown": lambda: env(face, srv.public_key, dev, 2, device="dev-9"),
        "wrong_server": lambda: env(face, X25519PrivateKey.generate().public_key(), dev, 2),
        "wrong_device_key": lambda: env(face, srv.public_key, Ed25519PrivateKey.generate(), 2),
        "tampered": lambda: (lambda b: b[:40] + bytes([b[40] ^ 0x80]) + b[41:])(env(face, srv.public_key, dev, 2)),
        "truncated": lambda: env(face, srv.public_key, dev, 2)[:-10][:30],
        "garbage": lambda: b"\xff" * 100,
    }[case]()
    with pytest.raises(VerificationError) as info:
        srv.open(e)
    assert info.value.reason == reason
    assert srv.last_counter("dev-1") == 1
    assert srv.open(env(face, srv.public_key, dev, 2)).counter == 2  # still serving


def test_model_failure_is_a_rejection(tmp_path, face):
    def broken(image, claimed, model):
        raise RuntimeError("model crashed")
    srv = Verifier.create(tmp_path / "b.sqlite", broken, clock=lambda: NOW)
    dev = Ed25519PrivateKey.generate()
    srv.register_device("dev-1", dev.public_key())
    with pytest.raises(VerificationError, match="first_factor_error"):
        srv.open(env(face, srv.public_key, dev, 1))
    assert srv.last_counter("dev-1") == -1


def test_concurrent_duplicates_accept_exactly_once(setup, face):
    srv, dev, path = setup
    e = env(face, srv.public_key, dev, 7)
    other = Verifier(path, check, clock=lambda: NOW)  # a second server process' view
    results = []

    def attempt(v):
        try:
            v.open(e)
            results.append("ok")
        except VerificationError as exc:
            results.append(exc.reason)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in (srv, other) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results.count("ok") == 1 and results.count("replayed_counter") == 7


def test_create_refuses_existing_and_open_refuses_missing(tmp_path):
    Verifier.create(tmp_path / "x.sqlite", check)
    with pytest.raises(FileExistsError):
        Verifier.create(tmp_path / "x.sqlite", check)
    with pytest.raises(FileNotFoundError):
        Verifier(tmp_path / "missing.sqlite", check)
    srv = Verifier(tmp_path / "x.sqlite", check)
    with pytest.raises(TypeError):
        srv.register_device("d", X25519PrivateKey.generate().public_key())
    import stat
    assert stat.S_IMODE((tmp_path / "x.sqlite").stat().st_mode) == 0o600    # it holds the server's private key


def test_postgres_create_refuses_existing_and_open_refuses_empty(pg_dsn):
    with pytest.raises(FileNotFoundError, match="holds no verifier"):
        Verifier(pg_dsn, check)
    Verifier.create(pg_dsn, check).close()
    with pytest.raises(FileExistsError, match="already holds a verifier"):
        Verifier.create(pg_dsn, check)
    v = Verifier(pg_dsn, check)
    assert v.last_counter("nobody") is None
    v.close()
    with pytest.raises(ConnectionError, match="unreachable"):
        Verifier("postgresql://nobody:secret@127.0.0.1:1/none", check)


def test_database_from_before_the_rsa_option_is_migrated(tmp_path):
    import sqlite3

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE server (id INTEGER PRIMARY KEY CHECK (id = 1), x25519_private BLOB NOT NULL);"
                     "CREATE TABLE devices (device_id TEXT PRIMARY KEY, ed25519_public BLOB NOT NULL, "
                     "last_counter INTEGER NOT NULL DEFAULT -1);")
    raw = X25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption())
    db.execute("INSERT INTO server (id, x25519_private) VALUES (1, ?)", (raw,))
    db.commit()
    db.close()
    v = Verifier(path, check)
    assert v.rsa_public_key is None and v.last_counter("nobody") is None


def test_failed_matches_lock_the_device_until_an_admin_unlocks_it(db, face):
    """No oracle for a stolen terminal: mismatches are counted per device; past the limit the device is
    locked (before any decryption, across restarts) until unlocked; the scores stay server-side."""
    now = [NOW]
    path = db
    srv = Verifier.create(path, check, clock=lambda: now[0], max_failures=3, failure_window_s=600)
    dev = Ed25519PrivateKey.generate()
    srv.register_device("dev-1", dev.public_key())
    c = iter(range(1, 1000))
    bad = lambda: env(face, srv.public_key, dev, next(c), ts=now[0], first=b"\x00" * 32)   # noqa: E731
    good = lambda: env(face, srv.public_key, dev, next(c), ts=now[0])                      # noqa: E731
    for _ in range(2):
        with pytest.raises(VerificationError, match="first_factor_mismatch"):
            srv.open(bad())
    now[0] += 700                                   # those two fall out of the window
    for _ in range(2):
        with pytest.raises(VerificationError, match="first_factor_mismatch"):
            srv.open(bad())
    assert srv.open(good()).counter > 0             # 2 in the window: still open
    with pytest.raises(VerificationError, match="first_factor_mismatch"):
        srv.open(bad())                             # the third in the window locks
    assert srv.devices() == [{"device_id": "dev-1", "last_counter": 6, "locked": True, "locked_ms": int(now[0] * 1000),
                              "recent_failures": 3}]
    restarted = Verifier(path, check, clock=lambda: now[0], max_failures=3, failure_window_s=600)
    for v in (srv, restarted):
        with pytest.raises(VerificationError) as ei:
            v.open(good())                          # a good capture too: locked means locked
        assert ei.value.reason == "device_locked"
    assert len(restarted.failures("dev-1")) == 5 and all(f["reason"] == "first_factor_mismatch"
                                                         for f in restarted.failures("dev-1"))
    restarted.unlock_device("dev-1")
    assert restarted.open(good()).counter > 0 and not restarted.devices()[0]["locked"]
    with pytest.raises(VerificationError, match="first_factor_mismatch"):
        restarted.open(bad())                       # failures before the unlock no longer count
    assert restarted.open(good()).counter > 0
    with pytest.raises(KeyError, match="unknown device"):
        restarted.unlock_device("dev-9")


def test_signature_failures_are_not_counted(setup, face):
    """Only correctly signed envelopes count: nobody without the device key can lock a device out."""
    srv, dev, _ = setup
    for i in range(10):
        with pytest.raises(VerificationError, match="bad_signature"):
            srv.open(env(face, srv.public_key, Ed25519PrivateKey.generate(), i + 1))
    assert srv.failures() == [] and not srv.devices()[0]["locked"]


def test_a_counted_failure_spends_its_counter_so_replays_cannot_lock_the_device(setup, face):
    """Attack review H1: an observer replays a rejected envelope; it must not count again."""
    srv, dev, _ = setup
    bad = env(face, srv.public_key, dev, 2, first=b"\x00" * 32)
    with pytest.raises(VerificationError, match="first_factor_mismatch"):
        srv.open(bad)
    assert srv.last_counter("dev-1") == 2
    for _ in range(10):                       # replays: refused before decryption, not counted
        with pytest.raises(VerificationError) as ei:
            srv.open(bad)
        assert ei.value.reason == "replayed_counter"
    assert len(srv.failures("dev-1")) == 1 and not srv.devices()[0]["locked"]
    assert srv.open(env(face, srv.public_key, dev, 3)).counter == 3    # the owner carries on


def test_no_more_failures_than_the_limit_land_however_many_are_in_flight(db, face):
    """Attack review M3: a stolen device key sends many bad envelopes at once; at most max_failures
    are judged (the rest: busy, or device_locked once the lock lands)."""
    srv = Verifier.create(db, check, clock=lambda: NOW, max_failures=3)
    dev = Ed25519PrivateKey.generate()
    srv.register_device("dev-1", dev.public_key())
    envs = [env(face, srv.public_key, dev, i + 1, first=b"\x00" * 32) for i in range(24)]
    out = []
    lock = threading.Lock()

    def go(e):
        try:
            srv.open(e)
            r = "ok"
        except VerificationError as exc:
            r = exc.reason
        with lock:
            out.append(r)
    threads = [threading.Thread(target=go, args=(e,)) for e in envs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out.count("first_factor_mismatch") <= 3 and len(srv.failures("dev-1")) <= 3
    assert set(out) <= {"first_factor_mismatch", "busy", "device_locked", "replayed_counter"}
    srv.close()


def test_device_ids_are_checked_at_registration(setup):
    srv, dev, _ = setup
    for bad in ("", "a\x00b", "x" * 256):
        with pytest.raises(ValueError, match="1..255 UTF-8 bytes"):
            srv.register_device(bad, dev.public_key())
