"""The verification server's state and checks (System C).

`Verifier` keeps its X25519 key pair, the registered devices (Ed25519 public
keys) and each device's last accepted counter in a SQLite file or a PostgreSQL
database (:mod:`.store`; several verifier processes may share one PostgreSQL), so
that replays stay rejected across restarts, processes and concurrent requests (the
counter advances with a single conditional UPDATE inside one write transaction).  `open` runs, in
order: the envelope's structure, device registration and signature
(:mod:`.envelope`); then, before any decryption, the timestamp window and a
read of the device's counter (a replay is refused without decrypting); the key
capsule and image tag; the first factor recomputed from the decrypted image and compared within the stated
tolerance (:func:`pyimgenc.factor.first.compare`; a callable can replace it),
the registered face of the device's account when there is one, and only then
advances the counter and writes the deduction record in one transaction.  A
rejected envelope changes no counter, except a counted failure (below), which spends
its own counter so that its bytes replayed are refused before any decryption.

**No oracle for a stolen terminal.**  A failed face match or first-factor mismatch of a
correctly signed envelope is written to the ``failures`` table with its scores (and to
the ``pyimgenc.verifier`` log); the caller's exception carries the reason code, and
the HTTP service passes on nothing else.  Each such failure spends the envelope's
counter (a replay of a rejected envelope is ``replayed_counter``, refused before any
decryption and not counted), and a device never has more verifications in flight in one
process than failures left before its lock (``busy`` beyond), so at most
``max_failures`` failures per process land before the lock.  After ``max_failures`` such
failures within ``failure_window_s`` the device is **locked** (persisted in the database, so restarts
keep it locked): every further envelope of it is refused with ``device_locked``, right
after the signature and before any decryption, until an admin calls
:meth:`Verifier.unlock_device`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .envelope import EnvelopeError, open_envelope
from .store import Store, open_store

DEFAULT_WINDOW_S = 300  # accepted clock skew / transit time of a capture
DEFAULT_MAX_FAILURES = 5          # failed matches of one device within the window before it is locked
DEFAULT_FAILURE_WINDOW_S = 3600.0
log = logging.getLogger("pyimgenc.verifier")
# the failures of device row ``d`` that count towards its lock: in the window (one ? parameter,
# :meth:`Verifier._window_start_ms`) and since its last unlock
_RECENT_FAILURES = ("(SELECT COUNT(*) FROM failures f WHERE f.device_id = d.device_id AND f.at_ms >= ? "
                    "AND f.at_ms >= d.count_from_ms)")

class VerificationError(ValueError):
    """A rejected envelope; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    """An accepted capture."""

    image: np.ndarray
    device_id: str
    counter: int
    timestamp_ms: int
    model: str
    record: dict = field(default_factory=dict)  # the deduction record written on approval


FirstFactorCheck = Callable[[np.ndarray, bytes, str], object]


def recompute_first_factor(image: np.ndarray, claimed: bytes, model: str):
    """Default check: recompute the first factor exactly and compare within the default tolerance."""
    from .first import compare, first_factor
    return compare(claimed, first_factor(image, model))


