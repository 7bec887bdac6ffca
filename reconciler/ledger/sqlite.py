"""The SQLite ledger (the default backend): one file recording every attempt, upload
and transition (DESIGN §5), behind the ``Ledger`` protocol.

WAL with ``synchronous=FULL`` (a committed intent must survive power loss), write
transactions opened with ``BEGIN IMMEDIATE`` (sqlite-utils calls inside join them
as savepoints), a ``serial`` that every write bumps and a ``lineage`` fixed at birth.
Only one process writes at a time: ``lock.WriterLock`` guards the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import LedgerError
from ..model import LedgerView
from .access import access_error, refuse_folder
from .connection import connect
from .rows import SqliteRows
from .schema import BUMP_SERIAL, MIGRATIONS, SCHEMA_VERSION
from .sql import SqlLedger

Clock = Callable[[], float]


class SqliteLedger(SqlLedger):
    """The ledger in one SQLite file. Construct with ``SqliteLedger.open``."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock = time.time) -> None:
        self.conn = conn
        self.rows = SqliteRows(conn)
        self.path = path
        self.clock = clock

    # -- opening -----------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, readonly: bool = False, clock: Clock = time.time) -> SqliteLedger:
        """Open (and create or migrate, unless ``readonly``) the ledger at ``path``."""
        refuse_folder(path)
        try:
            conn = connect(path, readonly)
            ledger = cls(conn, path, clock)
            ledger._bring_up_to_date(readonly, "being created")
            return ledger
        except (sqlite3.DatabaseError, OSError) as exc:
            raise access_error(exc, path, writing=not readonly) from exc

    def _schema_version(self) -> int:
        found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        if self.conn.execute(found).fetchone() is None:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self, version: int) -> None:
        with self.write(bump=False):
            if self._schema_version() != version:
                return  # another process migrated first
            db = self.db
            for step in MIGRATIONS[version:]:
                step(db)
            meta = db.table("meta")
            if version == 0:
                meta.insert_all(
                    [
                        {"key": "lineage", "value": str(uuid.uuid4())},
                        {"key": "serial", "value": "0"},
                    ]
                )
            meta.upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")

    def close(self) -> None:
        self.conn.close()

    # -- transactions ------------------------------------------------------------
    @property
    def db(self) -> Any:
        """The connection as a ``sqlite_utils.Database``, for the migrations: imported only
        then (sqlite-utils imports pandas and numpy when they are installed, which would
        cost every command a quarter of a second and a hundred MB)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @contextlib.contextmanager
    def write(self, bump: bool = True) -> Iterator[Any]:
        """One write transaction (``BEGIN IMMEDIATE``); bumps ``serial`` when it commits.
        Whatever fails inside (a full disk, a read-only file) rolls all of it back."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.OperationalError, OSError) as exc:
            raise access_error(exc, self.path, writing=True) from exc
        try:
            yield self.rows
            if bump:
                conn.execute(BUMP_SERIAL)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # SQLite rolls back if this fails
                    conn.execute("ROLLBACK")
            if isinstance(exc, (sqlite3.OperationalError, OSError)):  # disk full, I/O, locked
                raise access_error(exc, self.path, writing=True) from exc
            if isinstance(exc, sqlite3.IntegrityError):  # a second writer got past the lock
                raise LedgerError(
                    f"cannot write ledger {self.path}: {exc} (another writer changed it "
                    "meanwhile; run the command again)"
                ) from exc
            raise

    # -- reading -----------------------------------------------------------------
    def view(self) -> LedgerView:
        """Records, lineage and serial read in one transaction (a consistent view)."""
        conn = self.conn
        try:
            conn.execute("BEGIN")
            try:
                return LedgerView(self.records(), self.lineage, self.serial)
            finally:
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise access_error(exc, self.path, writing=False) from exc
