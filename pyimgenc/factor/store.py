"""Where the verifier keeps its state: one SQLite file, or a PostgreSQL database shared by
several verifier processes.

:func:`open_store` picks the backend from the location: a ``postgresql://`` (or
``postgres://``) DSN gives :class:`PostgresStore` (psycopg 3 with a connection pool,
``pip install 'pyimgenc[postgres]'``), anything else is a SQLite file path.  Both hold
the same tables with the same meaning; the verifier writes its SQL once (``?``
placeholders) and runs it through :meth:`Store.tx`:

* ``server``   the X25519 (and optional RSA) private key — one row;
* ``devices``  Ed25519 public key, last accepted counter, lock state, failures counted from;
* ``faces``    the registered face embedding of a device's account;
* ``records``  the deduction record of every approval, ``UNIQUE (device_id, counter)``;
* ``failures`` counted failed matches (with their scores: server-side only).

Write transactions serialise on what they touch: SQLite takes the file's write lock at
``BEGIN IMMEDIATE``; PostgreSQL row locks (``UPDATE`` and ``SELECT ... FOR UPDATE``,
:attr:`Store.for_update`) under READ COMMITTED, where a conditional ``UPDATE`` re-checks
its condition on the newest row version, so a counter advances exactly once however many
processes race.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS server (id INTEGER PRIMARY KEY CHECK (id = 1), x25519_private {blob} NOT NULL,
                                   rsa_private {blob});
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, ed25519_public {blob} NOT NULL, last_counter {int} NOT NULL DEFAULT -1,
    locked_ms {int}, count_from_ms {int} NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS faces (device_id TEXT PRIMARY KEY, embedding TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_id {serial}, device_id TEXT NOT NULL, counter {int} NOT NULL,
    timestamp_ms {int} NOT NULL, received_ms {int} NOT NULL, model TEXT NOT NULL,
    image_sha256 TEXT NOT NULL, factor_distance TEXT NOT NULL, face_score {real});
CREATE TABLE IF NOT EXISTS failures (
    failure_id {serial}, device_id TEXT NOT NULL, at_ms {int} NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS failures_by_device ON failures (device_id, at_ms);
CREATE UNIQUE INDEX IF NOT EXISTS records_device_counter ON records (device_id, counter);
"""
# one schema, each dialect's names for its column types
_SQLITE_SCHEMA = _SCHEMA.format(blob="BLOB", int="INTEGER", real="REAL", serial="INTEGER PRIMARY KEY AUTOINCREMENT")
_POSTGRES_SCHEMA = _SCHEMA.format(blob="BYTEA", int="BIGINT", real="DOUBLE PRECISION", serial="BIGSERIAL PRIMARY KEY")
_SQLITE_MIGRATIONS = {   # columns a database from an older version lacks: table -> {column: declaration}
    "server": {"rsa_private": "BLOB"},
    "devices": {"locked_ms": "INTEGER", "count_from_ms": "INTEGER NOT NULL DEFAULT 0"},
}

class _Tx:
    """``ex(sql, params)`` inside one transaction; ``sql`` uses ``?`` placeholders."""

    def __init__(self, cur, placeholder: str):
        self._cur, self._ph = cur, placeholder

    def __call__(self, sql: str, params=()):
        self._cur.execute(sql if self._ph == "?" else sql.replace("?", self._ph), tuple(params))
        return self._cur

    def rows(self, sql: str, params=()) -> list[dict]:
        cur = self(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


class Store:
    """The verifier's database (see the module docstring)."""

    kind = ""
    for_update = ""      # appended to a SELECT that must lock its rows until the transaction ends
    location = ""

    def tx(self, write: bool = False):
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the database holds a server key."""
        with self.tx() as ex:
            return ex("SELECT COUNT(*) FROM server").fetchone()[0] == 1

    def close(self) -> None:
        pass


class SQLiteStore(Store):
    """One SQLite file; a fresh connection per transaction (safe across threads and processes)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, create: bool = False):
        self.location = str(path)
        if not create and not Path(self.location).is_file():
            raise FileNotFoundError(f"no verifier database at {self.location}; use Verifier.create")
        if create and Path(self.location).exists():
            raise FileExistsError(f"{self.location} exists; open it with Verifier(...) instead")
        db = sqlite3.connect(self.location, timeout=30)
        try:
            for table, cols in _SQLITE_MIGRATIONS.items():
                have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                if have:
                    for col, decl in cols.items():
                        if col not in have:
                            db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {decl}")
            db.executescript(_SQLITE_SCHEMA)
            db.commit()
        finally:
            db.close()

    @contextmanager
    def tx(self, write: bool = False):
        db = sqlite3.connect(self.location, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")   # IMMEDIATE: the write lock now
            try:
                yield _Tx(db.cursor(), "?")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()


class PostgresStore(Store):
    """A PostgreSQL database (psycopg 3, a pool of ``pool_size`` connections)."""

    kind = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, dsn: str, pool_size: int = 8):
        try:
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise ImportError("a postgresql:// verifier needs psycopg 3: pip install 'pyimgenc[postgres]'") from exc
        self.location = _redact(dsn)
        self._pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=False,
                                    kwargs={"connect_timeout": 10})
        try:
            self._pool.open(wait=True, timeout=15)
        except Exception as exc:
            self._pool.close()
            raise ConnectionError(f"PostgreSQL at {self.location} unreachable: {exc}") from None
        with self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7411)")   # one schema creator at a time
                conn.execute(_POSTGRES_SCHEMA)

    @contextmanager
    def tx(self, write: bool = False):
        with self._pool.connection() as conn:
            with conn.transaction():
                with conn.cursor() as cur:
                    yield _Tx(cur, "%s")

    def close(self) -> None:
        self._pool.close()


def is_dsn(location) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(location, create: bool = False) -> Store:
    """A :class:`PostgresStore` for a ``postgresql://`` DSN, else a :class:`SQLiteStore` for a path."""
    location = str(location)
    if is_dsn(location):
        store = PostgresStore(location)
        if create and store.exists():
            store.close()
            raise FileExistsError(f"{store.location} already holds a verifier; open it with Verifier(...)")
        if not create and not store.exists():
            store.close()
            raise FileNotFoundError(f"{store.location} holds no verifier; use Verifier.create")
        return store
    return SQLiteStore(location, create=create)


def _redact(dsn: str) -> str:
    """The DSN without its password (for messages)."""
    try:
        from urllib.parse import urlsplit, urlunsplit
        u = urlsplit(dsn)
        if u.password:
            host = u.hostname or ""
            netloc = f"{u.username}:***@{host}" + (f":{u.port}" if u.port else "")
            return urlunsplit(u._replace(netloc=netloc))
    except ValueError:
        pass
    return dsn
