"""The planner, as a table over every cell of DESIGN §3 (rows: current attempt,
columns: spec present with the same fingerprint / a new one / removed)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.fingerprint import fingerprint, training_inputs
from reconciler.model import Phase
from reconciler.plan import AttemptView, DesiredJob, Kind, SpecRecord, make_plan
from reconciler.providers import CATALOG
from reconciler.spec import JobSpec
from reconciler.tags import DEFAULT_NAMESPACE, tag_for

NOW = 1_000_000.0
SHA = "a" * 64


def job_spec(**over: Any) -> JobSpec:
    data: dict[str, Any] = {
        "provider": "together",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "training_file": "data/x.jsonl",
        "hyperparameters": {"epochs": 3, "learning_rate": 1e-5},
    }
    data.update(over)
    return JobSpec.model_validate(data)


def desired(name: str = "bot", sha: str = SHA, **over: Any) -> DesiredJob:
    return DesiredJob(
        name=name, spec=job_spec(**over), file=f"specs/{name}.yaml", training_sha256=sha
    )


def inputs_of(d: DesiredJob, from_output: str | None = None) -> dict[str, Any]:
    return training_inputs(d.spec, d.training_sha256, d.validation_sha256, from_output)


def attempt(
    d: DesiredJob,
    phase: Phase,
    n: int = 1,
    *,
    inputs: dict[str, Any] | None = None,
    **over: Any,
) -> AttemptView:
    inp = inputs if inputs is not None else inputs_of(d)
    fp = fingerprint(inp)
    values: dict[str, Any] = {
        "id": n,
        "name": d.name,
        "attempt": n,
        "fingerprint": fp,
        "tag": tag_for(DEFAULT_NAMESPACE, d.name, fp),
        "provider": d.spec.provider,
        "inputs": inp,
        "phase": phase,
        "remote_id": None if phase is Phase.PENDING else f"ft-{n}",
        "created_at": NOW - 100,
        "finished_at": NOW - 50 if phase.terminal else None,
    }
    values.update(over)
    return AttemptView(**values)


def record(*attempts: AttemptView, next_attempt: int | None = None) -> SpecRecord:
    top = max((a.attempt for a in attempts), default=0)
    return SpecRecord(attempts[0].name, tuple(attempts), next_attempt or top + 1)


OLD = desired()  # what the ledger's attempt was created from
NEW = desired(hyperparameters={"epochs": 3, "learning_rate": 2e-5})  # a changed spec


def plan_one(want: DesiredJob | None, rec: SpecRecord | None, now: float = NOW) -> Any:
    records = {rec.name: rec} if rec else {}
    plan = make_plan([want] if want else [], records, now)
    assert len(plan.actions) == 1
    return plan.actions[0]


# (row, column, current attempt, desired, expected kind, expected `then`)
CELLS = [
    ("none", "same", None, OLD, Kind.CREATE, None),
    ("none", "new", None, NEW, Kind.CREATE, None),
    ("intent", "same", attempt(OLD, Phase.PENDING), OLD, Kind.ADOPT, Kind.CREATE),
    ("intent", "new", attempt(OLD, Phase.PENDING), NEW, Kind.ADOPT, Kind.REPLACE),
    ("intent", "removed", attempt(OLD, Phase.PENDING), None, Kind.ADOPT, Kind.CANCEL),
    ("active", "same", attempt(OLD, Phase.RUNNING), OLD, Kind.WAIT, None),
    ("active", "new", attempt(OLD, Phase.RUNNING), NEW, Kind.REPLACE, None),
    ("active", "removed", attempt(OLD, Phase.RUNNING), None, Kind.CANCEL, None),
    ("succeeded", "same", attempt(OLD, Phase.SUCCEEDED), OLD, Kind.NOOP, None),
    ("succeeded", "new", attempt(OLD, Phase.SUCCEEDED), NEW, Kind.REPLACE, None),
    ("succeeded", "removed", attempt(OLD, Phase.SUCCEEDED), None, Kind.FORGET, None),
    (
        "failed-retryable",
        "same",
        attempt(
            OLD, Phase.FAILED, error="node lost", error_retryable=True, finished_at=NOW - 10_000
        ),
        OLD,
        Kind.RETRY,
        None,
    ),
    (
        "failed-retryable",
        "new",
        attempt(OLD, Phase.FAILED, error_retryable=True),
        NEW,
        Kind.REPLACE,
        None,
    ),
    (
        "failed-retryable",
        "removed",
        attempt(OLD, Phase.FAILED, error_retryable=True),
        None,
        Kind.FORGET,
        None,
    ),
    (
        "failed-permanent",
        "same",
        attempt(OLD, Phase.FAILED, error="bad data"),
        OLD,
        Kind.DEGRADED,
        None,
    ),
    (
        "failed-permanent",
        "new",
        attempt(OLD, Phase.FAILED, error="bad data"),
        NEW,
        Kind.REPLACE,
        None,
    ),
    ("failed-permanent", "removed", attempt(OLD, Phase.FAILED), None, Kind.FORGET, None),
    ("cancelled-elsewhere", "same", attempt(OLD, Phase.CANCELLED), OLD, Kind.DRIFT, None),
    ("cancelled-elsewhere", "new", attempt(OLD, Phase.CANCELLED), NEW, Kind.REPLACE, None),
    ("cancelled-elsewhere", "removed", attempt(OLD, Phase.CANCELLED), None, Kind.FORGET, None),
]


@pytest.mark.parametrize(
    ("row", "column", "current", "want", "kind", "then"),
    CELLS,
    ids=[f"{c[0]}/{c[1]}" for c in CELLS],
)
def test_every_cell_of_the_table(
    row: str,
    column: str,
    current: AttemptView | None,
    want: DesiredJob | None,
    kind: Kind,
    then: Kind | None,
) -> None:
    action = plan_one(want, record(current) if current else None)
    assert action.kind is kind, action.reason
    assert action.then is then
    assert action.reason  # every action says why
    if kind in (Kind.CREATE, Kind.RETRY, Kind.REPLACE):
        assert action.tag == tag_for(DEFAULT_NAMESPACE, action.name, action.fingerprint)


def test_replace_names_each_changed_field_old_to_new() -> None:
    action = plan_one(NEW, record(attempt(OLD, Phase.RUNNING)))
    assert [c.render() for c in action.changes] == ["hyperparameters.learning_rate: 1e-05 → 2e-05"]
    assert "hyperparameters.learning_rate" in action.reason
    assert action.attempt == 2


def test_new_data_content_forces_replacement_and_says_so() -> None:
    action = plan_one(desired(sha="b" * 64), record(attempt(OLD, Phase.SUCCEEDED)))
    assert action.kind is Kind.REPLACE
    assert [c.path for c in action.changes] == ["training_file.sha256"]
    assert action.changes[0].render() == "training_file.sha256: aaaaaaaaaaaa… → bbbbbbbbbbbb…"


def test_labels_policy_and_suspend_are_not_in_the_fingerprint() -> None:
    a = desired(policy={"max_attempts": 5, "on_delete": "orphan", "self_heal": True})
    assert fingerprint(inputs_of(a)) == fingerprint(inputs_of(OLD))
    assert plan_one(a, record(attempt(OLD, Phase.SUCCEEDED))).kind is Kind.NOOP


def test_suspended_spec_is_left_alone_whatever_its_state() -> None:
    for current in (None, attempt(OLD, Phase.RUNNING), attempt(OLD, Phase.FAILED)):
        action = plan_one(
            desired(suspend=True, hyperparameters={"epochs": 9}),
            record(current) if current else None,
        )
        assert action.kind is Kind.SUSPENDED
    # an interrupted create is still resolved (adopted or marked absent), never created
    pending = plan_one(desired(suspend=True), record(attempt(OLD, Phase.PENDING)))
    assert (pending.kind, pending.then) == (Kind.ADOPT, None)


def test_removed_running_job_with_orphan_policy_is_forgotten_not_cancelled() -> None:
    action = plan_one(None, record(attempt(OLD, Phase.RUNNING, on_delete="orphan")))
    assert action.kind is Kind.FORGET
    assert "orphan" in action.reason


def test_removed_intent_with_orphan_policy_adopts_then_forgets() -> None:
    action = plan_one(None, record(attempt(OLD, Phase.PENDING, on_delete="orphan")))
    assert (action.kind, action.then) == (Kind.ADOPT, Kind.FORGET)


def test_removed_job_already_cancelling_waits() -> None:
    action = plan_one(None, record(attempt(OLD, Phase.CANCELLING, cancel_requested=True)))
    assert action.kind is Kind.WAIT


def test_retry_waits_for_its_backoff_then_retries() -> None:
    failed = attempt(OLD, Phase.FAILED, error="oom", error_retryable=True, finished_at=NOW - 1)
    waiting = plan_one(OLD, record(failed))
    assert waiting.kind is Kind.WAIT and "retry 2 of 3" in waiting.reason
    assert plan_one(OLD, record(failed), now=NOW + 3600).kind is Kind.RETRY


def test_retries_stop_at_max_attempts() -> None:
    fails = [
        attempt(OLD, Phase.FAILED, n, error="oom", error_retryable=True, finished_at=NOW - 99_999)
        for n in (1, 2, 3)
    ]
    action = plan_one(OLD, record(*fails))
    assert action.kind is Kind.DEGRADED
    assert "3 of policy.max_attempts=3" in action.reason
    more = desired(policy={"max_attempts": 4})
    assert plan_one(more, record(*fails)).kind is Kind.RETRY


def test_cancelled_elsewhere_is_recreated_only_with_self_heal() -> None:
    cancelled = record(attempt(OLD, Phase.CANCELLED))
    assert plan_one(desired(policy={"self_heal": True}), cancelled).kind is Kind.CREATE


def test_cancelled_by_us_then_spec_back_is_created() -> None:
    ours = record(attempt(OLD, Phase.CANCELLED, cancel_requested=True))
    assert plan_one(OLD, ours).kind is Kind.CREATE


def test_attempt_numbers_continue_after_forgotten_attempts() -> None:
    action = plan_one(OLD, SpecRecord("bot", (), next_attempt=4))
    assert action.kind is Kind.CREATE and action.attempt == 4


def test_from_blocks_until_upstream_succeeded_then_includes_its_output() -> None:
    up = desired("base")
    down = desired("tuned", **{"from": {"job": "base"}})
    running = {"base": record(attempt(up, Phase.RUNNING))}
    plan = make_plan([up, down], running, NOW)
    blocked = plan.action("tuned")
    assert blocked is not None and blocked.kind is Kind.BLOCKED and blocked.blocked_on == "base"
    assert not plan.settled
    done = {"base": record(attempt(up, Phase.SUCCEEDED, fine_tuned_model="acct/base-model"))}
    create = make_plan([up, down], done, NOW).action("tuned")
    assert create is not None and create.kind is Kind.CREATE
    assert create.from_output == "acct/base-model"
    # a new upstream result is a new fingerprint downstream: it forces a replacement
    down_done = attempt(down, Phase.SUCCEEDED, inputs=inputs_of(down, "acct/base-model"))
    newer = {
        "base": record(attempt(up, Phase.SUCCEEDED, 2, fine_tuned_model="acct/base-v2")),
        "tuned": record(down_done),
    }
    replace = make_plan([up, down], newer, NOW).action("tuned")
    assert replace is not None and replace.kind is Kind.REPLACE
    assert [c.render() for c in replace.changes] == ["from: acct/base-model → acct/base-v2"]


def test_blocked_behind_a_permanently_failed_upstream_is_settled() -> None:
    up = desired("base")
    down = desired("tuned", **{"from": {"job": "base"}})
    plan = make_plan([up, down], {"base": record(attempt(up, Phase.FAILED, error="bad"))}, NOW)
    assert plan.action("tuned").kind is Kind.BLOCKED  # type: ignore[union-attr]
    assert plan.settled


def test_actions_are_sorted_by_name_and_counted() -> None:
    plan = make_plan([desired("b"), desired("a"), desired("c")], {}, NOW)
    assert [a.name for a in plan.actions] == ["a", "b", "c"]
    assert plan.counts() == {Kind.CREATE: 3}
    assert len(plan.changes) == 3


def test_planner_is_pure_of_io_imports() -> None:
    """The functional core stays free of httpx, sqlite and the like (STYLE.md)."""
    import ast
    from pathlib import Path

    pure = [
        "plan.py",
        "fingerprint.py",
        "spec.py",
        "datafiles.py",
        "datarules.py",
        "retry.py",
        "model.py",
        "catalog.py",
        "cost.py",
        "providers/__init__.py",
        *(
            f"providers/{p.replace('-', '_')}/{m}.py"
            for p in CATALOG.builtin
            for m in ("entry", "mapping")
        ),
    ]
    banned = {"httpx", "sqlite3", "sqlite_utils", "structlog", "watchfiles", "subprocess", "time"}
    root = Path(__file__).resolve().parents[1] / "reconciler"
    for name in pure:
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module]
            for mod in mods:
                assert mod.split(".")[0] not in banned, f"{name} imports {mod}"


def test_suspend_pauses_a_running_openai_job_and_unsuspend_resumes_it() -> None:
    oa = desired(provider="openai", model="gpt-4.1-mini-2025-04-14", hyperparameters={"epochs": 2})
    running = attempt(oa, Phase.RUNNING)
    suspended = desired(
        provider="openai",
        model="gpt-4.1-mini-2025-04-14",
        hyperparameters={"epochs": 2},
        suspend=True,
    )
    assert plan_one(suspended, record(running)).kind is Kind.PAUSE
    paused = attempt(oa, Phase.RUNNING, paused=True)
    held = plan_one(suspended, record(paused))
    assert held.kind is Kind.SUSPENDED and "(paused)" in held.reason
    assert plan_one(oa, record(paused)).kind is Kind.RESUME
    # Together cannot pause: suspend leaves its job alone
    assert (
        plan_one(desired(suspend=True), record(attempt(OLD, Phase.RUNNING))).kind is Kind.SUSPENDED
    )
