"""The verification server's state and checks (System C, seed 002).

`Verifier` keeps its X25519 key pair, the registered devices (Ed25519 public
keys) and each device's last accepted counter in SQLite, so that replays stay
rejected across restarts and concurrent requests (the counter advances with a
single conditional UPDATE inside an immediate transaction).  `open` runs, in
order: the envelope's own checks (structure, registration, signature, key
capsule, image tag — :mod:`.envelope`), the timestamp window, the first
factor recomputed from the decrypted image (a model-supplied callable), and
only then advances the counter, so a rejected envelope changes no state.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .envelope import EnvelopeError, open_envelope

DEFAULT_WINDOW_S = 300  # accepted clock skew / transit time of a capture

_SCHEMA = """
CREATE TABLE IF NOT EXISTS server (id INTEGER PRIMARY KEY CHECK (id = 1), x25519_private BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, ed25519_public BLOB NOT NULL, last_counter INTEGER NOT NULL DEFAULT -1);
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


FirstFactorCheck = Callable[[np.ndarray, bytes, str], bool]


class Verifier:
    """Verification server state in one SQLite file.

    Args:
        db_path: SQLite database (created by :meth:`create`).
        check_first_factor: ``f(image, claimed_first_factor, model) -> bool``; the
            recomputation of the first security factor from the decrypted image.
        window_s: accepted |server time - capture time| in seconds.
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(self, db_path: str | Path, check_first_factor: FirstFactorCheck, *,
                 window_s: float = DEFAULT_WINDOW_S, clock: Callable[[], float] = time.time):
        self.db_path = str(db_path)
        if not Path(self.db_path).is_file():
            raise FileNotFoundError(f"no verifier database at {self.db_path}; use Verifier.create")
        if not callable(check_first_factor):
            raise TypeError("check_first_factor must be callable")
        self._check = check_first_factor
        self.window_s = float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        with self._db() as db:
            row = db.execute("SELECT x25519_private FROM server WHERE id = 1").fetchone()
        if row is None:
            raise ValueError(f"{self.db_path} holds no server key")
        self._key = X25519PrivateKey.from_private_bytes(row[0])

    @classmethod
    def create(cls, db_path: str | Path, check_first_factor: FirstFactorCheck, **kw) -> "Verifier":
        """Create the database with a fresh server key pair (refuses to overwrite one)."""
        path = Path(db_path)
        if path.exists():
            raise FileExistsError(f"{path} exists; open it with Verifier(...) instead")
        db = sqlite3.connect(path)
        try:
            db.executescript(_SCHEMA)
            raw = X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
            db.execute("INSERT INTO server (id, x25519_private) VALUES (1, ?)", (raw,))
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

    def open(self, envelope: bytes) -> Verified:
        """Verify and decrypt one envelope; see the module docstring for the order of checks.

        Raises:
            VerificationError: ``reason`` is an envelope reason (``bad_signature``,
                ``unknown_device``, ...) or ``stale_timestamp``, ``first_factor_mismatch``,
                ``replayed_counter``.
        """
        try:
            opened = open_envelope(envelope, self._key, self._device_key)
        except EnvelopeError as exc:
            raise VerificationError(exc.reason, str(exc)) from None
        sf = opened.second
        skew = abs(self._clock() - sf.timestamp_ms / 1000.0)
        if skew > self.window_s:
            raise VerificationError("stale_timestamp", f"capture is {skew:.0f} s from the server clock")
        try:
            ok = bool(self._check(opened.image, opened.first_factor, opened.model))
        except Exception as exc:  # a model failure must not pass as a match
            raise VerificationError("first_factor_error", f"{type(exc).__name__}: {exc}") from None
        if not ok:
            raise VerificationError("first_factor_mismatch", "the image does not reproduce its first factor")
        with self._lock, self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # serialises with other processes on the same file
            try:
                cur = db.execute("UPDATE devices SET last_counter = ? WHERE device_id = ? AND last_counter < ?",
                                 (sf.counter, sf.device_info, sf.counter))
                changed = cur.rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if changed != 1:
            raise VerificationError("replayed_counter", f"counter {sf.counter} is not above the last accepted one")
        return Verified(opened.image, sf.device_info, sf.counter, sf.timestamp_ms, opened.model)
