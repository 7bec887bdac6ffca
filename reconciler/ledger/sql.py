"""The ledger's operations in SQL, the same for every database (DESIGN §5): one row per
attempt, upload and event; the crash protocol's intent, posting and result; renames,
forgetting and restoring. Written once against ``rows.Rows`` with portable SQL; a
backend (``sqlite.py``, ``postgres.py``) opens the connection, runs the migrations, and
owns the transactions (``write`` and ``view``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from ..errors import EmptyLedgerError, LedgerError
from ..model import AttemptView, LedgerView, Phase, RemoteJob, SpecRecord
from .files import FileRows
from .rows import Rows, get, insert, update
from .schema import SCHEMA_VERSION, attempt_view

Clock = Callable[[], float]


class SqlLedger(FileRows):
    """The operations of the ``Ledger`` protocol over ``self.rows``."""

    rows: Rows
    clock: Clock
    path: Any  # the file (SQLite) or the URL without its password (PostgreSQL)

    def write(self, bump: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def view(self) -> LedgerView:
        raise NotImplementedError

    def _schema_version(self) -> int:
        raise NotImplementedError

    def _migrate(self, version: int) -> None:
        raise NotImplementedError

    def _bring_up_to_date(self, readonly: bool, empty: str) -> None:
        """Refuse a newer schema; migrate an older one (refused when ``readonly``); an
        empty ledger read only is ``EmptyLedgerError`` (``empty`` says why it is)."""
        version = self._schema_version()
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema {version}, newer than this reconciler "
                f"knows ({SCHEMA_VERSION}): upgrade reconciler"
            )
        if version == 0 and readonly:
            raise EmptyLedgerError(f"ledger {self.path} is empty ({empty})")
        if version < SCHEMA_VERSION:
            if readonly:
                raise LedgerError(
                    f"ledger {self.path} needs a schema upgrade: run `reconciler apply` once"
                )
            self._migrate(version)

    def after_copy(self) -> None:
        """After ``ledger migrate`` wrote rows with their ids (PostgreSQL moves its id
        sequences past them; SQLite needs nothing)."""

    def _meta(self, key: str) -> str | None:
        value = self.rows.scalar("SELECT value FROM meta WHERE key = ?", [key])
        return str(value) if value is not None else None

    @property
    def serial(self) -> int:
        return int(self._meta("serial") or 0)

    @property
    def lineage(self) -> str:
        return self._meta("lineage") or ""

    # -- reading -----------------------------------------------------------------
    def records(self, names: Iterable[str] | None = None) -> dict[str, SpecRecord]:
        """The planner's view: live attempts per spec name (of ``names`` only, if given)."""
        live: dict[str, list[AttemptView]] = {}
        highest: dict[str, int] = {}
        sql, args = "SELECT * FROM attempts ORDER BY spec_name, attempt", []
        if names is not None:
            args = sorted(set(names))
            marks = ", ".join("?" * len(args))
            sql = f"SELECT * FROM attempts WHERE spec_name IN ({marks}) ORDER BY spec_name, attempt"
        for row in self.rows.query(sql, args):
            name = row["spec_name"]
            highest[name] = max(highest.get(name, 0), row["attempt"])
            if row["forgotten"] or row["status"] == "absent":
                continue
            live.setdefault(name, []).append(attempt_view(row))
        return {
            name: SpecRecord(name, tuple(live.get(name, ())), top + 1)
            for name, top in highest.items()
        }

    def attempt(self, attempt_id: int) -> dict[str, Any]:
        return get(self.rows, "attempts", attempt_id)

    def attempts(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is None:
            return self.rows.query("SELECT * FROM attempts ORDER BY spec_name, attempt")
        return self.rows.query(
            "SELECT * FROM attempts WHERE spec_name = ? ORDER BY attempt", [name]
        )

    def events(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, args = ("WHERE spec_name = ?", [name]) if name else ("", [])
        sql = f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?"
        return list(reversed(self.rows.query(sql, [*args, limit])))

    def has_event(self, attempt_id: int, kind: str) -> bool:
        found = self.rows.scalar(
            "SELECT 1 FROM events WHERE attempt_id = ? AND kind = ? LIMIT 1", [attempt_id, kind]
        )
        return found is not None

    def record_attempt_event(self, attempt_id: int, kind: str, message: str) -> None:
        row = self.attempt(attempt_id)
        with self.write():
            self._event(kind, message, row["spec_name"], attempt_id)

    # -- writing -----------------------------------------------------------------
    def _event(
        self,
        kind: str,
        message: str,
        name: str | None = None,
        attempt_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        insert(
            self.rows,
            "events",
            {
                "ts": self.clock(),
                "spec_name": name,
                "attempt_id": attempt_id,
                "kind": kind,
                "message": message,
                "data": json.dumps(data) if data else None,
            },
        )

    def record_event(self, kind: str, message: str, name: str | None = None, **data: Any) -> None:
        with self.write():
            self._event(kind, message, name, data=data or None)

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
    ) -> int:
        """Step 1 of the crash protocol: the intent, committed before any call."""
        now = self.clock()
        with self.write():
            attempt_id = (
                insert(
                    self.rows,
                    "attempts",
                    {
                        "spec_name": name,
                        "attempt": attempt,
                        "fingerprint": fingerprint,
                        "tag": tag,
                        "provider": provider,
                        "status": Phase.PENDING.value,
                        "inputs": json.dumps(inputs, sort_keys=True),
                        "on_delete": on_delete,
                        "spec_path": spec_path,
                        "git_commit": git_commit,
                        "cost_estimate_usd": cost_estimate_usd,
                        "namespace": namespace,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                or 0
            )
            self._event("intent", f"attempt {attempt} intent (tag {tag})", name, attempt_id)
        return attempt_id

    def mark_posting(
        self,
        attempt_id: int,
        training_file_id: str,
        validation_file_id: str | None,
        server_at: float | None = None,
    ) -> None:
        """Committed just before the create POST: from here on the intent needs a look-up.
        ``server_at`` is the provider's clock then, when its answers say."""
        with self.write():
            update(
                self.rows,
                "attempts",
                attempt_id,
                {
                    "posted_at": self.clock(),
                    "posted_server_at": server_at,
                    "training_file_id": training_file_id,
                    "validation_file_id": validation_file_id,
                },
            )

    def record_job(self, attempt_id: int, job: RemoteJob, event: str | None = None) -> bool:
        """Store what the provider says about an attempt's job; True when anything changed.
        An answer about another job than the one recorded is refused, never written."""
        row = self.attempt(attempt_id)
        if row["remote_id"] and row["remote_id"] != job.id:
            raise LedgerError(
                f"{row['spec_name']}: an answer about job {job.id or '(none)'} came for "
                f"{row['remote_id']}; not recorded"
            )
        values: dict[str, Any] = {
            "misses": 0,  # seen: whatever was missed before was lag or a hiccup
            "first_miss_at": None,
            "remote_id": job.id,
            "status": job.phase.value,
            "provider_status": job.status,
            # a list answer carries no progress: keep what a detailed read said last
            "progress": job.progress
            if job.progress is not None or row["status"] != job.phase.value
            else row["progress"],
            "fine_tuned_model": job.fine_tuned_model or row["fine_tuned_model"],
            "error": job.error,
            "error_retryable": int(job.error_retryable),
            "trained_tokens": job.trained_tokens
            if job.trained_tokens is not None
            else row["trained_tokens"],
        }
        changed = {k: v for k, v in values.items() if row.get(k) != v}
        if not changed and event is None:
            return False
        now = self.clock()
        changed["updated_at"] = now
        if job.phase.terminal and not row["finished_at"]:
            changed["finished_at"] = now
        with self.write():
            update(self.rows, "attempts", attempt_id, changed)
            if event is not None:
                self._event(
                    event,
                    f"{event} {job.id} ({job.status})",
                    row["spec_name"],
                    attempt_id,
                    {"remote_id": job.id},
                )
            if "status" in changed:
                self._event(
                    "status",
                    f"{row['status']} → {job.phase.value} ({job.status})",
                    row["spec_name"],
                    attempt_id,
                    {"error": job.error} if job.error else None,
                )
        return True

    def record_create_failed(self, attempt_id: int, error: str, retryable: bool) -> None:
        """The provider refused the create outright: no job exists for this attempt."""
        now = self.clock()
        row = self.attempt(attempt_id)
        with self.write():
            update(
                self.rows,
                "attempts",
                attempt_id,
                {
                    "status": Phase.FAILED.value,
                    "error": error,
                    "error_retryable": int(retryable),
                    "updated_at": now,
                    "finished_at": now,
                },
            )
            self._event("create_failed", error, row["spec_name"], attempt_id)

    def _mark(self, attempt_id: int, values: dict[str, Any], kind: str, reason: str) -> None:
        """Change an attempt's columns and log why, in one transaction."""
        row = self.attempt(attempt_id)
        with self.write():
            update(self.rows, "attempts", attempt_id, {**values, "updated_at": self.clock()})
            self._event(kind, reason, row["spec_name"], attempt_id)

    def record_miss(self, attempt_id: int, reason: str, at: float | None = None) -> int:
        """One more look that found no job for this attempt (at ``at``, the provider's clock
        when known); returns how many in a row."""
        row = self.attempt(attempt_id)
        misses = int(row.get("misses") or 0) + 1
        first = row.get("first_miss_at") or (at if at is not None else self.clock())
        self._mark(attempt_id, {"misses": misses, "first_miss_at": first}, "miss", reason)
        return misses

    def mark_absent(self, attempt_id: int, reason: str) -> None:
        """An intent whose tag the provider does not have: it never became a job."""
        self._mark(attempt_id, {"status": "absent"}, "absent", reason)

    def sync_policies(self, on_delete: dict[str, str]) -> None:
        """Keep each live attempt's ``on_delete`` equal to its spec's current policy, so
        removing a spec does what the spec said last, not what it said at create time."""
        stale = [
            (name, row["id"], policy)
            for name, policy in on_delete.items()
            for row in self.rows.query(
                "SELECT id, on_delete FROM attempts WHERE spec_name = ? AND forgotten = 0",
                [name],
            )
            if row["on_delete"] != policy
        ]
        if not stale:
            return
        with self.write():
            for name, attempt_id, policy in stale:
                update(self.rows, "attempts", attempt_id, {"on_delete": policy})
                self._event("policy", f"policy.on_delete: {policy}", name, attempt_id)

    def set_paused(self, attempt_id: int, paused: bool, reason: str) -> None:
        self._mark(attempt_id, {"paused": int(paused)}, "pause" if paused else "resume", reason)

    def mark_cancel_requested(self, attempt_id: int, reason: str) -> None:
        self._mark(attempt_id, {"cancel_requested": 1}, "cancel", reason)

    def orphan_of(self, provider: str, remote_id: str) -> dict[str, Any] | None:
        """The forgotten (orphaned) attempt that holds this job, if one does."""
        rows = self.rows.query(
            "SELECT * FROM attempts WHERE provider = ? AND remote_id = ? AND forgotten = 1 "
            "ORDER BY attempt DESC LIMIT 1",
            [provider, remote_id],
        )
        return rows[0] if rows else None

    def restore(self, attempt_id: int, reason: str) -> None:
        """An orphaned attempt is tracked again: its spec is back, or it was imported."""
        self._mark(attempt_id, {"forgotten": 0}, "restored", reason)

    def rename(self, old: str, new: str, reason: str) -> None:
        """Move ``old``'s live attempts to the spec ``new`` (a rename, not a new job): their
        numbers go past any ``new`` ever used, tags and provenance stay as they were."""
        with self.write():
            top = self.rows.scalar(
                "SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE spec_name = ?", [new]
            )
            self.rows.execute(
                "UPDATE attempts SET spec_name = ?, attempt = attempt + ?, updated_at = ? "
                "WHERE spec_name = ? AND forgotten = 0",
                [new, int(top or 0), self.clock(), old],
            )
            self._event("moved", f"{old} → {new}: {reason}", new)
            self._event("moved", f"{old} → {new}: {reason}", old)

    def forget(self, name: str, reason: str) -> None:
        with self.write():
            self.rows.execute(
                "UPDATE attempts SET forgotten = 1, updated_at = ? "
                "WHERE spec_name = ? AND forgotten = 0",
                [self.clock(), name],
            )
            self._event("forget", reason, name)
