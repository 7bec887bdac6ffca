"""The emulator's state: one SQLite file (or memory) holding every provider object.

Every object (file, job, upload, upload part, storage slot) is a row of ``objects``:
its kind, provider, id, emulated creation time, a JSON document and optional bytes.
Nothing is kept only in memory, so a restarted emulator on the same file carries on
where it stopped. Job progress is never stored: it is derived from the clock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL,
    content BLOB,
    UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS objects_by_kind ON objects (kind, provider, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Row:
    """One stored object; ``data`` is its JSON document (mutable: update() writes it back)."""

    kind: str
    provider: str
    id: str
    seq: int
    created_at: float
    data: dict[str, Any]


class Store:
    """Thread-safe access to the state file: one connection behind one lock.

    Requests are small and few, so serialising them costs nothing and keeps every
    read consistent with the writes before it.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path else ":memory:"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # autocommit: every statement is its own transaction unless atomic() opens one
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)

    # ------------------------------------------------------------ objects

    def insert(
        self,
        kind: str,
        provider: str,
        obj_id: str,
        created_at: float,
        data: dict[str, Any],
        content: bytes | None = None,
    ) -> Row:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO objects (kind, provider, id, created_at, data, content)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, provider, obj_id, created_at, json.dumps(data), content),
            )
            return Row(kind, provider, obj_id, int(cur.lastrowid or 0), created_at, data)

    def update(self, row: Row, content: bytes | None = None) -> None:
        """Write ``row.data`` back (and new bytes, in the same statement when given)."""
        with self._lock:
            if content is None:
                self._db.execute(
                    "UPDATE objects SET data = ? WHERE kind = ? AND id = ?",
                    (json.dumps(row.data), row.kind, row.id),
                )
            else:
                self._db.execute(
                    "UPDATE objects SET data = ?, content = ? WHERE kind = ? AND id = ?",
                    (json.dumps(row.data), content, row.kind, row.id),
                )

    def content(self, kind: str, obj_id: str) -> bytes | None:
        with self._lock:
            found = self._db.execute(
                "SELECT content FROM objects WHERE kind = ? AND id = ?", (kind, obj_id)
            ).fetchone()
        return None if found is None or found[0] is None else bytes(found[0])

    def get(self, kind: str, obj_id: str, provider: str | None = None) -> Row | None:
        sql = "SELECT kind, provider, id, seq, created_at, data FROM objects"
        sql += " WHERE kind = ? AND id = ?"
        args: tuple[Any, ...] = (kind, obj_id)
        if provider is not None:
            sql += " AND provider = ?"
            args += (provider,)
        with self._lock:
            found = self._db.execute(sql, args).fetchone()
        return _row(found) if found else None

    def all(self, kind: str, provider: str | None = None) -> list[Row]:
        """Every object of a kind, oldest first."""
        sql = "SELECT kind, provider, id, seq, created_at, data FROM objects WHERE kind = ?"
        args: tuple[Any, ...] = (kind,)
        if provider is not None:
            sql += " AND provider = ?"
            args += (provider,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [_row(r) for r in rows]

    def delete(self, kind: str, obj_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, obj_id))
        return cur.rowcount > 0

    def clear(self) -> None:
        """Forget every object (the clock, kept in meta, stays)."""
        with self._lock:
            self._db.execute("DELETE FROM objects")

    # ------------------------------------------------------------ meta

    def meta(self, key: str) -> Any:
        with self._lock:
            found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(found[0]) if found else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(found: tuple[Any, ...]) -> Row:
    kind, provider, obj_id, seq, created_at, data = found
    return Row(kind, provider, obj_id, int(seq), float(created_at), json.loads(data))
