"""The ledger's schema as versioned migrations, in code: the SQL tables every backend
holds (attempts, files, events, meta), and how an attempts row reads as the model's
``AttemptView``. A ledger records its version in ``meta``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by the migrations' caller only when it migrates (sqlite.py)
    import sqlite_utils

from ..model import AttemptView, Phase


def _m1_initial(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("attempts").create(
        {
            "id": int,
            "spec_name": str,
            "attempt": int,
            "fingerprint": str,
            "tag": str,
            "provider": str,
            "remote_id": str,
            "status": str,  # our phase: pending, queued, …, or absent
            "provider_status": str,  # the provider's own word
            "progress": str,
            "fine_tuned_model": str,
            "error": str,
            "error_retryable": int,
            "cancel_requested": int,
            "posted_at": float,  # set just before the create POST goes out
            "cost_estimate_usd": float,
            "trained_tokens": int,
            "inputs": str,  # JSON of the training-defining fields (for diffs)
            "on_delete": str,
            "spec_path": str,
            "git_commit": str,
            "training_file_id": str,
            "validation_file_id": str,
            "forgotten": int,
            "created_at": float,
            "updated_at": float,
            "finished_at": float,
        },
        pk="id",
        not_null={"spec_name", "attempt", "fingerprint", "tag", "provider", "status"},
        defaults={"error_retryable": 0, "cancel_requested": 0, "forgotten": 0},
    )
    db.table("attempts").create_index(["tag"], unique=True)
    db.table("attempts").create_index(["spec_name", "attempt"], unique=True)
    db.table("attempts").create_index(["status"])
    db.table("files").create(
        {
            "id": int,
            "provider": str,
            "sha256": str,
            "remote_id": str,
            "filename": str,
            "bytes": int,
            "status": str,  # intent | uploaded
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        not_null={"provider", "sha256", "status"},
    )
    db.table("files").create_index(["provider", "sha256"], unique=True)
    db.table("events").create(
        {
            "id": int,
            "ts": float,
            "spec_name": str,
            "attempt_id": int,
            "kind": str,
            "message": str,
            "data": str,
        },
        pk="id",
        not_null={"ts", "kind", "message"},
    )
    db.table("events").create_index(["spec_name", "id"])


def _m2_paused(db: sqlite_utils.Database) -> None:
    """Jobs reconciler paused for ``suspend: true`` (OpenAI's status does not say so)."""
    db.table("attempts").add_column("paused", int, not_null_default=0)


def _m3_namespaces(db: sqlite_utils.Database) -> None:
    """Tags carry the project's namespace and are shared by the attempts of one spec at one
    fingerprint (a lost ledger finds any attempt): a tag is no longer unique, and each
    attempt records its namespace (NULL: made before namespaces, with a legacy tag)."""
    db.execute("DROP INDEX IF EXISTS idx_attempts_tag")
    db.table("attempts").create_index(["tag"], index_name="idx_attempts_by_tag")
    db.table("attempts").add_column("namespace", str)


def _m4_misses(db: sqlite_utils.Database) -> None:
    """Evidence before a job is written off: how many looks in a row found no job (a 404
    for a known id, a tag not listed for an intent), and when the first of them was."""
    db.table("attempts").add_column("misses", int, not_null_default=0)
    db.table("attempts").add_column("first_miss_at", float)
    # the provider's clock just before the create went out (its Date header): list lag is
    # measured on it, never on ours
    db.table("attempts").add_column("posted_server_at", float)


def _m5_leases(db: sqlite_utils.Database) -> None:
    """Replicas and their leases (DESIGN §12): which ``watch`` replica works on which
    provider account until when, with a fencing epoch. Used on PostgreSQL; SQLite keeps
    one writer and the same tables, so a ledger has one schema on either backend."""
    db.table("leases").create(
        {"name": str, "holder": str, "epoch": int, "expires_at": float, "acquired_at": float},
        pk="name",
        not_null={"epoch"},
        defaults={"epoch": 0},
    )
    db.table("replicas").create(
        {"holder": str, "started_at": float, "seen_at": float, "info": str}, pk="holder"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_initial,
    _m2_paused,
    _m3_namespaces,
    _m4_misses,
    _m5_leases,
]
SCHEMA_VERSION = len(MIGRATIONS)


def attempt_view(row: dict[str, Any]) -> AttemptView:
    try:
        phase = Phase(row["status"])
    except ValueError:
        phase = Phase.UNKNOWN
    return AttemptView(
        id=row["id"],
        name=row["spec_name"],
        attempt=row["attempt"],
        fingerprint=row["fingerprint"],
        tag=row["tag"],
        provider=row["provider"],
        inputs=json.loads(row["inputs"] or "{}"),
        phase=phase,
        remote_id=row["remote_id"],
        status=row["provider_status"],
        error=row["error"],
        error_retryable=bool(row["error_retryable"]),
        cancel_requested=bool(row["cancel_requested"]),
        paused=bool(row.get("paused")),
        on_delete=row["on_delete"] or "cancel",
        posted=row["posted_at"] is not None,
        created_at=row["created_at"] or 0.0,
        finished_at=row["finished_at"],
        fine_tuned_model=row["fine_tuned_model"],
        progress=row["progress"],
        git_commit=row["git_commit"],
        spec_path=row["spec_path"],
        misses=int(row.get("misses") or 0),
        first_miss_at=row.get("first_miss_at"),
    )


# every committed write bumps the serial (text in meta, as every meta value)
BUMP_SERIAL = (
    "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'serial'"
)
