"""The verification server's state and checks (System C).

`Verifier` keeps its X25519 key pair, the registered devices (Ed25519 public
keys) and each device's last accepted counter in SQLite, so that replays stay
rejected across restarts and concurrent requests (the counter advances with a
single conditional UPDATE inside an immediate transaction).  `open` runs, in
order: the envelope's structure, device registration and signature
(:mod:`.envelope`); then, before any decryption, the timestamp window and a
read of the device's counter (a replay is refused without decrypting); the key
capsule and image tag; the first factor recomputed from the decrypted image and compared within the stated
tolerance (:func:`pyimgenc.factor.first.compare`; a callable can replace it),
the registered face of the device's account when there is one, and only then
advances the counter and writes the deduction record in one transaction, so a
rejected envelope changes no state.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .envelope import EnvelopeError, open_envelope

DEFAULT_WINDOW_S = 300  # accepted clock skew / transit time of a capture

_SCHEMA = """
CREATE TABLE IF NOT EXISTS server (id INTEGER PRIMARY KEY CHECK (id = 1), x25519_private BLOB NOT NULL,
                                   rsa_private BLOB);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, ed25519_public BLOB NOT NULL, last_counter INTEGER NOT NULL DEFAULT -1);
CREATE TABLE IF NOT EXISTS faces (device_id TEXT PRIMARY KEY, embedding TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, counter INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, model TEXT NOT NULL,
    image_sha256 TEXT NOT NULL, factor_distance TEXT NOT NULL, face_score REAL);
