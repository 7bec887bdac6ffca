"""How the SQLite file is opened: for writing (WAL, ``synchronous=FULL``: a committed
intent survives power loss, DESIGN §10), or for reading only, even in a folder this user
cannot write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import LedgerAccessError
from .access import is_sqlite_access_error, wal_pending


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        return _connect_readonly(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """``mode=ro``; in a folder this user cannot write (no room for SQLite's ``-shm``
    index), the file as it stands (``immutable``), unless a write-ahead log holds writes
    not yet merged into it."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if not is_sqlite_access_error(exc):
            raise
        if wal_pending(path):
            raise LedgerAccessError(
                f"cannot read the ledger {path}: its folder is read-only and {path}-wal holds "
                "writes not yet merged into the file (run any command once with write access "
                "to the folder, or read a copy)",
                path,
            ) from exc
    return sqlite3.connect(f"file:{path}?immutable=1", uri=True, isolation_level=None)
