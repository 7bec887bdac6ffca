"""``logs`` on a spec whose create the provider refused: it says so, with the recorded
error and what to do, and ``--ledger-events`` shows the refusal too."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeDriver, FakePool, FakeProvider
from support import SpecTree

from reconciler.cli import main
from reconciler.errors import ErrorKind, ProviderError
from reconciler.ledger import open_ledger
from reconciler.model import CreateRequest
from reconciler.reconcile import Reconciler
from reconciler.source import SpecSource

REFUSAL = "model 'llama-9000' is not available for fine-tuning"


class Refusing(FakeDriver):
    def create_job(self, request: CreateRequest):  # type: ignore[no-untyped-def]
        self.calls.append("create_job")
        raise ProviderError("together", REFUSAL, kind=ErrorKind.PERMANENT, status=400)


@pytest.fixture
def refused(tree: SpecTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ledger where apply's create of ``web-bot`` was refused with HTTP 400."""
    for var in ("RECONCILER_SPECS", "RECONCILER_LEDGER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    path = tmp_path / "state" / "ledger.db"
    tree.spec("web-bot")
    ledger = open_ledger(path)
    try:
        core = Reconciler(ledger, FakePool(Refusing(FakeProvider())))  # type: ignore[arg-type]
        result = core.pass_once(SpecSource(tree.root).desired().jobs)
        assert [o.ok for o in result.outcomes] == [False]
    finally:
        ledger.close()
    return path


def logs(tree: SpecTree, path: Path, *args: str) -> int:
    return main(["--specs", str(tree.root), "--ledger", str(path), "logs", "web-bot", *args])


def test_logs_says_the_create_failed_with_the_recorded_error(
    tree: SpecTree, refused: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs(tree, refused) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: web-bot: the create failed (attempt 1): {REFUSAL} (HTTP 400) — no provider job exists; "
        "fix the spec and run apply\n"
    )


def test_ledger_events_show_the_refused_create(
    tree: SpecTree, refused: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs(tree, refused, "--ledger-events") == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("create_failed" in line and REFUSAL in line for line in lines), lines
