"""A full disk, a read-only ledger, a folder given as the ledger: each one line saying
what to do, exit 1, the ledger intact; the commands that only read work on a read-only
ledger folder or file."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SpecTree

from reconciler.cli import main
from reconciler.errors import LedgerError
from reconciler.ledger import open_ledger
from reconciler.ledger.rows import insert
from reconciler.model import Phase, RemoteJob

FULL = (
    "no space left on device (free some space and run the command again; nothing was half-written)"
)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RECONCILER_SPECS", "RECONCILER_LEDGER", "OPENAI_API_KEY", "MISTRAL_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    # a provider nobody answers at: these tests must fail before any provider call
    monkeypatch.setenv("TOGETHER_API_KEY", "test-key")
    monkeypatch.setenv("TOGETHER_BASE_URL", "http://127.0.0.1:9/v1")


def cli(tree: SpecTree, ledger: Path | str, *args: str) -> int:
    return main(["--specs", str(tree.root), "--ledger", str(ledger), *args])


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _ledger_with_a_job(path: Path) -> int:
    """A ledger holding one job for the spec ``bot``; returns its serial."""
    ledger = open_ledger(path)
    try:
        attempt_id = ledger.insert_intent(
            name="bot",
            attempt=1,
            fingerprint="f" * 64,
            tag="rcdef-bot0001",
            provider="together",
            inputs={"model": "m"},
            on_delete="cancel",
            spec_path="specs/bot.yaml",
            git_commit="abc123",
        )
        ledger.record_job(
            attempt_id,
            RemoteJob("ft-1", Phase.SUCCEEDED, "completed", fine_tuned_model="acct/bot-1"),
            "created",
        )
        return ledger.serial
    finally:
        ledger.close()


def _intact(path: Path, serial: int) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()[0] == str(
            serial
        )
    finally:
        conn.close()


# -- a full disk -----------------------------------------------------------------------


def test_a_full_disk_inside_a_write_rolls_the_whole_transaction_back(tmp_path: Path) -> None:
    """Real SQLite running out of room (``max_page_count`` pinned) in the second insert of
    one transaction: neither insert stays, the serial does not move."""
    path = tmp_path / "state" / "ledger.db"
    serial = _ledger_with_a_job(path)
    ledger = open_ledger(path)
    try:
        events = len(ledger.events(limit=1000))
        pages = ledger.db.execute("PRAGMA page_count").fetchone()[0]
        ledger.db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(LedgerError) as info, ledger.write() as rows:
            insert(rows, "events", {"ts": 1.0, "kind": "small", "message": "fits"})
            insert(rows, "events", {"ts": 2.0, "kind": "big", "message": "x" * 200_000})
        assert str(info.value) == f"cannot write the ledger {path}: {FULL}"
        assert len(ledger.events(limit=1000)) == events and ledger.serial == serial
        with pytest.raises(LedgerError, match="no space left on device"):
            ledger.record_event("note", "y" * 200_000)
    finally:
        ledger.close()
    _intact(path, serial)


class FullDisk(sqlite3.Connection):
    """A connection on a full disk: a transaction that wrote fails at its COMMIT, as
    SQLite reports it when the log cannot grow."""

    wrote = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            self.wrote = True
        elif verb in ("COMMIT", "END") and self.in_transaction and self.wrote:
            raise sqlite3.OperationalError("database or disk is full")
        elif verb == "ROLLBACK":
            self.wrote = False
        return super().execute(sql, *args)


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQLite connection opened from here on is on a full disk."""
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", FullDisk)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_apply_on_a_full_disk_is_one_line_exit_1_and_the_ledger_intact(
    tree: SpecTree,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "state" / "ledger.db"
    tree.spec("bot")
    serial = _ledger_with_a_job(path)  # made while there was room
    tree.spec("web-bot")  # a new spec: apply writes its intent first, before any call
    with monkeypatch.context() as mp:
        _fill_the_disk(mp)
        assert cli(tree, path, "apply", "--yes") == 1
    assert _error_line(capsys) == f"error: cannot write the ledger {path}: {FULL}"
    _intact(path, serial)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT spec_name FROM attempts").fetchall() == [("bot",)]
    finally:
        conn.close()


def test_os_errors_of_the_ledger_are_one_line_with_the_path_and_what_to_do() -> None:
    from reconciler.ledger.access import access_error

    path = Path("state/ledger.db")
    full = access_error(OSError(errno.ENOSPC, "No space left on device"), path, writing=True)
    assert str(full) == f"cannot write the ledger state/ledger.db: {FULL}"
    assert full.path == path
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    assert str(access_error(sqlite_full, path, writing=True)) == str(full)


