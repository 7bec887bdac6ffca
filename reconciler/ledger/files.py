"""The uploads half of the ledger: one row per (provider, content hash), written as an
intent before the upload and completed with the provider's file id after it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .rows import Rows, insert


class FileRows:
    """Mixed into ``SqlLedger``: reads and writes of the ``files`` table."""

    rows: Rows
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by SqlLedger

        def write(self, bump: bool = True) -> AbstractContextManager[Any]: ...

        def _event(
            self,
            kind: str,
            message: str,
            name: str | None = None,
            attempt_id: int | None = None,
            data: dict[str, Any] | None = None,
        ) -> None: ...

    def known_remote_ids(self, provider: str) -> set[str]:
        """Every job id the ledger holds for a provider, forgotten attempts included."""
        rows = self.rows.query(
            "SELECT remote_id FROM attempts WHERE provider = ? AND remote_id IS NOT NULL",
            [provider],
        )
        return {str(r["remote_id"]) for r in rows}

    def file_row(self, provider: str, sha256: str) -> dict[str, Any] | None:
        rows = self.rows.query(
            "SELECT * FROM files WHERE provider = ? AND sha256 = ?", [provider, sha256]
        )
        return rows[0] if rows else None

    def file_intent(self, provider: str, sha256: str, filename: str, size: int) -> None:
        now = self.clock()
        row = {
            "provider": provider,
            "sha256": sha256,
            "filename": filename,
            "bytes": size,
            "status": "intent",
            "created_at": now,
            "updated_at": now,
        }
        with self.write():
            insert(self.rows, "files", row, "ON CONFLICT (provider, sha256) DO NOTHING")

    def file_uploaded(self, provider: str, sha256: str, remote_id: str, filename: str) -> None:
        now = self.clock()
        row = {
            "provider": provider,
            "sha256": sha256,
            "remote_id": remote_id,
            "filename": filename,
            "status": "uploaded",
            "created_at": now,
            "updated_at": now,
        }
        kept = ("remote_id", "filename", "status", "updated_at")
        conflict = "ON CONFLICT (provider, sha256) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in kept
        )
        with self.write():
            insert(self.rows, "files", row, conflict)
            self._event("upload", f"{filename} → {remote_id}", data={"provider": provider})

    def file_forget(self, provider: str, sha256: str) -> None:
        """The provider no longer has this file: upload it again next time."""
        with self.write():
            self.rows.execute(
                "DELETE FROM files WHERE provider = ? AND sha256 = ?", [provider, sha256]
            )
