"""The emulator's pure parts, without a server: job lives on a clock, the request-schema
checker, training-data inspection, fault decisions, the clock and the store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.emulator.clock import Clock
from reconciler.emulator.core import inspect_jsonl
from reconciler.emulator.faults import FaultConfig, Faults
from reconciler.emulator.lifecycle import (
    JobKind,
    new_life,
    plan_failure,
    request_cancel,
    snapshot,
)
from reconciler.emulator.schema import check, nullable
from reconciler.emulator.store import Store

STATUSES = {"test": ("pending", "queued", "running")}  # what a stuck fault may hold here
KIND = JobKind("test", "running", "error", "user_error", "running", "cancelled", "cancelling", 3.0)
PHASES = [("pending", 2.0), ("queued", 5.0), ("running", 10.0), ("completed", 0.0)]
T0 = 1_000_000.0


def status_at(life: dict[str, object], seconds: float, **kw: str | None) -> str:
    return snapshot(life, KIND, T0, T0 + seconds, **kw).status  # type: ignore[arg-type]


def test_phases_follow_each_other_on_the_clock() -> None:
    life = new_life(PHASES)
    assert [status_at(life, s) for s in (0, 1.9, 2, 6.9, 7, 16.9, 17, 1e6)] == [
        "pending",
        "pending",
        "queued",
        "queued",
        "running",
        "running",
        "completed",
        "completed",
    ]
    snap = snapshot(life, KIND, T0, T0 + 12)
    assert snap.fraction(2) == pytest.approx(0.5) and snap.fraction(1) == 1.0
    assert snap.abs_at(snap.starts[2]) == T0 + 7 and not snap.terminal
    done = snapshot(life, KIND, T0, T0 + 100)
    assert done.terminal and done.finished_at == T0 + 17 and done.fraction(2) == 1.0


def test_a_parked_phase_waits_for_its_release() -> None:
    life = new_life(PHASES, park=1)
    assert status_at(life, 1e6) == "queued"
    life["released"] = 10.0  # released at effective second 10
    assert status_at(life, 10) == "running" and status_at(life, 19.9) == "running"
    assert status_at(life, 20) == "completed"


def test_pauses_freeze_progress_and_shift_later_times() -> None:
    life = new_life(PHASES)
    life["pauses"] = [[T0 + 10, None]]
    paused = snapshot(life, KIND, T0, T0 + 1000)
    assert paused.status == "running" and paused.paused and paused.t == 10
    life["pauses"] = [[T0 + 10, T0 + 110]]
    resumed = snapshot(life, KIND, T0, T0 + 115)
    assert resumed.t == 15 and not resumed.paused
    assert resumed.abs_at(17) == T0 + 117  # the end of training moved by the pause


def test_a_kind_with_a_paused_status_reports_it_while_paused_only() -> None:
    kind = replace(KIND, paused="paused")
    life = new_life(PHASES)
    life["pauses"] = [[T0 + 10, None]]
    assert snapshot(life, kind, T0, T0 + 1000).status == "paused"
    request_cancel(life, snapshot(life, kind, T0, T0 + 1000), T0 + 1000)
    assert snapshot(life, kind, T0, T0 + 1001).status == "cancelling"  # cancel wins
    life = new_life(PHASES)
    life["pauses"] = [[T0 + 10, T0 + 20]]
    assert snapshot(life, kind, T0, T0 + 25).status == "running"  # resumed


def test_cancel_goes_through_the_transient_status() -> None:
    life = new_life(PHASES)
    request_cancel(life, snapshot(life, KIND, T0, T0 + 8), T0 + 8)
    assert status_at(life, 8) == "cancelling" and status_at(life, 10.9) == "cancelling"
    snap = snapshot(life, KIND, T0, T0 + 11)
    assert snap.status == "cancelled" and snap.finished_at == T0 + 11 and snap.t == 8
    assert status_at(life, 1e6) == "cancelled"
    immediate = JobKind("x", "running", "failed", "failed", "queued", "cancelled")
    other = new_life(PHASES)
    request_cancel(other, snapshot(other, immediate, T0, T0 + 8), T0 + 8)
    assert snapshot(other, immediate, T0, T0 + 8).status == "cancelled"


def test_failures_are_planned_by_kind() -> None:
    retry = new_life(PHASES)
    plan_failure(retry, KIND, retryable=True, message="boom", at_progress=0.5)
    assert status_at(retry, 11.9) == "running" and status_at(retry, 12) == "error"
    failed = snapshot(retry, KIND, T0, T0 + 50)
    assert failed.stopped == "failed" and failed.finished_at == T0 + 12
    permanent = new_life(PHASES)
    plan_failure(permanent, KIND, retryable=False, message="bad data")
    assert status_at(permanent, 6.9) == "queued" and status_at(permanent, 7) == "user_error"
    late = new_life(PHASES)
    plan_failure(late, KIND, retryable=True, message="now", at_progress=0.0, not_before=14)
    assert status_at(late, 13.9) == "running" and status_at(late, 14) == "error"
    parked = new_life(PHASES, park=1)
    plan_failure(parked, KIND, retryable=True, message="later")
    assert status_at(parked, 1e6) == "queued"  # not before it is released


def test_stuck_holds_a_status_and_a_cancel_keeps_the_hold() -> None:
    life = new_life(PHASES)
    assert status_at(life, 1e6, stuck="queued") == "queued"
    assert status_at(life, 1, stuck="queued") == "pending"  # not reached yet: no effect
    request_cancel(life, snapshot(life, KIND, T0, T0 + 100, stuck="queued"), T0 + 100)
    assert status_at(life, 200) == "cancelled"  # without the fault, still cancelled


# ---------------------------------------------------------------- the schema checker

NODE = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 5},
        "n": {"anyOf": [{"enum": ["auto"]}, {"type": "integer", "minimum": 1, "maximum": 9}]},
        "opt": nullable({"type": "object", "required": ["x"], "properties": {"x": {}}}),
        "kind": {
            "type": "object",
            "discriminator": "method",
            "cases": {"a": {"properties": {"method": {}, "beta": {"type": "number"}}}},
        },
    },
}


@pytest.mark.parametrize(
    ("value", "kind", "loc"),
    [
        ({}, "missing", ("name",)),
        ({"name": "x", "zzz": 1}, "extra", ("zzz",)),
        ({"name": 3}, "type", ("name",)),
        ({"name": "toolong"}, "too_long", ("name",)),
        ({"name": "x", "n": 10}, "too_big", ("n",)),
        ({"name": "x", "n": "many"}, "enum", ("n",)),
        ({"name": "x", "opt": {}}, "missing", ("opt", "x")),
        ({"name": "x", "kind": {"method": "b"}}, "enum", ("kind", "method")),
        ({"name": "x", "kind": {"method": "a", "beta": "high"}}, "type", ("kind", "beta")),
    ],
)
def test_schema_problems(value: object, kind: str, loc: tuple[str, ...]) -> None:
    problem = check(value, NODE)
    assert problem is not None and (problem.kind, problem.loc) == (kind, loc)


def test_schema_accepts_good_values() -> None:
    good = {"name": "ok", "n": "auto", "opt": None, "kind": {"method": "a", "beta": 1}}
    assert check(good, NODE) is None
    assert check({"name": "ok", "n": 3.0}, NODE) is None  # 3.0 is an integer in JSON
    assert check({"name": "ok", "n": True}, NODE) is not None  # a boolean is not


# ---------------------------------------------------------------- data files


@pytest.mark.parametrize(
    ("lines", "fmt", "error"),
    [
        ([{"messages": []}], "CONVERSATION", None),
        ([{"prompt": "a", "completion": "b"}], "INSTRUCTION", None),
        ([{"text": "a"}], "GENERAL", None),
        ([{"input": {}, "preferred_output": [], "non_preferred_output": []}], "PREFERENCE", None),
        ([{"text": "a", "messages": []}], None, "several formats"),
        ([{"text": "a"}, {"messages": []}], None, "after GENERAL"),
        ([{"other": 1}], None, "no known dataset format"),
        ([], None, "no examples"),
    ],
)
def test_inspect_jsonl(lines: list[object], fmt: str | None, error: str | None) -> None:
    info = inspect_jsonl("".join(json.dumps(line) + "\n" for line in lines).encode())
    assert info.format == fmt
    assert (info.error is None) if error is None else (error in str(info.error))


def test_inspect_rejects_non_json() -> None:
    assert "line 2: not valid JSON" in str(inspect_jsonl(b'{"text": "a"}\nnope\n').error)
    assert "UTF-8" in str(inspect_jsonl(b"\xff\xfe").error)
    assert inspect_jsonl(b'{"text": "abcd"}\n\n').tokens == 5  # 18 bytes / 4, rounded up


def test_inspect_reads_past_a_leading_bom_only_when_told() -> None:
    bom, line = b"\xef\xbb\xbf", b'{"text": "a"}\n'
    refused = inspect_jsonl(bom + line).error
    assert refused == "line 1: not valid JSON (it starts with a UTF-8 byte-order mark)"
    read = inspect_jsonl(bom + line, leading_bom=True)
    assert read.valid and read.lines == 1 and read.bytes == len(bom + line)
    assert inspect_jsonl(bom + b"\n" + line, leading_bom=True).lines == 1  # a BOM-only line
    joined = inspect_jsonl(line + bom + line, leading_bom=True).error
    assert joined is not None and joined.startswith("line 2: not valid JSON")


# ---------------------------------------------------------------- faults


def test_fault_config_parsing() -> None:
    config = FaultConfig.from_json(
        {"rpm": 5, "fail_jobs": ["flaky"], "stuck": ["queued"]}, statuses=STATUSES
    )
    assert config.fail_jobs[0].match == "flaky" and config.stuck[0].status == "queued"
    assert FaultConfig.from_json(config.to_json(), statuses=STATUSES) == config
    for bad in (
        {"rpm": 0},
        {"error_rate": -0.1},
        {"drop_mode": "x"},
        {"x": 1},
        {"stuck": [{"status": "q", "oops": 1}]},
        {"latency_ms": "fast"},
    ):
        with pytest.raises(ValueError):
            FaultConfig.from_json(bad, statuses=STATUSES)
    merged = FaultConfig(error_next=3).merged({"latency_ms": 5}, statuses=STATUSES)
    assert merged.latency_ms == 5 and merged.error_next == 0  # one-shot counters do not re-arm


def test_rate_window_and_counters() -> None:
    faults = Faults(FaultConfig(rpm=2, error_next=1))
    first = faults.decide("together", "GET", "/x", 100.0)
    assert first.error in (500, 503) and first.remaining == 1
    assert faults.decide("together", "GET", "/x", 101.0).error is None
    limited = faults.decide("together", "GET", "/x", 102.0)
    assert limited.retry_after == pytest.approx(58.0) and limited.remaining == 0
    assert faults.decide("openai", "GET", "/x", 102.0).retry_after is None  # per provider
    assert faults.decide("together", "GET", "/x", 160.5).retry_after is None  # window moved


def test_random_faults_repeat_under_a_seed() -> None:
    def draws() -> list[object]:
        faults = Faults(FaultConfig(error_rate=0.3, drop_rate=0.3, seed=11))
        return [(d.error, d.drop) for d in (faults.decide("p", "GET", "/", 0) for _ in range(50))]

    assert draws() == draws()
    assert any(e for e, _ in draws()) and any(d for _, d in draws())


def test_fault_targets() -> None:
    faults = Faults(FaultConfig(error_rate=1.0, methods=("POST",), path_contains="fine-tunes"))
    assert faults.decide("p", "GET", "/fine-tunes", 0).error is None
    assert faults.decide("p", "POST", "/files", 0).error is None
    assert faults.decide("p", "POST", "/v1/fine-tunes", 0).error is not None


# ---------------------------------------------------------------- clock and store


def test_clock_speed_advance_and_restart(tmp_path: Path) -> None:
    real = [1000.0]
    clock = Clock(10.0, real=lambda: real[0])
    store = Store(tmp_path / "s.db")
    clock.attach(store)
    real[0] += 2
    assert clock.now() == pytest.approx(1020.0)
    assert clock.advance(100) == pytest.approx(1120.0)
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.set_speed(1.0)
    real[0] += 5
    assert clock.now() == pytest.approx(1125.0)
    store.close()
    # restarted 10 s later: the downtime passed at the old speed (1x)
    real[0] += 10
    again = Clock(50.0, real=lambda: real[0])
    again.attach(Store(tmp_path / "s.db"))
    assert again.now() == pytest.approx(1135.0) and again.speed == 50.0


def test_store_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    row = store.insert("job", "p", "j1", 5.0, {"a": 1}, b"bytes")
    row.data["a"] = 2
    store.update(row)
    store.close()
    reopened = Store(tmp_path / "state.db")
    found = reopened.get("job", "j1")
    assert found is not None and found.data == {"a": 2} and found.created_at == 5.0
    assert reopened.content("job", "j1") == b"bytes"
    assert reopened.get("job", "j1", provider="other") is None
    assert [r.id for r in reopened.all("job", "p")] == ["j1"]
    assert reopened.delete("job", "j1") and not reopened.delete("job", "j1")
    reopened.set_meta("k", {"x": [1]})
    assert reopened.meta("k") == {"x": [1]} and reopened.meta("missing") is None
