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


# the longest files first: two workers (make test) then finish together, instead of one
# idling while the other runs a long file that happened to come last in name order
LONGEST_FIRST = (
    "test_local_provider.py",
    "test_e2e_local.py",
    "test_e2e_crash.py",
    "test_e2e_cli.py",
    "test_e2e_postgres.py",
    "test_e2e_all_hosts.py",
    "test_disk_errors.py",
    "test_e2e_evidence.py",
    "test_soak.py",
    "test_e2e_replicas.py",
    "test_bench_smoke.py",
    "test_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(
        key=lambda item: rank.get(item.path.name, len(rank))
    )  # stable: order within a file kept
