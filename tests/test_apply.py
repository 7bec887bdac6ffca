"""Apply and the crash protocol (DESIGN §4): kill the reconciler at every step of a
run, or make the provider fail there, then re-run; exactly one remote job per
attempt, every tagged remote job known to the ledger, nothing half-written."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from fakes import Crash, FakeDriver, FakePool, FakeProvider
from support import Clock, SpecTree

from reconciler.apply import Outcome
from reconciler.errors import ErrorKind, ProviderError
from reconciler.ledger import open_ledger
from reconciler.ledger.sqlite import SqliteLedger
from reconciler.loader import load_tree
from reconciler.model import Phase
from reconciler.observe import refresh
from reconciler.plan import Kind, Plan
from reconciler.reconcile import Reconciler
from reconciler.validation import desired_state


class Killer:
    """Counts every instant of a run (ledger commits, provider calls before and after)
    and dies at instant ``at``."""

    def __init__(self, at: int | None = None) -> None:
        self.at = at
        self.count = 0

    def tick(self, what: str) -> None:
        self.count += 1
        if self.at is not None and self.count == self.at:
            raise Crash(what)

    def hook(self, method: str, moment: str) -> None:
        self.tick(f"{method}:{moment}")


class CrashingLedger(SqliteLedger):
    killer: Killer = Killer()

    @contextlib.contextmanager
    def write(self, bump: bool = True) -> Iterator[sqlite_utils.Database]:
        with super().write(bump) as db:
            yield db
        self.killer.tick("commit")


class World:
    """A specs tree, a ledger file and a provider that outlives the reconciler."""

    def __init__(self, tree: SpecTree, ledger_path: Path, clock: Clock) -> None:
        self.tree = tree
        self.ledger_path = ledger_path
        self.clock = clock
        self.provider = FakeProvider()

    def jobs(self) -> list[Any]:
        specs = load_tree([self.tree.root])
        state = desired_state(specs, self.tree.root)
        assert not state.errors, state.errors
        return state.jobs

    def run(
        self, killer: Killer | None = None, adopt_grace: float = 0.0, hook: Any = None
    ) -> tuple[Plan, list[Outcome]]:
        """One apply pass: refresh, plan, execute (a new process each time)."""
        killer = killer or Killer()
        ledger = CrashingLedger.open(self.ledger_path, clock=self.clock)
        ledger.killer = killer
        pool = FakePool(FakeDriver(self.provider, hook=hook or killer.hook))
        try:
            core = Reconciler(ledger, pool, clock=self.clock, adopt_grace=adopt_grace)  # type: ignore[arg-type]
            result = core.pass_once(self.jobs())
            return result.plan, list(result.outcomes)
        finally:
            ledger.close()

    def converge(self, passes: int = 6) -> Plan:
        for _ in range(passes):
            self.clock.advance(120)
            plan, _ = self.run()
            if not plan.changes:
                return plan
        raise AssertionError(f"no convergence after {passes} passes: {plan.changes}")

    def ledger_rows(self) -> list[dict[str, Any]]:
        db = sqlite_utils.Database(sqlite3.connect(self.ledger_path))
        try:
            return list(db.query("SELECT * FROM attempts"))
        finally:
            db.conn.close()

    def check_invariants(self) -> None:
        rows = self.ledger_rows()
        tags = {r["tag"] for r in rows}
        # no two remote jobs for one (spec, fingerprint, attempt): a tag is shared by the
        # attempts of one spec at one fingerprint, so no more jobs than attempts, and never
        # two alive at once
        for tag in tags:
            jobs = self.provider.jobs_with_tag(tag)
            attempts = [r for r in rows if r["tag"] == tag]
            assert len(jobs) <= len(attempts), f"duplicate jobs for {tag}"
            assert sum(j.phase.active for j in jobs) <= 1, f"two live jobs for {tag}"
        assert len({r["remote_id"] for r in rows if r["remote_id"]}) == sum(
            1 for r in rows if r["remote_id"]
        ), "two attempts share one remote job"
        # every tagged remote job is known to the ledger, by tag and by id
        known_ids = {r["remote_id"] for r in rows}
        for job in self.provider.jobs.values():
            assert job.tag in tags, f"{job.id} carries unknown tag {job.tag}"
            assert job.id in known_ids, f"{job.id} unknown to the ledger"
        conn = sqlite3.connect(self.ledger_path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()


@pytest.fixture
def world(tree: SpecTree, tmp_path: Path, clock: Clock) -> World:
    tree.spec("alpha")
    tree.spec("beta", validation_file="data/val.jsonl")
    tree.data(
        "data/val.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                ]
            }
        ],
    )
    tree.spec("gamma", hyperparameters={"epochs": 1})
    return World(tree, tmp_path / "state" / "ledger.db", clock)


def test_a_clean_run_creates_one_job_per_spec_and_uploads_each_file_once(world: World) -> None:
    plan, outcomes = world.run()
    assert [a.kind for a in plan.changes] == [Kind.CREATE] * 3
    assert all(o.ok for o in outcomes), outcomes
    assert len(world.provider.jobs) == 3
    assert len(world.provider.files) == 2  # train.jsonl shared by all three, val.jsonl once
    world.check_invariants()
    plan, outcomes = world.run()
    assert not plan.changes and not outcomes
    assert {a.kind for a in plan.actions} == {Kind.WAIT}


def _instants(world: World) -> int:
    killer = Killer()
    world.run(killer)
    return killer.count


def test_kill_at_every_instant_then_rerun_never_duplicates(
    tree: SpecTree, tmp_path: Path, clock: Clock
) -> None:
    probe = World(tree, tmp_path / "probe.db", clock)
    tree.spec("alpha")
    tree.spec("beta", hyperparameters={"epochs": 1})
    total = _instants(probe)
    assert (
        total >= 14
    )  # migration, upload (intent, call, record), 2 × (intent, posting, call, record)
    for at in range(1, total + 1):
        w = World(tree, tmp_path / f"crash-{at}.db", Clock(clock.now))
        with pytest.raises(Crash):
            w.run(Killer(at))
        w.converge()
        w.check_invariants()
        rows = [r for r in w.ledger_rows() if r["status"] != "absent"]
        assert sorted(r["spec_name"] for r in rows) == ["alpha", "beta"], at
        assert all(r["remote_id"] for r in rows), at
        assert len(w.provider.jobs) == 2, f"crash at instant {at}: {len(w.provider.jobs)} jobs"
        assert len(w.provider.files) == 1, at


def _fail_after_create(kind: ErrorKind, ambiguous: bool) -> Any:
    def hook(method: str, moment: str) -> None:
        if method == "create_job" and moment == "after":
            raise ProviderError("together", "boom", kind=kind, status=502, ambiguous=ambiguous)

    return hook


def test_ambiguous_create_failure_is_adopted_by_tag_not_posted_again(world: World) -> None:
    _plan, outcomes = world.run(hook=_fail_after_create(ErrorKind.RETRYABLE, True))
    assert all(o.pending for o in outcomes)
    assert len(world.provider.jobs) == 3  # the provider did create them
    world.converge()
    assert len(world.provider.jobs) == 3
    world.check_invariants()
    assert {r["status"] for r in world.ledger_rows()} == {"queued"}


def test_create_lost_before_reaching_the_provider_is_posted_once_more(world: World) -> None:
    def hook(method: str, moment: str) -> None:
        if method == "create_job" and moment == "before":
            raise ProviderError("together", "timed out", kind=ErrorKind.RETRYABLE, ambiguous=True)

    _, outcomes = world.run(hook=hook)
    assert all(o.pending for o in outcomes) and not world.provider.jobs
    world.converge()
    assert len(world.provider.jobs) == 3
    world.check_invariants()


def test_list_lag_inside_the_grace_period_waits_instead_of_duplicating(world: World) -> None:
    world.run(hook=_fail_after_create(ErrorKind.RETRYABLE, True))
    world.provider.list_lag = set(world.provider.jobs)  # the new jobs are not listed yet
    world.clock.advance(5)
    plan, outcomes = world.run(adopt_grace=60)
    assert [a.kind for a in plan.changes] == [Kind.ADOPT] * 3
    assert all(o.pending and "lists may lag" in o.message for o in outcomes)
    assert len(world.provider.jobs) == 3
    world.provider.list_lag.clear()
    world.clock.advance(5)
    _, outcomes = world.run(adopt_grace=60)
    assert all(o.ok and "adopted" in o.message for o in outcomes)
    world.check_invariants()


def test_permanent_create_error_marks_the_attempt_failed_and_degraded(world: World) -> None:
    def hook(method: str, moment: str) -> None:
        if method == "create_job" and moment == "before":
            raise ProviderError(
                "together", "model not supported", kind=ErrorKind.PERMANENT, status=400
            )

    _, outcomes = world.run(hook=hook)
    assert not any(o.ok for o in outcomes)
    assert all("model not supported" in o.message for o in outcomes)
    plan, _ = world.run()
    assert {a.kind for a in plan.actions} == {Kind.DEGRADED}
    assert not world.provider.jobs


def test_auth_error_stops_that_provider_and_leaves_no_failed_attempt(world: World) -> None:
    calls = []

    def hook(method: str, moment: str) -> None:
        calls.append(method)
        if method == "upload_file":
            raise ProviderError(
                "together", "authentication failed", kind=ErrorKind.AUTH, status=401
            )

    _, outcomes = world.run(hook=hook)
    assert [o.ok for o in outcomes] == [False] * 3
    assert calls.count("upload_file") == 1  # not hammered once per spec
    plan, outcomes = world.run()  # key fixed
    assert [a.kind for a in plan.changes] == [Kind.CREATE] * 3
    assert all(o.ok for o in outcomes)
    world.check_invariants()


def test_replace_cancels_the_running_job_and_creates_the_next_attempt(world: World) -> None:
    world.run()
    world.tree.spec("alpha", hyperparameters={"epochs": 3, "learning_rate": 3e-5})
    plan, outcomes = world.run()
    (replace,) = plan.changes
    assert replace.kind is Kind.REPLACE and replace.attempt == 2
    assert "learning_rate" in replace.reason
    assert "cancel requested" in outcomes[0].message and "created" in outcomes[0].message
    alpha = sorted(
        (r for r in world.ledger_rows() if r["spec_name"] == "alpha"), key=lambda r: r["attempt"]
    )
    assert [r["status"] for r in alpha] == ["cancelling", "queued"]
    assert alpha[0]["cancel_requested"] == 1
    world.check_invariants()


def test_removing_a_spec_cancels_its_running_job_then_forgets_it(world: World) -> None:
    world.run()
    world.tree.remove("gamma")
    plan, outcomes = world.run()
    assert [(a.kind, a.name) for a in plan.changes] == [(Kind.CANCEL, "gamma")]
    assert outcomes[0].ok
    gamma_job = next(
        j for j in world.provider.jobs.values() if world.provider.requests[j.id].name == "gamma"
    )
    world.provider.set_phase(gamma_job.id, Phase.CANCELLED)
    plan, _ = world.run()
    assert [(a.kind, a.name) for a in plan.changes] == [(Kind.FORGET, "gamma")]
    plan, _ = world.run()
    assert "gamma" not in {a.name for a in plan.actions}


def test_retry_after_a_retryable_failure_makes_a_new_attempt(world: World) -> None:
    world.run()
    for job in list(world.provider.jobs.values()):
        world.provider.set_phase(job.id, Phase.FAILED, error="node lost", error_retryable=True)
    plan, _ = world.run()  # the failure is seen now: the retry waits for its backoff
    assert {a.kind for a in plan.actions} == {Kind.WAIT}
    assert all("retry 2 of 3 in" in a.reason for a in plan.actions)
    world.clock.advance(31)
    plan, _outcomes = world.run()
    assert [a.kind for a in plan.changes] == [Kind.RETRY] * 3
    assert all(a.attempt == 2 for a in plan.changes)
    assert len(world.provider.jobs) == 6
    world.check_invariants()


def test_succeeded_jobs_are_never_polled_again(world: World) -> None:
    world.run()
    world.provider.finish_all()
    world.run()  # records success
    driver = FakeDriver(world.provider)
    ledger = open_ledger(world.ledger_path)
    try:
        assert refresh(ledger.records(), FakePool(driver)).observed == {}  # type: ignore[arg-type]
    finally:
        ledger.close()
    assert driver.calls == []


def test_refresh_uses_one_list_call_for_many_active_jobs(world: World) -> None:
    world.run()
    driver = FakeDriver(world.provider)
    ledger = open_ledger(world.ledger_path)
    try:
        observed = refresh(ledger.records(), FakePool(driver)).observed  # type: ignore[arg-type]
    finally:
        ledger.close()
    assert len(observed) == 3
    assert driver.calls == ["list_jobs"]


# -- regressions found in review ------------------------------------------------------


def test_grace_counts_from_the_end_of_a_slow_ambiguous_post(world: World) -> None:
    hung = []

    def slow_timeout(method: str, moment: str) -> None:
        if method == "create_job" and moment == "after":
            if not hung:
                world.clock.advance(70)  # the first POST hangs for 70 s, then times out
                hung.append(True)
            raise ProviderError("together", "timed out", kind=ErrorKind.RETRYABLE, ambiguous=True)

    world.run(hook=slow_timeout, adopt_grace=60)
    world.provider.list_lag = set(world.provider.jobs)
    world.clock.advance(10)
    _, outcomes = world.run(adopt_grace=60)
    assert all(o.pending for o in outcomes), outcomes
    assert len(world.provider.jobs) == 3  # nothing posted twice


def test_a_lost_ledger_adopts_the_job_its_tag_finds(world: World) -> None:
    world.run()
    world.ledger_path.unlink()
    for suffix in ("-wal", "-shm"):
        world.ledger_path.with_name(world.ledger_path.name + suffix).unlink(missing_ok=True)
    _, outcomes = world.run()
    assert all("found by tag before posting" in o.message for o in outcomes), outcomes
    assert len(world.provider.jobs) == 3
    world.check_invariants()


def test_on_delete_follows_the_latest_spec_not_the_one_at_create_time(world: World) -> None:
    world.run()
    world.tree.spec("gamma", hyperparameters={"epochs": 1}, policy={"on_delete": "orphan"})
    world.run()
    world.tree.remove("gamma")
    plan, _ = world.run()
    assert [(a.kind, a.name) for a in plan.changes] == [(Kind.FORGET, "gamma")]
    assert all(j.phase.active for j in world.provider.jobs.values())


def test_a_job_gone_at_the_provider_is_drift_not_an_endless_wait(world: World) -> None:
    world.run()
    gone = next(iter(world.provider.jobs))
    del world.provider.jobs[gone]
    # one 404 is not evidence (a proxy hiccup, a wrong endpoint): the job is looked at again
    for _ in range(2):
        plan, _ = world.run()
        assert not [a for a in plan.actions if a.kind is Kind.DRIFT]
        world.clock.advance(40)
    plan, _ = world.run()  # the third look, 80 s after the first
    drift = [a for a in plan.actions if a.kind is Kind.DRIFT]
    assert len(drift) == 1 and "no longer exists" in (drift[0].current.error or "")  # type: ignore[union-attr]


def test_one_404_neither_writes_a_job_off_nor_lets_it_be_forgotten(world: World) -> None:
    world.run()
    job_id = next(iter(world.provider.jobs))
    job = world.provider.jobs.pop(job_id)  # a hiccup: one 404 ...
    world.run()
    world.provider.jobs[job_id] = job  # ... and the job is there again
    world.clock.advance(120)
    plan, _ = world.run()
    assert {a.kind for a in plan.actions} == {Kind.WAIT}
    rows = {r["remote_id"]: r for r in world.ledger_rows()}
    assert rows[job_id]["status"] == "queued" and rows[job_id]["misses"] == 0


def test_a_create_refused_with_404_is_not_reposted_every_pass(world: World) -> None:
    def refuse(method: str, moment: str) -> None:
        if method == "create_job" and moment == "before":
            raise ProviderError("together", "model not found", kind=ErrorKind.NOT_FOUND, status=404)

    world.run(hook=refuse)
    plan, outcomes = world.run(hook=refuse)
    assert not outcomes
    assert {a.kind for a in plan.actions} == {Kind.DEGRADED}
    assert all("model not found" in a.reason for a in plan.actions)


def test_a_suspended_spec_still_resolves_its_interrupted_create(world: World) -> None:
    with pytest.raises(Crash):
        world.run(Killer(at=10))  # somewhere inside the first creates
    for name in ("alpha", "beta", "gamma"):
        world.tree.spec(name, suspend=True)
    world.tree.data(
        "data/val.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                ]
            }
        ],
    )
    world.clock.advance(600)
    world.run()
    rows = world.ledger_rows()
    assert all(r["status"] != "pending" for r in rows), rows
    world.check_invariants()


def test_a_type_only_change_is_still_a_replace(world: World) -> None:
    world.tree.spec("alpha", options={"train_on_inputs": 1})
    world.run()
    world.tree.spec("alpha", options={"train_on_inputs": True})
    plan, _ = world.run()
    (replace,) = plan.changes
    assert replace.kind is Kind.REPLACE
    assert [c.render() for c in replace.changes] == ["options.train_on_inputs: 1 → true"]