"""


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
    """Verification server state in one SQLite file.

    Args:
        db_path: SQLite database (created by :meth:`create`).
        check_first_factor: ``f(image, claimed_first_factor, model) -> truthy``; the
            recomputation of the first security factor from the decrypted image
            (default :func:`recompute_first_factor`).
        face_threshold: cosine threshold of the face match (default: the calibrated one).
        window_s: accepted |server time - capture time| in seconds.
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(self, db_path: str | Path, check_first_factor: FirstFactorCheck | None = None, *,
                 window_s: float = DEFAULT_WINDOW_S, clock: Callable[[], float] = time.time,
                 face_threshold: float | None = None):
        self.db_path = str(db_path)
        if not Path(self.db_path).is_file():
            raise FileNotFoundError(f"no verifier database at {self.db_path}; use Verifier.create")
        if check_first_factor is None:
            check_first_factor = recompute_first_factor
        if not callable(check_first_factor):
            raise TypeError("check_first_factor must be callable")
        self._check = check_first_factor
        self.face_threshold = face_threshold
        self.window_s = float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript(_SCHEMA)  # adds tables a database from an older version lacks
            cols = {r[1] for r in db.execute("PRAGMA table_info(server)")}
            if "rsa_private" not in cols:  # databases from before the RSA-OAEP option
                db.execute("ALTER TABLE server ADD COLUMN rsa_private BLOB")
            row = db.execute("SELECT x25519_private, rsa_private FROM server WHERE id = 1").fetchone()
        if row is None:
            raise ValueError(f"{self.db_path} holds no server key")
        self._key = X25519PrivateKey.from_private_bytes(row[0])
        self._rsa = serialization.load_der_private_key(row[1], None) if row[1] else None

    @classmethod
    def create(cls, db_path: str | Path, check_first_factor: FirstFactorCheck | None = None,
               *, rsa_bits: int | None = None, **kw) -> "Verifier":
        """Create the database with a fresh server key pair (refuses to overwrite one).

        ``rsa_bits`` (>= 3072) also makes an RSA key for terminals that seal with RSA-OAEP.
        """
        from .envelope import MIN_RSA_BITS
        if rsa_bits is not None and rsa_bits < MIN_RSA_BITS:
            raise ValueError(f"rsa_bits must be at least {MIN_RSA_BITS}, got {rsa_bits}")
        path = Path(db_path)
        if path.exists():
            raise FileExistsError(f"{path} exists; open it with Verifier(...) instead")
        db = sqlite3.connect(path)
        try:
            db.executescript(_SCHEMA)
            raw = X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
            rsa_der = None
            if rsa_bits:
                from cryptography.hazmat.primitives.asymmetric import rsa
                rsa_der = rsa.generate_private_key(65537, rsa_bits).private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            db.execute("INSERT INTO server (id, x25519_private, rsa_private) VALUES (1, ?, ?)", (raw, rsa_der))
            db.commit()
        finally:
            db.close()
        return cls(path, check_first_factor, **kw)

    @contextmanager
    def _db(self):
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

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
        if not isinstance(device_id, str) or not device_id:
            raise ValueError("device_id must be a non-empty str")
        if not isinstance(public_key, Ed25519PublicKey):
            raise TypeError("public_key must be an Ed25519PublicKey")
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        with self._lock, self._db() as db:
            db.execute("INSERT INTO devices (device_id, ed25519_public) VALUES (?, ?) "
                       "ON CONFLICT(device_id) DO UPDATE SET ed25519_public = excluded.ed25519_public",
                       (device_id, raw))

    def _device_key(self, device_id: str) -> Ed25519PublicKey | None:
        with self._db() as db:
            row = db.execute("SELECT ed25519_public FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return Ed25519PublicKey.from_public_bytes(row[0]) if row else None

    def last_counter(self, device_id: str) -> int | None:
        """The last accepted counter of a device (-1: none yet; None: unknown device)."""
        with self._db() as db:
            row = db.execute("SELECT last_counter FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return row[0] if row else None

    def register_face(self, device_id: str, image: np.ndarray) -> None:
        """Register the account holder's face for a device; later captures must match it."""
        from . import faces
        if self.last_counter(device_id) is None:
            raise ValueError(f"unknown device {device_id!r}; register the device first")
        emb = faces.embed([image])[0]
        with self._lock, self._db() as db:
            db.execute("INSERT INTO faces (device_id, embedding) VALUES (?, ?) ON CONFLICT(device_id) "
                       "DO UPDATE SET embedding = excluded.embedding", (device_id, json.dumps(emb.tolist())))

    def _face(self, device_id: str) -> np.ndarray | None:
        with self._db() as db:
            row = db.execute("SELECT embedding FROM faces WHERE device_id = ?", (device_id,)).fetchone()
        return np.array(json.loads(row[0])) if row else None

    def records(self, device_id: str | None = None) -> list[dict]:
        """The deduction records of approved captures, oldest first."""
        q = "SELECT * FROM records" + (" WHERE device_id = ?" if device_id else "") + " ORDER BY record_id"
        with self._db() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(q, (device_id,) if device_id else ())]

    def open(self, envelope: bytes) -> Verified:
        """Verify and decrypt one envelope; see the module docstring for the order of checks.

        Raises:
            VerificationError: ``reason`` is an envelope reason (``bad_signature``,
                ``unknown_device``, ...) or ``stale_timestamp``, ``first_factor_error``,
                ``first_factor_mismatch``, ``face_mismatch``, ``replayed_counter``.
        """
        def fresh(sf) -> None:  # after the signature, before any decryption or model work
            skew = abs(self._clock() - sf.timestamp_ms / 1000.0)
            if skew > self.window_s:
                raise VerificationError("stale_timestamp", f"capture is {skew:.0f} s from the server clock")
            last = self.last_counter(sf.device_info)
            if last is not None and sf.counter <= last:  # early refusal; the UPDATE below decides
                raise VerificationError("replayed_counter", f"counter {sf.counter} is not above the last accepted one")

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
            raise VerificationError("first_factor_mismatch",
                                    "the image does not reproduce its first factor" + (f" ({why})" if why else ""))
        face_score = None
        registered = self._face(sf.device_info)
        if registered is not None:
            from . import faces
            face_score = float(faces.similarity(faces.embed([opened.image])[0], registered))
            thr = faces.threshold() if self.face_threshold is None else self.face_threshold
            if face_score < thr:
                raise VerificationError("face_mismatch", f"similarity {face_score:.3f} below {thr:.3f}")
        distances = getattr(verdict, "distances", {})
        record = {"device_id": sf.device_info, "counter": sf.counter, "timestamp_ms": sf.timestamp_ms,
                  "received_ms": int(self._clock() * 1000), "model": opened.model,
                  "image_sha256": hashlib.sha256(opened.image.data).hexdigest(),
                  "factor_distance": json.dumps(distances, sort_keys=True, default=float),
                  "face_score": face_score}
        with self._lock, self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # serialises with other processes on the same file
            try:
                cur = db.execute("UPDATE devices SET last_counter = ? WHERE device_id = ? AND last_counter < ?",
                                 (sf.counter, sf.device_info, sf.counter))
                changed = cur.rowcount
                if changed == 1:
                    cur = db.execute("INSERT INTO records (device_id, counter, timestamp_ms, received_ms, model, "
                                     "image_sha256, factor_distance, face_score) VALUES "
                                     "(:device_id, :counter, :timestamp_ms, :received_ms, :model, :image_sha256, "
                                     ":factor_distance, :face_score)", record)
                    record["record_id"] = cur.lastrowid
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if changed != 1:
            raise VerificationError("replayed_counter", f"counter {sf.counter} is not above the last accepted one")
        return Verified(opened.image, sf.device_info, sf.counter, sf.timestamp_ms, opened.model, record)
