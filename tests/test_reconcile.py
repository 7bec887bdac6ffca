"""The reconcile core in process: one pass, the plan that runs is the plan shown, the
ledger read once a pass, ``until_settled`` on an injected clock, the plan file both ways."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeDriver, FakePool, FakeProvider
from support import Clock, SpecTree

from reconciler import planfile
from reconciler.errors import StalePlanError
from reconciler.ledger import Ledger, open_ledger
from reconciler.model import DesiredJob, LedgerView, Phase
from reconciler.plan import Kind, Plan
from reconciler.reconcile import Observation, Reconciler
from reconciler.source import SpecSource


class CountingLedger:
    """A ledger that counts whole-view reads (``view``, and ``records`` of everything)."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.views = 0
        self.full_records = 0

    def view(self) -> LedgerView:
        self.views += 1
        return self.inner.view()

    def records(self, names: Any = None) -> Any:
        if names is None:
            self.full_records += 1
        return self.inner.records(names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def world(tree: SpecTree, tmp_path: Path, clock: Clock):  # type: ignore[no-untyped-def]
    provider = FakeProvider()
    ledger = CountingLedger(open_ledger(tmp_path / "ledger.db", clock=clock))
    core = Reconciler(ledger, FakePool(FakeDriver(provider)), clock=clock, adopt_grace=0)  # type: ignore[arg-type]
    yield core, ledger, provider
    ledger.inner.close()


def desired(tree: SpecTree) -> list[DesiredJob]:
    return SpecSource(tree.root).desired().jobs


def test_the_plan_confirmed_is_the_plan_executed(world, tree: SpecTree) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, provider = world
    tree.spec("alpha")
    tree.spec("beta")
    shown: list[Plan] = []

    def confirm(plan: Plan, obs: Observation) -> bool:
        shown.append(plan)
        return True

    result = core.pass_once(desired(tree), confirm=confirm)
    assert shown == [result.plan]
    assert (
        [(o.name, o.kind) for o in result.outcomes]
        == [(a.name, a.kind) for a in shown[0].changes]
        == [("alpha", Kind.CREATE), ("beta", Kind.CREATE)]
    )
    assert len(provider.jobs) == 2


def test_a_declined_plan_writes_nothing(world, tree: SpecTree) -> None:  # type: ignore[no-untyped-def]
    core, ledger, provider = world
    tree.spec("alpha")
    result = core.pass_once(desired(tree), confirm=lambda plan, obs: False)
    assert result.declined and not result.outcomes
    assert ledger.serial == 0 and not provider.jobs and not provider.files


def test_a_pass_reads_the_ledger_view_once(world, tree: SpecTree, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    core, ledger, provider = world
    for name in ("alpha", "beta", "gamma"):
        tree.spec(name)
    jobs = desired(tree)
    core.pass_once(jobs)
    provider.finish_all()
    clock.advance(60)
    ledger.views = ledger.full_records = 0
    result = core.pass_once(jobs)
    assert (ledger.views, ledger.full_records) == (1, 0)
    assert {a.kind for a in result.plan.actions} == {Kind.NOOP}
    assert all(r.current and r.current.phase is Phase.SUCCEEDED for r in result.records.values())


def test_a_pass_reports_what_finished_during_it(world, tree: SpecTree, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, provider = world
    tree.spec("alpha")
    jobs = desired(tree)
    first = core.pass_once(jobs)
    assert first.finished() == []  # created, not finished
    provider.finish_all()
    second = core.pass_once(jobs)
    assert [(a.name, a.phase) for a in second.finished()] == [("alpha", Phase.SUCCEEDED)]
    assert core.pass_once(jobs).finished() == []  # once only


class FakeTime:
    """Monotonic time that moves only when slept: the loop under test uses no wall clock."""

    def __init__(self, clock: Clock, provider: FakeProvider, finish_after: float | None) -> None:
        self.clock, self.provider, self.finish_after = clock, provider, finish_after
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.clock.advance(seconds)
        if self.finish_after is not None and self.now >= self.finish_after:
            self.provider.finish_all()

    def monotonic(self) -> float:
        return self.now


def test_until_settled_passes_on_the_injected_clock(world, tree: SpecTree, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, provider = world
    tree.spec("alpha")
    jobs = desired(tree)
    fake = FakeTime(clock, provider, finish_after=25)
    passes: list[Any] = []
    settled = core.until_settled(
        jobs,
        core.pass_once(jobs),
        timeout=3600,
        interval=10,
        sleep=fake.sleep,
        monotonic=fake.monotonic,
        on_pass=passes.append,
    )
    assert not settled.timed_out and not settled.failed
    assert fake.sleeps == [10, 10, 10]  # the job finishes between the 2nd and 3rd look
    assert [a.kind for a in settled.last.plan.actions] == [Kind.NOOP]
    assert len(passes) == 3


def test_until_settled_gives_up_at_the_timeout(world, tree: SpecTree, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, provider = world
    tree.spec("alpha")
    jobs = desired(tree)
    fake = FakeTime(clock, provider, finish_after=None)
    settled = core.until_settled(
        jobs,
        core.pass_once(jobs),
        timeout=35,
        interval=10,
        sleep=fake.sleep,
        monotonic=fake.monotonic,
    )
    assert settled.timed_out and fake.sleeps == [10, 10, 10, 10]
    assert [a.kind for a in settled.last.plan.actions] == [Kind.WAIT]


def _saved(plan: Plan, tmp_path: Path) -> planfile.SavedPlan:
    path = tmp_path / "plan.json"
    document = planfile.plan_json(plan, ledger_path="l.db", specs_root="specs", offline=True)
    planfile.write(path, document)
    return planfile.read(path)


def test_a_saved_plan_reads_back_as_the_same_plan(world, tree: SpecTree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, _provider = world
    tree.spec("alpha")
    tree.spec("beta")
    jobs = desired(tree)
    core.pass_once(jobs)  # both created: the next plan has current attempts to carry
    tree.spec("alpha", hyperparameters={"epochs": 4, "learning_rate": 1e-5})
    jobs = desired(tree)
    plan = core.pass_once(jobs, execute=False).plan
    assert {a.name: a.kind for a in plan.actions} == {"alpha": Kind.REPLACE, "beta": Kind.WAIT}
    assert plan.lineage and plan.serial > 0
    assert _saved(plan, tmp_path).plan == plan


def test_a_saved_plan_runs_as_reviewed_and_only_while_current(
    world, tree: SpecTree, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, provider = world
    tree.spec("alpha")
    jobs = desired(tree)
    saved = _saved(core.pass_once(jobs, execute=False).plan, tmp_path)
    result = core.pass_once(jobs, saved=saved)
    assert result.plan is saved.plan
    assert [o.name for o in result.outcomes] == ["alpha"] and len(provider.jobs) == 1
    (job,) = provider.jobs.values()
    assert job.tag == saved.plan.actions[0].tag  # the reviewed attempt, not a recomputed one
    with pytest.raises(StalePlanError, match="the ledger changed since it was made"):
        core.pass_once(jobs, saved=saved)  # the ledger has moved since
    tree.spec("beta")
    with pytest.raises(StalePlanError, match="the inputs of 'beta' changed"):
        core.pass_once(
            desired(tree), saved=_saved(core.pass_once(jobs, execute=False).plan, tmp_path)
        )


def test_a_saved_plan_whose_inputs_changed_is_stale(world, tree: SpecTree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, provider = world
    tree.spec("alpha")
    saved = _saved(core.pass_once(desired(tree), execute=False).plan, tmp_path)
    tree.spec("alpha", hyperparameters={"epochs": 9})
    with pytest.raises(StalePlanError, match="the inputs of 'alpha' changed"):
        core.pass_once(desired(tree), saved=saved)
    assert not provider.jobs


def test_a_plan_document_from_another_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"format_version": "0.9", "actions": []}))
    with pytest.raises(StalePlanError, match=r"plan format '0\.9' is not 1\.0"):
        planfile.read(path)


def test_hold_removals_keeps_every_job_of_a_broken_spec(world, tree: SpecTree) -> None:  # type: ignore[no-untyped-def]
    core, _ledger, provider = world
    tree.spec("alpha")
    tree.spec("beta")
    core.pass_once(desired(tree))
    only_alpha = [j for j in desired(tree) if j.name == "alpha"]
    result = core.pass_once(only_alpha, hold=lambda name: name == "beta")
    assert [a.name for a in result.held] == ["beta"] and not result.outcomes
    assert all(j.phase.active for j in provider.jobs.values())
    assert dataclasses.replace(result.plan, actions=()).lineage == result.plan.lineage


def test_a_secret_option_is_resolved_only_in_the_request(
    tree: SpecTree, tmp_path: Path, clock: Clock
) -> None:
    provider = FakeProvider()
    ledger = open_ledger(tmp_path / "ledger.db", clock=clock)
    pool = FakePool(FakeDriver(provider), env={"WANDB_API_KEY": "wandb-SENTINEL-0123456789"})
    core = Reconciler(ledger, pool, clock=clock, adopt_grace=0)  # type: ignore[arg-type]
    tree.spec("tracked", options={"wandb_api_key": {"env": "WANDB_API_KEY"}})
    core.pass_once(desired(tree))
    (request,) = provider.requests.values()
    assert request.options == {"wandb_api_key": "wandb-SENTINEL-0123456789"}
    ledger.close()
    assert b"wandb-SENTINEL" not in (tmp_path / "ledger.db").read_bytes()