class Verifier:
    """Verification server state in a SQLite file or a PostgreSQL database.

    Args:
        db: a SQLite file path or a ``postgresql://`` DSN (created by :meth:`create`).
        check_first_factor: ``f(image, claimed_first_factor, model) -> truthy``; the
            recomputation of the first security factor from the decrypted image
            (default :func:`recompute_first_factor`).
        face_threshold: cosine threshold of the face match (default: the calibrated one).
        window_s: accepted |server time - capture time| in seconds.
        max_failures: failed face matches and first-factor mismatches of one device within
            ``failure_window_s`` that lock it (until :meth:`unlock_device`).
        failure_window_s: the window those failures are counted in, seconds.
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(self, db: str | Path, check_first_factor: FirstFactorCheck | None = None, *,
                 window_s: float = DEFAULT_WINDOW_S, clock: Callable[[], float] = time.time,
                 face_threshold: float | None = None, max_failures: int = DEFAULT_MAX_FAILURES,
                 failure_window_s: float = DEFAULT_FAILURE_WINDOW_S):
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
            raise ValueError(f"max_failures must be a positive int, got {max_failures!r}")
        if not failure_window_s > 0:
            raise ValueError(f"failure_window_s must be positive, got {failure_window_s!r}")
        self.max_failures, self.failure_window_s = max_failures, float(failure_window_s)
        if check_first_factor is None:
            check_first_factor = recompute_first_factor
        if not callable(check_first_factor):
            raise TypeError("check_first_factor must be callable")
        self._check = check_first_factor
        self.face_threshold = face_threshold
        self.window_s = float(window_s)
        self._clock = clock
        self._inflight: dict[str, int] = {}       # verifications in flight per device, this process
        self._inflight_lock = threading.Lock()
        self._store: Store = db if isinstance(db, Store) else open_store(db)
        self.db_path = self._store.location
        with self._store.tx() as ex:
            row = ex("SELECT x25519_private, rsa_private FROM server WHERE id = 1").fetchone()
        if row is None:
            raise ValueError(f"{self.db_path} holds no server key")
        self._key = X25519PrivateKey.from_private_bytes(bytes(row[0]))
        self._rsa = serialization.load_der_private_key(bytes(row[1]), None) if row[1] else None

    @classmethod
    def create(cls, db: str | Path, check_first_factor: FirstFactorCheck | None = None,
               *, rsa_bits: int | None = None, **kw) -> "Verifier":
        """Create the database (a SQLite file or the tables of a PostgreSQL DSN) with a fresh
        server key pair; refuses to overwrite one.

        ``rsa_bits`` (>= 3072) also makes an RSA key for terminals that seal with RSA-OAEP.
        """
        from .envelope import MIN_RSA_BITS
        if rsa_bits is not None and rsa_bits < MIN_RSA_BITS:
            raise ValueError(f"rsa_bits must be at least {MIN_RSA_BITS}, got {rsa_bits}")
        store = open_store(db, create=True)
        raw = X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        rsa_der = None
        if rsa_bits:
            from cryptography.hazmat.primitives.asymmetric import rsa
            rsa_der = rsa.generate_private_key(65537, rsa_bits).private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with store.tx(write=True) as ex:
            if ex("SELECT COUNT(*) FROM server").fetchone()[0]:
                raise FileExistsError(f"{store.location} already holds a verifier")
            ex("INSERT INTO server (id, x25519_private, rsa_private) VALUES (1, ?, ?)", (raw, rsa_der))
        if store.kind == "sqlite":
            from ..pki import restrict
            restrict(store.location)         # the server's private key lives in this file
        return cls(store, check_first_factor, **kw)

    def close(self) -> None:
        """Release the database connections (PostgreSQL's pool)."""
        self._store.close()

    @property
    def public_key(self) -> X25519PublicKey:
        """The key terminals seal to."""
        return self._key.public_key()

    @property
    def rsa_public_key(self):
        """The RSA-OAEP key (None unless the server was created with ``rsa_bits``)."""
        return self._rsa.public_key() if self._rsa else None

    def register_device(self, device_id: str, public_key: Ed25519PublicKey) -> None:
        """Register (or re-key) a terminal; its counter history is kept."""
        if not isinstance(device_id, str):
            raise ValueError("device_id must be a str")
        raw_id = device_id.encode("utf-8")
        if not 1 <= len(raw_id) <= 255 or "\x00" in device_id:   # what a second factor can carry
            raise ValueError("device_id must be 1..255 UTF-8 bytes without NUL")
        if not isinstance(public_key, Ed25519PublicKey):
            raise TypeError("public_key must be an Ed25519PublicKey")
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        with self._store.tx(write=True) as ex:
            ex("INSERT INTO devices (device_id, ed25519_public) VALUES (?, ?) "
               "ON CONFLICT(device_id) DO UPDATE SET ed25519_public = excluded.ed25519_public", (device_id, raw))

    def _device_key(self, device_id: str) -> Ed25519PublicKey | None:
        with self._store.tx() as ex:
            row = ex("SELECT ed25519_public FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return Ed25519PublicKey.from_public_bytes(bytes(row[0])) if row else None

    def last_counter(self, device_id: str) -> int | None:
        """The last accepted counter of a device (-1: none yet; None: unknown device)."""
        with self._store.tx() as ex:
            row = ex("SELECT last_counter FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return row[0] if row else None

    def register_face(self, device_id: str, image: np.ndarray) -> None:
        """Register the account holder's face for a device; later captures must match it."""
        from . import faces
        if self.last_counter(device_id) is None:
            raise ValueError(f"unknown device {device_id!r}; register the device first")
        emb = faces.embed([image])[0]
        with self._store.tx(write=True) as ex:
            ex("INSERT INTO faces (device_id, embedding) VALUES (?, ?) ON CONFLICT(device_id) "
               "DO UPDATE SET embedding = excluded.embedding", (device_id, json.dumps(emb.tolist())))

    def _face(self, device_id: str) -> np.ndarray | None:
        with self._store.tx() as ex:
            row = ex("SELECT embedding FROM faces WHERE device_id = ?", (device_id,)).fetchone()
        return np.array(json.loads(row[0])) if row else None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _window_start_ms(self) -> int:
        """Failures at or after this time (and after the device's last unlock) count towards its lock."""
        return self._now_ms() - int(self.failure_window_s * 1000)

    def _fail(self, device_id: str, counter: int, reason: str, detail: str) -> None:
        """Record a counted failure (scores stay here and in the log) and lock the device past the limit.

        The failed envelope's counter is spent (``last_counter`` advances to it), so the same
        bytes replayed are refused as ``replayed_counter`` before any decryption: nobody who
        merely saw a rejected envelope can count failures against the device.
        """
        now = self._now_ms()
        with self._store.tx(write=True) as ex:
            ex("SELECT count_from_ms FROM devices WHERE device_id = ?" + self._store.for_update,
               (device_id,))                           # the device row, locked: failures count one at a time
            ex("UPDATE devices SET last_counter = ? WHERE device_id = ? AND last_counter < ?",
               (counter, device_id, counter))
            ex("INSERT INTO failures (device_id, at_ms, reason, detail) VALUES (?, ?, ?, ?)",
               (device_id, now, reason, detail))
            n = ex("SELECT " + _RECENT_FAILURES + " FROM devices d WHERE d.device_id = ?",
                   (self._window_start_ms(), device_id)).fetchone()[0]
            if n >= self.max_failures:
                ex("UPDATE devices SET locked_ms = ? WHERE device_id = ? AND locked_ms IS NULL", (now, device_id))
        log.warning("device %s: %s (%s); %d failure(s) in the window%s", device_id, reason, detail, n,
                    ", device locked" if n >= self.max_failures else "")

    def _locked(self, device_id: str) -> bool:
        with self._store.tx() as ex:
            row = ex("SELECT locked_ms FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return row is not None and row[0] is not None

    def unlock_device(self, device_id: str) -> None:
        """Admin: unlock a device; failures before now no longer count towards the limit."""
        with self._store.tx(write=True) as ex:
            changed = ex("UPDATE devices SET locked_ms = NULL, count_from_ms = ? WHERE device_id = ?",
                         (self._now_ms() + 1, device_id)).rowcount
        if changed != 1:
            raise KeyError(f"unknown device {device_id!r}")
        log.warning("device %s unlocked by an admin", device_id)

    def devices(self) -> list[dict]:
        """Admin: every device with its last counter, lock state and failures in the current window."""
        with self._store.tx() as ex:
            rows = ex("SELECT d.device_id, d.last_counter, d.locked_ms, " + _RECENT_FAILURES + " FROM devices d "
                      "ORDER BY d.device_id", (self._window_start_ms(),)).fetchall()
        return [{"device_id": r[0], "last_counter": r[1], "locked": r[2] is not None, "locked_ms": r[2],
                 "recent_failures": r[3]} for r in rows]

    def failures(self, device_id: str | None = None) -> list[dict]:
        """Admin: the counted failures (with their scores), oldest first."""
        q = "SELECT * FROM failures" + (" WHERE device_id = ?" if device_id else "") + " ORDER BY failure_id"
        with self._store.tx() as ex:
            return ex.rows(q, (device_id,) if device_id else ())

    def records(self, device_id: str | None = None) -> list[dict]:
        """The deduction records of approved captures, oldest first."""
        q = "SELECT * FROM records" + (" WHERE device_id = ?" if device_id else "") + " ORDER BY record_id"
        with self._store.tx() as ex:
            return ex.rows(q, (device_id,) if device_id else ())

    def open(self, envelope: bytes) -> Verified:
        """Verify and decrypt one envelope; see the module docstring for the order of checks.

        Raises:
            VerificationError: ``reason`` is an envelope reason (``bad_signature``,
                ``unknown_device``, ...) or ``device_locked``, ``stale_timestamp``,
                ``first_factor_error``, ``first_factor_mismatch``, ``face_mismatch``,
                ``replayed_counter``, ``busy`` (as many verifications of this device in
                flight as failures left before its lock).  The two mismatches are counted
                towards the lockout and spend the envelope's counter.
        """
        def fresh(sf) -> None:  # after the signature, before any decryption or model work
            with self._inflight_lock:       # read and reserve together: a failure lands before its release
                with self._store.tx() as ex:
                    row = ex("SELECT d.last_counter, d.locked_ms, " + _RECENT_FAILURES + " FROM devices d "
                             "WHERE d.device_id = ?", (self._window_start_ms(), sf.device_info)).fetchone()
                if row is not None and row[1] is not None:
                    raise VerificationError("device_locked", "too many failed matches; an admin must unlock the device")
                if row is not None:     # every verification in flight might fail: never more than the limit
                    if row[2] + self._inflight.get(sf.device_info, 0) >= self.max_failures:
                        raise VerificationError("busy", "this device has as many verifications in flight as "
                                                        "failures left before its lock")
                    self._inflight[sf.device_info] = self._inflight.get(sf.device_info, 0) + 1
                    held.append(sf.device_info)
            skew = abs(self._clock() - sf.timestamp_ms / 1000.0)
            if skew > self.window_s:
                raise VerificationError("stale_timestamp", f"capture is {skew:.0f} s from the server clock")
            last = row[0] if row else None
            if last is not None and sf.counter <= last:  # early refusal; the UPDATE below decides
                raise VerificationError("replayed_counter", f"counter {sf.counter} is not above the last accepted one")

        held: list[str] = []
        try:
            return self._open(envelope, fresh)
        finally:
            for dev in held:
                with self._inflight_lock:
                    self._inflight[dev] -= 1
                    if not self._inflight[dev]:
                        del self._inflight[dev]

    def _open(self, envelope: bytes, fresh) -> Verified:
        try:
            opened = open_envelope(envelope, (self._key, self._rsa) if self._rsa else self._key, self._device_key,
                                   after_signature=fresh)
        except EnvelopeError as exc:
            raise VerificationError(exc.reason, str(exc)) from None
        sf = opened.second
        try:
            verdict = self._check(opened.image, opened.first_factor, opened.model)
        except Exception as exc:  # a model failure must not pass as a match
            raise VerificationError("first_factor_error", f"{type(exc).__name__}: {exc}") from None
        if not verdict:
            why = getattr(verdict, "reason", "")
            detail = "the image does not reproduce its first factor" + (f" ({why})" if why else "")
            self._fail(sf.device_info, sf.counter, "first_factor_mismatch", detail)
            raise VerificationError("first_factor_mismatch", detail)
        face_score = None
        registered = self._face(sf.device_info)
        if registered is not None:
            from . import faces
            face_score = float(faces.similarity(faces.embed([opened.image])[0], registered))
            thr = faces.threshold() if self.face_threshold is None else self.face_threshold
            if face_score < thr:
                detail = f"similarity {face_score:.3f} below {thr:.3f}"
                self._fail(sf.device_info, sf.counter, "face_mismatch", detail)
                raise VerificationError("face_mismatch", detail)
        distances = getattr(verdict, "distances", {})
        record = {"device_id": sf.device_info, "counter": sf.counter, "timestamp_ms": sf.timestamp_ms,
                  "received_ms": self._now_ms(), "model": opened.model,
                  "image_sha256": hashlib.sha256(opened.image.data).hexdigest(),
                  "factor_distance": json.dumps(distances, sort_keys=True, default=float),
                  "face_score": face_score}
        with self._store.tx(write=True) as ex:   # one transaction: the counter and the record together
            changed = ex("UPDATE devices SET last_counter = ? WHERE device_id = ? AND last_counter < ? "
                         "AND locked_ms IS NULL", (sf.counter, sf.device_info, sf.counter)).rowcount
            if changed == 1:
                record["record_id"] = ex(
                    "INSERT INTO records (device_id, counter, timestamp_ms, received_ms, model, image_sha256, "
                    "factor_distance, face_score) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING record_id",
                    [record[k] for k in ("device_id", "counter", "timestamp_ms", "received_ms", "model",
                                         "image_sha256", "factor_distance", "face_score")]).fetchone()[0]
        if changed != 1:
            if self._locked(sf.device_info):       # locked while this one was being checked
                raise VerificationError("device_locked", "too many failed matches; an admin must unlock the device")
            raise VerificationError("replayed_counter", f"counter {sf.counter} is not above the last accepted one")
        return Verified(opened.image, sf.device_info, sf.counter, sf.timestamp_ms, opened.model, record)
