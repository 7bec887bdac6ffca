"""The PostgreSQL ledger: the same operations as SQLite's (``sql.SqlLedger``) on a shared
server, for several hosts and replicas (DESIGN §12). ``--ledger postgresql://…`` or
``RECONCILER_LEDGER`` selects it; psycopg 3 is the driver (the ``postgres`` extra).

- Migrations run on first use, in one transaction under an advisory lock, so two
  processes starting together migrate once.
- Every write transaction locks the ``serial`` row first (``FOR UPDATE``): writes are
  serialised as SQLite's ``BEGIN IMMEDIATE`` serialises them, and the serial counts
  commits exactly. A view is one ``REPEATABLE READ`` snapshot.
- The password comes from the URL (best through ``RECONCILER_LEDGER``, which no process
  list shows), ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads both); it is registered with
  the redactor and never printed: messages show the URL with ``***`` for it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ConfigError, LedgerAccessError, LedgerError
from ..model import LedgerView
from ..redact import register
from .pgschema import MIGRATIONS
from .rows import PostgresRows, Rows
from .schema import BUMP_SERIAL, SCHEMA_VERSION
from .sql import SqlLedger
from .target import display, password_of

Clock = Callable[[], float]
MIGRATION_LOCK = 0x7265636F6E  # pg_advisory_xact_lock key while migrating ("recon")
CONNECT_TIMEOUT_S = 10


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "a postgresql:// ledger needs psycopg 3: pip install 'reconciler[postgres]'"
        ) from None
    return psycopg


def connect(url: str, *, readonly: bool, application: str = "reconciler") -> Any:
    """A psycopg connection in autocommit mode (the ledger opens its own transactions)."""
    psycopg = _psycopg()
    register(password_of(url) or "")
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application,
        )
    except psycopg.Error as exc:
        reason = _reason(exc)
        if "password" in reason:
            reason += " (the password goes in RECONCILER_LEDGER's URL, PGPASSWORD or ~/.pgpass)"
        raise LedgerAccessError(
            f"cannot connect to the ledger {display(url)}: {reason}", display(url)
        ) from None
    if readonly:
        conn.execute("SET default_transaction_read_only = on")
    return conn


def _reason(exc: BaseException) -> str:
    """psycopg's message in one line, without the connection string it may repeat."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    return text.removeprefix("connection failed: ")


