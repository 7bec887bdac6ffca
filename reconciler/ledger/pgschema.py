"""The ledger's schema on PostgreSQL: the same tables, columns and versions as SQLite's
migrations (``schema.py``), in PostgreSQL's DDL. Version N here is version N there, so
``ledger migrate`` copies rows column for column and a ledger reports one version on
either backend."""

from __future__ import annotations

M1_INITIAL = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE attempts (
        id BIGSERIAL PRIMARY KEY,
        spec_name TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        tag TEXT NOT NULL,
        provider TEXT NOT NULL,
        remote_id TEXT,
        status TEXT NOT NULL,
        provider_status TEXT,
        progress TEXT,
        fine_tuned_model TEXT,
        error TEXT,
        error_retryable INTEGER DEFAULT 0,
        cancel_requested INTEGER DEFAULT 0,
        posted_at DOUBLE PRECISION,
        cost_estimate_usd DOUBLE PRECISION,
        trained_tokens BIGINT,
        inputs TEXT,
        on_delete TEXT,
        spec_path TEXT,
        git_commit TEXT,
        training_file_id TEXT,
        validation_file_id TEXT,
        forgotten INTEGER DEFAULT 0,
        created_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION
    )""",
    "CREATE UNIQUE INDEX idx_attempts_tag ON attempts (tag)",
    "CREATE UNIQUE INDEX idx_attempts_spec_name_attempt ON attempts (spec_name, attempt)",
    "CREATE INDEX idx_attempts_status ON attempts (status)",
    """CREATE TABLE files (
        id BIGSERIAL PRIMARY KEY,
        provider TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        remote_id TEXT,
        filename TEXT,
        bytes BIGINT,
        status TEXT NOT NULL,
        created_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION
    )""",
    "CREATE UNIQUE INDEX idx_files_provider_sha256 ON files (provider, sha256)",
    """CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        spec_name TEXT,
        attempt_id BIGINT,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    )""",
    "CREATE INDEX idx_events_spec_name_id ON events (spec_name, id)",
]
M2_PAUSED = ["ALTER TABLE attempts ADD COLUMN paused INTEGER NOT NULL DEFAULT 0"]
M3_NAMESPACES = [
    "DROP INDEX IF EXISTS idx_attempts_tag",
    "CREATE INDEX idx_attempts_by_tag ON attempts (tag)",
    "ALTER TABLE attempts ADD COLUMN namespace TEXT",
]
M4_MISSES = [
    "ALTER TABLE attempts ADD COLUMN misses INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE attempts ADD COLUMN first_miss_at DOUBLE PRECISION",
    "ALTER TABLE attempts ADD COLUMN posted_server_at DOUBLE PRECISION",
]

M5_LEASES = [
    """CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT,
        epoch BIGINT NOT NULL DEFAULT 0,
        expires_at DOUBLE PRECISION,
        acquired_at DOUBLE PRECISION
    )""",
    """CREATE TABLE replicas (
        holder TEXT PRIMARY KEY,
        started_at DOUBLE PRECISION,
        seen_at DOUBLE PRECISION,
        info TEXT
    )""",
]

MIGRATIONS: list[list[str]] = [M1_INITIAL, M2_PAUSED, M3_NAMESPACES, M4_MISSES, M5_LEASES]
TABLES = ("meta", "attempts", "files", "events")