# -- a folder where the file should be ---------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("apply", "--yes"),
        ("plan", "--offline"),
        ("status", "--offline"),
        ("logs", "bot", "--ledger-events"),
    ],
)
def test_a_folder_given_as_the_ledger_says_which_file_to_give(
    tree: SpecTree,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
) -> None:
    tree.spec("bot")
    (tmp_path / "state").mkdir()
    monkeypatch.chdir(tmp_path)
    assert cli(tree, "state/", *command) == 1
    assert _error_line(capsys) == (
        "error: --ledger state/ is a folder; give the ledger file, e.g. state/ledger.db"
    )
    assert os.listdir(tmp_path / "state") == []


# -- a read-only ledger --------------------------------------------------------------------


def _read_only(path: Path) -> None:
    """chmod ``path`` read-only, or skip when file modes do not stop this user (root)."""
    path.chmod(stat.S_IRUSR | stat.S_IXUSR | (stat.S_IRGRP | stat.S_IROTH))
    probe = (path if path.is_dir() else path.parent) / ".write-probe"
    writable = os.access(path, os.W_OK)
    try:
        if path.is_dir():
            probe.touch()
            probe.unlink()
            writable = True
    except OSError:
        writable = False
    if writable:
        path.chmod(0o755)
        pytest.skip(
            "file modes do not stop this user (root, or CAP_DAC_OVERRIDE): chmod cannot make "
            "the ledger read-only here"
        )


@pytest.fixture
def read_only_ledger(tree: SpecTree, tmp_path: Path) -> Iterator[Path]:
    """A ledger with one job, in a folder this user cannot write."""
    path = tmp_path / "state" / "ledger.db"
    _ledger_with_a_job(path)
    tree.spec("bot")
    _read_only(path.parent)
    try:
        yield path
    finally:
        path.parent.chmod(0o755)


@pytest.mark.parametrize(
    "command",
    [("status", "--offline"), ("status", "--offline", "--json"), ("plan", "--offline")],
)
def test_reading_commands_work_in_a_read_only_folder(
    tree: SpecTree,
    read_only_ledger: Path,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
) -> None:
    assert cli(tree, read_only_ledger, *command) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "bot" in out
    assert os.listdir(read_only_ledger.parent) == ["ledger.db"]  # nothing written beside it


def test_ledger_events_read_in_a_read_only_folder(
    tree: SpecTree, read_only_ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(tree, read_only_ledger, "logs", "bot", "--ledger-events") == 0
    assert "created ft-1" in capsys.readouterr().out


def test_apply_in_a_read_only_folder_is_one_line_naming_the_folder(
    tree: SpecTree, read_only_ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.spec("web-bot")
    assert cli(tree, read_only_ledger, "apply", "--yes") == 1
    line = _error_line(capsys)
    assert line.startswith(
        f"error: cannot write the ledger {read_only_ledger}: its folder "
        f"{read_only_ledger.parent}/ is read-only ("
    ), line
    assert "status --offline" in line


def test_a_read_only_ledger_file_is_read_and_never_written(
    tree: SpecTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state" / "ledger.db"
    serial = _ledger_with_a_job(path)
    tree.spec("bot")
    _read_only(path)
    try:
        assert cli(tree, path, "status", "--offline") == 0
        assert "bot" in capsys.readouterr().out
        tree.spec("web-bot")
        assert cli(tree, path, "apply", "--yes") == 1
        assert _error_line(capsys).startswith(
            f"error: cannot write the ledger {path}: the file is read-only ("
        )
    finally:
        path.chmod(0o644)
    _intact(path, serial)


READ_ONLY_TESTS = "(read_only or readonly) and not even_as_root"


@pytest.mark.process
@pytest.mark.skipif(os.environ.get("RECONCILER_NO_DAC") == "1", reason="already the re-run")
def test_the_read_only_cases_run_even_as_root(tmp_path: Path) -> None:
    """Root ignores file modes, so the read-only tests above skip: run them again in a
    child that lost the capability to override them (setpriv), and require that they ran."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("not root: the read-only tests above ran as they are")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop CAP_DAC_OVERRIDE")
    drop = "-dac_override,-dac_read_search,-fowner"
    proc = subprocess.run(
        [
            "setpriv",
            f"--bounding-set={drop}",
            "--",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            READ_ONLY_TESTS,
            __file__,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "RECONCILER_NO_DAC": "1"},
        cwd=Path(__file__).parent.parent,
        timeout=300,
        check=False,
    )
    report = proc.stdout + proc.stderr
    if "Operation not permitted" in report and proc.returncode != 0 and "passed" not in report:
        pytest.skip(f"setpriv cannot drop capabilities here: {report.strip()[:200]}")
    assert proc.returncode == 0, report
    assert " skipped" not in report.splitlines()[-1], report  # they really ran
    assert " passed" in report.splitlines()[-1], report