class PostgresLedger(SqlLedger):
    """The ledger in a PostgreSQL database. Construct with ``PostgresLedger.open``."""

    def __init__(self, conn: Any, url: str, clock: Clock = time.time) -> None:
        self.conn = conn
        self.rows = PostgresRows(conn, lambda exc: self._access(exc, writing=True))
        self.url = url
        self.path = display(url)  # what messages name (no password)
        self.clock = clock
        # a replica's fence (``leases.Replica.fence``), run in every write transaction
        self.fence: Callable[[Rows], None] | None = None

    @classmethod
    def open(cls, url: str, *, readonly: bool = False, clock: Clock = time.time) -> PostgresLedger:
        conn = connect(url, readonly=readonly)
        ledger = cls(conn, url, clock)
        try:
            ledger._bring_up_to_date(readonly, "nothing applied yet")
        except BaseException:
            conn.close()
            raise
        return ledger

    def _schema_version(self) -> int:
        # pg_tables, not to_regclass: a backend caches a failed name lookup until it next
        # locks a relation, so after waiting on the migration lock to_regclass would still
        # miss the tables another process just created
        found = self.rows.scalar(
            "SELECT 1 FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'meta'"
        )
        if found is None:
            return 0
        value = self.rows.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(value) if value is not None else 0

    def _migrate(self, version: int) -> None:
        psycopg = _psycopg()
        try:
            with self.conn.transaction():
                self.rows.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
                version = self._schema_version()  # another process may have migrated first
                for step in MIGRATIONS[version:]:
                    for statement in step:
                        self.rows.execute(statement)
                if version == 0:
                    self.rows.execute(
                        "INSERT INTO meta (key, value) VALUES ('lineage', ?), ('serial', '0')",
                        [str(uuid.uuid4())],
                    )
                self.rows.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [str(SCHEMA_VERSION)],
                )
        except psycopg.Error as exc:
            raise self._access(exc, writing=True) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def _access(self, exc: BaseException, *, writing: bool) -> Exception:
        psycopg = _psycopg()
        if isinstance(exc, psycopg.errors.IntegrityError):
            return LedgerError(
                f"cannot write ledger {self.path}: {_reason(exc)} (another writer changed it "
                "meanwhile; run the command again)"
            )
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return LedgerAccessError(
                f"cannot write ledger {self.path}: the connection is read-only", self.path
            )
        verb = "write" if writing else "read"
        return LedgerAccessError(f"cannot {verb} ledger {self.path}: {_reason(exc)}", self.path)

    def after_copy(self) -> None:
        for table in ("attempts", "files", "events"):  # new ids continue after the copied
            self.rows.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )

    # -- transactions ------------------------------------------------------------
    @contextlib.contextmanager
    def write(self, bump: bool = True, fenced: bool = True) -> Iterator[Any]:
        """One write transaction, serialised with every other writer by the serial row's
        lock; bumps ``serial`` when it commits. Whatever fails inside rolls all of it back.
        A replica's write first passes its fence (its leases still its own)."""
        psycopg = _psycopg()
        try:
            with self.conn.transaction():
                self.rows.execute("SELECT value FROM meta WHERE key = 'serial' FOR UPDATE")
                if fenced and self.fence is not None:
                    self.fence(self.rows)
                yield self.rows
                if bump:
                    self.rows.execute(BUMP_SERIAL)
        except psycopg.Error as exc:
            raise self._access(exc, writing=True) from None

    def view(self) -> LedgerView:
        """Records, lineage and serial from one snapshot (a consistent view)."""
        psycopg = _psycopg()
        try:
            with self.conn.transaction():
                self.rows.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return LedgerView(self.records(), self.lineage, self.serial)
        except psycopg.Error as exc:
            raise self._access(exc, writing=False) from None


WRITER_LOCK = 0x7265637772  # pg_try_advisory_lock key of the single writer ("recwr")


class PgWriterLock:
    """The single-writer lock of a PostgreSQL ledger: a session advisory lock held by a
    connection of its own, which the server drops when the holder dies or its connection
    is cut. The holder is named by its connection's ``application_name``."""

    def __init__(self, url: str, clock: Clock = time.time, *, shared: bool = False) -> None:
        self.url = url
        self.clock = clock
        self.shared = shared  # watch replicas share it; apply and a lone watch hold it alone
        self._conn: Any = None

    def acquire(self, command: str = "apply") -> None:
        import os
        import socket
        from datetime import UTC, datetime

        since = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds")
        me = f"reconciler {command} (pid {os.getpid()} on {socket.gethostname()}, since {since})"
        conn = connect(self.url, readonly=False, application=me[:63])
        rows = PostgresRows(conn, lambda exc: LedgerAccessError(_reason(exc), display(self.url)))
        how = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
        if not rows.scalar(f"SELECT {how}(?)", [WRITER_LOCK]):
            holder = rows.scalar(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.objid = ? AND a.datname = current_database() LIMIT 1",
                [WRITER_LOCK & 0xFFFFFFFF],
            )
            conn.close()
            from ..errors import LockedError

            name = str(holder).removeprefix("reconciler ") if holder else "another process"
            raise LockedError(
                f"ledger {display(self.url)} is locked by {name}; "
                "only one apply or watch writes at a time (or watch replicas together)"
            )
        self._conn = conn

    def still_held(self) -> bool:
        """True while the lock's connection is alive (a cut connection loses the lock)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            self.close_quietly()

    def close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()  # the server drops the session's advisory lock
        self._conn = None

    def __enter__(self) -> PgWriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
