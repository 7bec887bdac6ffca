"""The ledger on PostgreSQL, end to end: the real CLI against the emulator with
`RECONCILER_LEDGER=postgresql://…` on a server these tests start themselves (initdb,
pg_ctl), the single-writer lock as an advisory lock, `ledger migrate` from SQLite, and
the password never shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import SpecTree
from test_e2e import Cli, Emulator
from test_e2e import emulator as emulator_fixture

pytestmark = [pytest.mark.slow, pytest.mark.process]
emulator = emulator_fixture  # the emulator of test_e2e, one per module


@pytest.fixture
def pg(pg_server: Any) -> Any:
    return pg_server


def on_postgres(cli: Cli, url: str) -> Cli:
    cli.env["RECONCILER_LEDGER"] = url
    return cli


def error_line(proc: Any) -> str:
    """The one line a user sees (the harness runs with -v, which adds the traceback)."""
    return str(proc.stderr.strip().splitlines()[-1])


def assert_no_password(cli: Cli) -> None:
    from pgserver import PASSWORD

    for text in cli.transcript:
        assert PASSWORD not in text


def test_plan_apply_and_status_on_a_postgres_ledger(
    tree: SpecTree,
    emulator: Emulator,
    pg: Any,
    tmp_path: Path,
) -> None:
    cli = on_postgres(Cli(tree, emulator), pg.url(pg.create_database()))
    tree.spec("pg-bot", suffix="pg")
    cli("plan", "--detailed-exitcode", expect=2)
    saved = tmp_path / "pg.plan.json"
    cli("plan", "--out", str(saved))
    plan = json.loads(saved.read_text())
    assert plan["ledger"]["path"].startswith("postgresql://reconciler:***@127.0.0.1:")
    cli("apply", "--plan", str(saved))
    job = cli.status()["pg-bot"]
    assert job["remote_id"].startswith("ft-") and job["attempt"] == 1
    emulator.advance(3600)
    cli("apply", "--yes", "--wait", "--interval", "0.2", "--timeout", "60")
    assert cli.status()["pg-bot"]["phase"] == "succeeded"
    cli("plan", "--detailed-exitcode", expect=0)
    out = cli("output", "pg-bot", "--raw").stdout.strip()
    assert out == cli.status()["pg-bot"]["fine_tuned_model"]
    events = cli("logs", "pg-bot", "--ledger-events").stdout
    assert "intent" in events and "created" in events
    assert_no_password(cli)
    assert pg.url("x").split("@")[0].split(":")[-1] not in saved.read_text()


def test_the_password_may_come_from_pgpassword(
    tree: SpecTree,
    emulator: Emulator,
    pg: Any,
) -> None:
    from pgserver import PASSWORD

    cli = on_postgres(Cli(tree, emulator), pg.url(pg.create_database(), password=False))
    cli.env["PGPASSWORD"] = PASSWORD
    tree.spec("pg-env")
    cli("apply", "--yes")
    assert cli.status()["pg-env"]["remote_id"]
    del cli.env["PGPASSWORD"]
    line = error_line(cli("status", expect=1))
    assert line.startswith("error: cannot connect to the ledger postgresql://reconciler@127.0.0.1:")
    assert "no password supplied" in line and "PGPASSWORD" in line, line


def test_an_unreachable_server_is_one_line_without_the_password(
    tree: SpecTree,
    emulator: Emulator,
    pg: Any,
) -> None:
    from pgserver import free_port

    url = pg.url("nowhere").replace(f":{pg.port}/", f":{free_port()}/")
    cli = on_postgres(Cli(tree, emulator), url)
    tree.spec("pg-down")
    for command in (("status",), ("apply", "--yes"), ("plan",)):
        line = error_line(cli(*command, expect=1))
        assert line.startswith("error: cannot connect to the ledger postgresql://reconciler:***@")
    assert_no_password(cli)


def test_a_second_writer_is_refused_naming_the_holder(
    tree: SpecTree,
    emulator: Emulator,
    pg: Any,
) -> None:
    from reconciler.ledger.postgres import PgWriterLock

    url = pg.url(pg.create_database())
    cli = on_postgres(Cli(tree, emulator), url)
    tree.spec("pg-lock")
    cli("apply", "--yes")
    holder = PgWriterLock(url)
    holder.acquire("watch")
    try:
        failed = cli("apply", "--yes", expect=1)
        assert "is locked by watch (pid " in failed.stderr, failed.stderr
        assert "only one apply or watch writes at a time" in failed.stderr
        cli("status")  # readers are never refused
    finally:
        holder.release()
    cli("apply", "--yes")  # the lock went with its connection
    assert_no_password(cli)


def test_ledger_migrate_copies_a_sqlite_ledger_and_verifies_it(
    tree: SpecTree,
    emulator: Emulator,
    pg: Any,
) -> None:
    cli = Cli(tree, emulator)  # SQLite first
    tree.spec("mig-a")
    tree.spec("mig-b")
    cli("apply", "--yes")
    before = cli.status()
    url = pg.url(pg.create_database())
    copied = cli("ledger", "migrate", "--to", url).stdout
    assert "→ postgresql://reconciler:***@" in copied
    for table in ("attempts", "files", "events", "meta"):
        assert any(line.split()[:1] == [table] and "✓" in line for line in copied.splitlines())
    on_postgres(cli, url)
    after = cli.status()
    assert {n: j["remote_id"] for n, j in after.items()} == {
        n: j["remote_id"] for n, j in before.items()
    }
    cli("plan", "--detailed-exitcode", "--offline", expect=0)  # nothing to do there either
    tree.spec("mig-c")
    cli("apply", "--yes")  # new rows continue after the copied ids
    assert cli.status()["mig-c"]["remote_id"]
    # a second copy into a ledger that is not empty is refused, and changes nothing
    cli.env["RECONCILER_LEDGER"] = str(cli.ledger)
    again = cli("ledger", "migrate", "--to", url, expect=1)
    assert "already holds attempts, uploads or events" in again.stderr
    assert_no_password(cli)


def test_apply_is_refused_while_watch_replicas_share_the_ledger(
    tree: SpecTree, emulator: Emulator, pg: Any
) -> None:
    from reconciler.ledger.postgres import PgWriterLock

    url = pg.url(pg.create_database())
    cli = on_postgres(Cli(tree, emulator), url)
    tree.spec("pg-shared")
    replicas = [PgWriterLock(url, shared=True), PgWriterLock(url, shared=True)]
    for lock in replicas:
        lock.acquire("watch")  # two replicas hold it together
    try:
        line = error_line(cli("apply", "--yes", expect=1))
        assert "is locked by watch (pid " in line and "or watch replicas together" in line
    finally:
        for lock in replicas:
            lock.release()
    cli("apply", "--yes")
    assert_no_password(cli)
