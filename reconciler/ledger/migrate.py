"""``reconciler ledger migrate --to URL``: copy a ledger, every row with its id, its
lineage and its serial, into an empty one (a SQLite file into PostgreSQL, typically), then
verify the copy table by table: the same number of rows and the same digest of their
contents. Both ledgers are held under their writer locks meanwhile, so nothing writes
to either while the copy is made; the copy is one transaction, so a failure leaves the
target as empty as it was."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LedgerError
from . import open_ledger, writer_lock
from .pgschema import TABLES
from .rows import insert_sql
from .sql import SqlLedger
from .target import is_url


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int
    digest: str


def _rows_of(ledger: SqlLedger, table: str) -> list[dict[str, Any]]:
    order = "key" if table == "meta" else "id"
    return ledger.rows.query(f"SELECT * FROM {table} ORDER BY {order}")


def digest(rows: list[dict[str, Any]]) -> str:
    """A content digest independent of the backend: columns by name, values as JSON."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def _empty(ledger: SqlLedger) -> bool:
    count = ledger.rows.scalar
    return all(not count(f"SELECT COUNT(*) FROM {t}") for t in TABLES if t != "meta")


def migrate(source: Path | str, target: Path | str) -> list[Copied]:
    """Copy ``source`` into the empty ledger ``target`` and verify it; the per-table
    figures of the verified copy."""
    if str(source) == str(target):
        raise LedgerError("ledger migrate: --to names the ledger being copied")
    if not is_url(source) and not Path(source).exists():
        raise LedgerError(f"ledger migrate: there is no ledger at {source} to copy")
    with writer_lock(source) as held_source, writer_lock(target) as held_target:
        held_source.acquire("ledger migrate")
        held_target.acquire("ledger migrate")
        src, dst = open_ledger(source, readonly=True), open_ledger(target)
        assert isinstance(src, SqlLedger) and isinstance(dst, SqlLedger)
        try:
            return _copy(src, dst)
        finally:
            src.close()
            dst.close()


def _copy(src: SqlLedger, dst: SqlLedger) -> list[Copied]:
    if not _empty(dst):
        raise LedgerError(
            f"ledger migrate: {dst.path} already holds attempts, uploads or events; "
            "copy only into an empty ledger (a new database)"
        )
    tables = {t: _rows_of(src, t) for t in TABLES}
    with dst.write(bump=False):
        dst.rows.execute("DELETE FROM meta")
        for table, rows in tables.items():
            for row in rows:
                sql, args = insert_sql(table, row)
                if table == "meta":  # keyed by name: no id to return
                    sql = sql.removesuffix(" RETURNING id")
                dst.rows.execute(sql, args)
        dst.after_copy()
    return _verify(src, dst, tables)


def _verify(
    src: SqlLedger, dst: SqlLedger, copied: dict[str, list[dict[str, Any]]]
) -> list[Copied]:
    out = []
    for table, rows in copied.items():
        theirs = _rows_of(dst, table)
        if len(theirs) != len(rows) or digest(theirs) != digest(rows):
            raise LedgerError(
                f"ledger migrate: the copy of {table} differs ({len(theirs)} rows read back, "
                f"{len(rows)} copied); {dst.path} was left as written: drop it and retry"
            )
        out.append(Copied(table, len(rows), digest(rows)[:12]))
    if (src.lineage, src.serial) != (dst.lineage, dst.serial):
        raise LedgerError("ledger migrate: lineage or serial differ after the copy")
    return out
