"""The ledger behind a narrow interface: the ``Ledger`` protocol is every operation that
plan, apply, watch, status, import and logs use; a backend is one module that
implements it and passes the same test suite (``tests/test_ledger.py``).

    open_ledger(target)   the backend a target names (a file path: SQLite)
    read_view(target)     one consistent read, an absent ledger read as empty

Rows come back as plain dicts of the columns in ``schema.py``. The ledger imports only
the domain model and the errors; it never calls a provider.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from ..errors import EmptyLedgerError
from ..model import LedgerView, RemoteJob, SpecRecord
from .lock import WriterLock
from .schema import SCHEMA_VERSION
from .target import is_url

__all__ = [
    "SCHEMA_VERSION",
    "Ledger",
    "WriterLock",
    "ledger_exists",
    "open_ledger",
    "read_view",
    "writer_lock",
]

Clock = Callable[[], float]


class Ledger(Protocol):
    """What the rest of reconciler may ask of a ledger."""

    @property
    def path(self) -> Path | str:
        """The file, or the database URL without its password: what messages name."""
        ...

    @property
    def serial(self) -> int: ...

    @property
    def lineage(self) -> str: ...

    def close(self) -> None: ...

    def write(self, bump: bool = True) -> AbstractContextManager[Any]: ...

    # -- reading
    def view(self) -> LedgerView: ...

    def records(self, names: Iterable[str] | None = None) -> dict[str, SpecRecord]: ...

    def known_remote_ids(self, provider: str) -> set[str]: ...

    def attempt(self, attempt_id: int) -> dict[str, Any]: ...

    def attempts(self, name: str | None = None) -> list[dict[str, Any]]: ...

    def events(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    def has_event(self, attempt_id: int, kind: str) -> bool: ...

    def file_row(self, provider: str, sha256: str) -> dict[str, Any] | None: ...

    # -- the crash protocol (DESIGN §4): intent, posting, result
    def insert_intent(
        self,
        *,
        name: str,
        attempt: int,
        fingerprint: str,
        tag: str,
        provider: str,
        inputs: dict[str, Any],
        on_delete: str,
        spec_path: str,
        git_commit: str | None,
        cost_estimate_usd: float | None = None,
        namespace: str | None = None,
    ) -> int: ...

    def mark_posting(
        self,
        attempt_id: int,
        training_file_id: str,
        validation_file_id: str | None,
        server_at: float | None = None,
    ) -> None: ...

    def record_job(self, attempt_id: int, job: RemoteJob, event: str | None = None) -> bool: ...

    def record_create_failed(self, attempt_id: int, error: str, retryable: bool) -> None: ...

    def record_miss(self, attempt_id: int, reason: str, at: float | None = None) -> int: ...

    def mark_absent(self, attempt_id: int, reason: str) -> None: ...

    # -- lifecycle
    def sync_policies(self, on_delete: dict[str, str]) -> None: ...

    def set_paused(self, attempt_id: int, paused: bool, reason: str) -> None: ...

    def mark_cancel_requested(self, attempt_id: int, reason: str) -> None: ...

    def rename(self, old: str, new: str, reason: str) -> None: ...

    def forget(self, name: str, reason: str) -> None: ...

    def orphan_of(self, provider: str, remote_id: str) -> dict[str, Any] | None: ...

    def restore(self, attempt_id: int, reason: str) -> None: ...

    # -- events
    def record_event(
        self, kind: str, message: str, name: str | None = None, **data: Any
    ) -> None: ...

    def record_attempt_event(self, attempt_id: int, kind: str, message: str) -> None: ...

    # -- uploads, deduplicated by content
    def file_intent(self, provider: str, sha256: str, filename: str, size: int) -> None: ...

    def file_uploaded(self, provider: str, sha256: str, remote_id: str, filename: str) -> None: ...

    def file_forget(self, provider: str, sha256: str) -> None: ...


def open_ledger(target: Path | str, *, readonly: bool = False, clock: Clock = time.time) -> Ledger:
    """Open (and create or migrate, unless ``readonly``) the ledger ``target`` names: a
    SQLite file, or a PostgreSQL database by its ``postgresql://`` URL."""
    if is_url(target):
        from .postgres import PostgresLedger

        return PostgresLedger.open(str(target), readonly=readonly, clock=clock)
    from .sqlite import SqliteLedger

    return SqliteLedger.open(Path(target), readonly=readonly, clock=clock)


def writer_lock(target: Path | str, clock: Clock = time.time) -> WriterLock | Any:
    """The single-writer lock of a ledger: an flock on a SQLite file, an advisory lock on
    a PostgreSQL database."""
    if is_url(target):
        from .postgres import PgWriterLock

        return PgWriterLock(str(target), clock)
    return WriterLock(Path(target), clock)


def ledger_exists(target: Path | str) -> bool:
    """A ledger file is there; a database URL always may hold one (the server says)."""
    return is_url(target) or Path(target).exists()


def read_view(target: Path | str) -> LedgerView:
    """The ledger's view, read-only; an absent ledger is an empty one (and stays absent)."""
    if not ledger_exists(target):
        return LedgerView()
    try:
        ledger = open_ledger(target, readonly=True)
    except EmptyLedgerError:
        return LedgerView()
    try:
        return ledger.view()
    finally:
        ledger.close()
