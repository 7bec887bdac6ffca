"""The few row operations the ledger's SQL needs, over either database: SQLite's
``sqlite3`` or PostgreSQL's psycopg 3. The ledger writes its statements once, with
``?`` placeholders and portable SQL (``ON CONFLICT``, ``RETURNING``, ``COALESCE``);
each adapter runs them on its connection and returns plain dicts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol


class Rows(Protocol):
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None: ...

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any: ...


def insert_sql(table: str, row: Mapping[str, Any], conflict: str = "") -> tuple[str, list[Any]]:
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    tail = f" {conflict}" if conflict else ""
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}){tail} RETURNING id", list(
        row.values()
    )


def insert(rows: Rows, table: str, row: Mapping[str, Any], conflict: str = "") -> int | None:
    """Insert one row; its id (None when ``conflict`` said DO NOTHING and it did)."""
    sql, args = insert_sql(table, row, conflict)
    found = rows.query(sql, args)
    return int(found[0]["id"]) if found else None


def update(rows: Rows, table: str, row_id: int, values: Mapping[str, Any]) -> None:
    if not values:
        return
    sets = ", ".join(f"{column} = ?" for column in values)
    rows.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*values.values(), row_id])


def get(rows: Rows, table: str, row_id: int) -> dict[str, Any]:
    found = rows.query(f"SELECT * FROM {table} WHERE id = ?", [row_id])
    if not found:
        raise KeyError(f"no {table} row {row_id}")
    return found[0]


class SqliteRows:
    """Over a ``sqlite3`` connection in autocommit mode (the ledger opens transactions)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(args))
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, list(args))

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, list(args)).fetchone()
        return row[0] if row else None


class PostgresRows:
    """Over a psycopg 3 connection: ``?`` becomes ``%s`` (the ledger's SQL has no other
    ``?`` nor ``%``). A database error becomes what ``translate`` makes of it (a
    one-line ``LedgerError``)."""

    def __init__(self, conn: Any, translate: Callable[[Exception], Exception]) -> None:
        self.conn = conn
        self.translate = translate

    def _run(self, sql: str, args: Sequence[Any], fetch: str) -> Any:
        import psycopg

        try:
            with self.conn.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), list(args))
                if fetch == "none" or cursor.description is None:
                    return []
                if fetch == "one":
                    row = cursor.fetchone()
                    return row[0] if row else None
                names = [d.name for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except psycopg.Error as exc:
            raise self.translate(exc) from None

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._run(sql, args, "all")
        return result

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._run(sql, args, "none")

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._run(sql, args, "one")
