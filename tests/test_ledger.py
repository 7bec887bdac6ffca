"""The ledger: the contract every backend passes (the ``ledger`` fixture, parametrised
over ``BACKENDS``), then the SQLite file's own settings, migrations and writer lock."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.errors import LedgerError, LockedError
from reconciler.ledger import SCHEMA_VERSION, Ledger, WriterLock, open_ledger
from reconciler.model import Phase, RemoteJob


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    return open_ledger(tmp_path / "state" / "ledger.db")


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    return open_ledger(request.getfixturevalue("pg_url"))  # a new database on a real server


# backend → a fresh, empty ledger; a new backend adds one line here
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Ledger]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    book = BACKENDS[request.param](request, tmp_path)
    yield book
    book.close()


def _intent(ledger: Ledger, name: str = "bot", attempt: int = 1) -> int:
    return ledger.insert_intent(
        name=name,
        attempt=attempt,
        fingerprint="f" * 64,
        tag=f"rc-{name}{attempt:04d}",
        provider="together",
        inputs={"model": "m"},
        on_delete="cancel",
        spec_path="specs/bot.yaml",
        git_commit="abc123",
    )


def test_new_ledger_is_wal_full_sync_with_lineage_and_serial(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "state" / "ledger.db")
    try:
        conn = ledger.db.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert len(ledger.lineage) == 36 and ledger.serial == 0
        lineage = ledger.lineage
        _intent(ledger)
        assert ledger.serial == 1
    finally:
        ledger.close()
    again = open_ledger(tmp_path / "state" / "ledger.db")
    try:
        assert again.lineage == lineage and again.serial == 1
    finally:
        again.close()


def test_every_write_bumps_the_serial_and_is_logged(ledger: Ledger) -> None:
    attempt_id = _intent(ledger)
    ledger.mark_posting(attempt_id, "file-1", None)
    ledger.record_job(attempt_id, RemoteJob("ft-1", Phase.QUEUED, "pending"), event="created")
    assert ledger.serial == 3
    assert not ledger.record_job(attempt_id, RemoteJob("ft-1", Phase.QUEUED, "pending"))
    assert ledger.serial == 3  # nothing changed, nothing written
    ledger.record_job(
        attempt_id, RemoteJob("ft-1", Phase.SUCCEEDED, "completed", fine_tuned_model="m1")
    )
    row = ledger.attempt(attempt_id)
    assert (row["status"], row["fine_tuned_model"], row["remote_id"]) == (
        "succeeded",
        "m1",
        "ft-1",
    )
    assert row["finished_at"] is not None
    kinds = [e["kind"] for e in ledger.events("bot")]
    assert kinds == ["intent", "created", "status", "status"]
    (record,) = ledger.records().values()
    assert record.current is not None and record.current.phase is Phase.SUCCEEDED


def test_forgotten_and_absent_attempts_leave_the_view_but_keep_numbering(ledger: Ledger) -> None:
    first = _intent(ledger, attempt=1)
    ledger.mark_absent(first, "never posted")
    _intent(ledger, attempt=2)
    ledger.forget("bot", "spec removed")
    record = ledger.records()["bot"]
    assert record.current is None and record.next_attempt == 3


def test_tags_are_unique(ledger: Ledger) -> None:
    _intent(ledger)
    with pytest.raises(Exception, match=r"(?i)unique"):
        _intent(ledger)
    assert ledger.serial == 1  # the failed write was rolled back whole


def test_a_view_is_one_consistent_read(ledger: Ledger) -> None:
    empty = ledger.view()
    assert (dict(empty.records), empty.serial, len(empty.lineage)) == ({}, 0, 36)
    _intent(ledger, "alpha")
    _intent(ledger, "beta")
    view = ledger.view()
    assert sorted(view.records) == ["alpha", "beta"]
    assert (view.serial, view.lineage) == (ledger.serial, empty.lineage)
    assert [a.tag for a in view.attempts()] == ["rc-alpha0001", "rc-beta0001"]


def test_records_of_some_names_only(ledger: Ledger) -> None:
    _intent(ledger, "alpha")
    _intent(ledger, "beta")
    assert sorted(ledger.records(["beta", "gamma"])) == ["beta"]
    assert ledger.records(["beta"])["beta"] == ledger.records()["beta"]


def test_policies_follow_the_spec_and_are_logged(ledger: Ledger) -> None:
    attempt_id = _intent(ledger)
    serial = ledger.serial
    ledger.sync_policies({"bot": "cancel"})
    assert ledger.serial == serial  # nothing to change, nothing written
    ledger.sync_policies({"bot": "orphan"})
    assert ledger.attempt(attempt_id)["on_delete"] == "orphan"
    assert ledger.events("bot")[-1]["kind"] == "policy"


def test_uploads_are_recorded_once_per_content(ledger: Ledger) -> None:
    ledger.file_intent("together", "a" * 64, "rc-aaaa-train.jsonl", 10)
    ledger.file_intent("together", "a" * 64, "rc-aaaa-train.jsonl", 10)  # a second try
    row = ledger.file_row("together", "a" * 64)
    assert row is not None and row["status"] == "intent"
    ledger.file_uploaded("together", "a" * 64, "file-1", "rc-aaaa-train.jsonl")
    row = ledger.file_row("together", "a" * 64)
    assert row is not None and (row["status"], row["remote_id"]) == ("uploaded", "file-1")
    assert ledger.file_row("openai", "a" * 64) is None
    ledger.file_forget("together", "a" * 64)
    assert ledger.file_row("together", "a" * 64) is None


def test_readonly_open_never_creates_a_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError):
        open_ledger(tmp_path / "absent.db", readonly=True)
    assert not (tmp_path / "absent.db").exists()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "l.db")
    ledger.db.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)]
    )
    ledger.close()
    with pytest.raises(LedgerError, match="newer than this reconciler"):
        open_ledger(tmp_path / "l.db")


def test_a_garbage_file_is_a_clear_ledger_error(tmp_path: Path) -> None:
    (tmp_path / "l.db").write_bytes(b"this is not sqlite" * 100)
    for readonly in (False, True):
        with pytest.raises(LedgerError, match=r"l\.db: it is not a reconciler ledger") as info:
            open_ledger(tmp_path / "l.db", readonly=readonly)
        assert "\n" not in str(info.value)


def _hold_lock(
    path: str, ready: multiprocessing.synchronize.Event, done: multiprocessing.synchronize.Event
) -> None:
    lock = WriterLock(Path(path))
    lock.acquire("watch")
    ready.set()
    done.wait(10)
    lock.release()


def test_second_writer_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(path), ready, done))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockedError) as info:
            WriterLock(path).acquire("apply")
        message = str(info.value)
        assert f"pid {holder.pid}" in message and "watch" in message and "since" in message
        assert "\n" not in message
    finally:
        done.set()
        holder.join(10)
    WriterLock(path).acquire("apply")  # free again once the holder is gone


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(path), ready, done))
    holder.start()
    assert ready.wait(10)
    os.kill(holder.pid, 9)  # type: ignore[arg-type]
    holder.join(10)
    lock = WriterLock(path)
    lock.acquire("apply")
    info = json.loads(lock.path.read_text())
    assert info["pid"] == os.getpid() and info["command"] == "apply"
    lock.release()


def test_a_ledger_of_the_previous_version_is_carried_over(tmp_path: Path) -> None:
    """A ledger written before namespaces (schema 2, unique legacy tags) opens, migrates,
    and keeps its attempts and tags (issue #11: today's ledgers keep working)."""
    import sqlite_utils

    from reconciler.ledger.schema import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[:2]:
        step(db)
    db.table("meta").insert_all(
        [
            {"key": "lineage", "value": "0" * 36},
            {"key": "serial", "value": "1"},
            {"key": "schema_version", "value": "2"},
        ]
    )
    db.table("attempts").insert(
        {
            "spec_name": "bot",
            "attempt": 2,
            "fingerprint": "f" * 64,
            "tag": "rc-0123456789ab",
            "provider": "together",
            "remote_id": "ft-1",
            "status": "running",
            "inputs": "{}",
            "created_at": 1.0,
        }
    )
    db.conn.close()
    ledger = open_ledger(path)
    try:
        (record,) = ledger.records().values()
        cur = record.current
        assert cur is not None and (cur.tag, cur.attempt, cur.remote_id) == (
            "rc-0123456789ab",
            2,
            "ft-1",
        )
        assert (cur.misses, ledger.lineage) == (0, "0" * 36)
        # the tag is no longer unique: another attempt of the same fingerprint may share it
        ledger.insert_intent(
            name="bot",
            attempt=3,
            fingerprint="f" * 64,
            tag="rc-0123456789ab",
            provider="together",
            inputs={},
            on_delete="cancel",
            spec_path="specs/bot.yaml",
            git_commit=None,
        )
    finally:
        ledger.close()


def test_both_backends_hold_one_schema(tmp_path: Path, pg_url: str) -> None:
    """Version N on SQLite is version N on PostgreSQL: the same tables and columns."""
    from reconciler.ledger import pgschema, schema

    assert len(pgschema.MIGRATIONS) == len(schema.MIGRATIONS) == SCHEMA_VERSION
    lite, pg = open_ledger(tmp_path / "l.db"), open_ledger(pg_url)
    try:
        tables = ("meta", "attempts", "files", "events", "leases", "replicas")
        ours = {
            t: {r["name"] for r in lite.rows.query(f"PRAGMA table_info({t})")}  # type: ignore[attr-defined]
            for t in tables
        }
        theirs = {
            t: {
                r["column_name"]
                for r in pg.rows.query(  # type: ignore[attr-defined]
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [t]
                )
            }
            for t in tables
        }
        assert ours == theirs and all(ours.values())
        assert lite.serial == pg.serial == 0
    finally:
        lite.close()
        pg.close()


def test_processes_starting_together_on_a_new_database_migrate_it_once(pg_url: str) -> None:
    """Four openers at once on an empty PostgreSQL database: one schema, one lineage."""
    import threading

    opened: list[Ledger] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_ledger(pg_url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert failures == [] and len(opened) == 4
        assert len({ledger.lineage for ledger in opened}) == 1
        assert {ledger.serial for ledger in opened} == {0}
        versions = opened[0].rows.query("SELECT value FROM meta WHERE key = 'schema_version'")  # type: ignore[attr-defined]
        assert versions == [{"value": str(SCHEMA_VERSION)}]
    finally:
        for ledger in opened:
            ledger.close()


def test_concurrent_writers_on_postgres_count_every_commit(pg_url: str) -> None:
    """Writes from several connections are serialised on the serial row: none is lost,
    and the serial counts them all."""
    import threading

    ledgers = [open_ledger(pg_url) for _ in range(3)]
    try:

        def write(ledger: Ledger, n: int) -> None:
            for i in range(20):
                ledger.record_event("note", f"{n}-{i}")

        threads = [threading.Thread(target=write, args=(lg, n)) for n, lg in enumerate(ledgers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert ledgers[0].serial == 60
        assert len(ledgers[1].events(limit=1000)) == 60
    finally:
        for ledger in ledgers:
            ledger.close()
