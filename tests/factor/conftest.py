"""The verifier's stores for the tests: a SQLite file, and a fresh PostgreSQL database per test.

PostgreSQL needs a server: ``PYIMGENC_TEST_PG_DSN`` names a maintenance database on it
(``postgresql://postgres@127.0.0.1:55432/postgres``; ``.ci/run`` starts one and exports
it).  Without it the PostgreSQL cases are skipped with that reason — unless
``PYIMGENC_REQUIRE_PG=1`` (set by CI), where they fail instead.
"""
from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_DSN = os.environ.get("PYIMGENC_TEST_PG_DSN", "")
_NO_PG = "PostgreSQL tests need PYIMGENC_TEST_PG_DSN (a maintenance database on a test server; .ci/run starts one)"


def _with_db(dsn: str, name: str) -> str:
    u = urlsplit(dsn)
    return urlunsplit(u._replace(path="/" + name))


@pytest.fixture(scope="session")
def faces(olivetti):
    """The 400 Olivetti faces (64x64 uint8)."""
    return olivetti[0]


@pytest.fixture()
def pg_dsn():
    """The DSN of a fresh, empty PostgreSQL database, dropped after the test."""
    if not PG_DSN:
        if os.environ.get("PYIMGENC_REQUIRE_PG") == "1":
            pytest.fail(_NO_PG + " (PYIMGENC_REQUIRE_PG=1)")
        pytest.skip(_NO_PG)
    import psycopg
    name = "pyimgenc_t_" + secrets.token_hex(6)
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield _with_db(PG_DSN, name)
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """Where a verifier keeps its state: each test runs on both stores."""
    if request.param == "sqlite":
        return tmp_path / "v.sqlite"
    return request.getfixturevalue("pg_dsn")
