"""Shared fixtures: a specs tree written on demand, a fake clock, a PostgreSQL server."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Clock, SpecTree

from reconciler import redact


@pytest.fixture
def tree(tmp_path: Path) -> SpecTree:
    return SpecTree(tmp_path / "specs")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    redact.clear()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A PostgreSQL server of this test session's own, from the machine's initdb and
    pg_ctl (skipped, with the reason, where they or psycopg are missing)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install '.[postgres]'")
    from pgserver import binaries, running

    if binaries() is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    base.chmod(0o755)  # the server may run as `postgres`, which must reach its folder
    try:
        with running(base / "cluster") as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """The URL of a new, empty database on the session's server (password included)."""
    return str(pg_server.url(pg_server.create_database()))
