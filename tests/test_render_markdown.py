"""`plan --format markdown`: what a reviewer reads in a pull-request comment."""

from __future__ import annotations

from typing import Any

from reconciler.fingerprint import FieldChange, fingerprint, training_inputs
from reconciler.model import Phase
from reconciler.plan import Action, AttemptView, DesiredJob, Kind, Plan, SpecRecord, make_plan
from reconciler.render import md_code, md_text, plan_markdown, summary_line
from reconciler.spec import JobSpec
from reconciler.tags import DEFAULT_NAMESPACE, tag_for

NOW = 1_000_000.0
SHA = "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def desired(name: str, cost: float | None = None, **over: Any) -> DesiredJob:
    data: dict[str, Any] = {
        "provider": "together",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "training_file": "data/x.jsonl",
        "hyperparameters": {"epochs": 3, "learning_rate": 1e-5},
    }
    data.update(over)
    spec = JobSpec.model_validate(data)
    return DesiredJob(
        name=name,
        spec=spec,
        file=f"specs/{name}.yaml",
        training_sha256=SHA,
        estimated_cost_usd=cost,
    )


def running(d: DesiredJob, phase: Phase = Phase.RUNNING) -> SpecRecord:
    inputs = training_inputs(d.spec, d.training_sha256, None, None)
    fp = fingerprint(inputs)
    view = AttemptView(
        id=1,
        name=d.name,
        attempt=1,
        fingerprint=fp,
        tag=tag_for(DEFAULT_NAMESPACE, d.name, fp),
        provider=d.spec.provider,
        inputs=inputs,
        phase=phase,
        remote_id="ft-1",
        created_at=NOW - 100,
        fine_tuned_model="acct/bot-v1" if phase is Phase.SUCCEEDED else None,
    )
    return SpecRecord(d.name, (view,), 2)


def mixed_plan() -> Plan:
    """A create, a replace (learning rate changed), a wait and a no-op."""
    old = desired("reviewer")
    new = desired("reviewer", cost=2.5, hyperparameters={"epochs": 3, "learning_rate": 2e-5})
    records = {
        "reviewer": running(old),
        "steady": running(desired("steady")),
        "done": running(desired("done"), Phase.SUCCEEDED),
    }
    wants = [desired("bot", cost=1.25), new, desired("steady"), desired("done")]
    return make_plan(wants, records, NOW)


def test_a_plan_with_changes() -> None:
    md = plan_markdown(mixed_plan(), commit=COMMIT)
    lines = md.splitlines()
    assert lines[0] == "<!-- reconciler-plan -->"
    assert lines[1] == "### reconciler plan"
    assert "Specs at commit `0123456789ab`." in md
    assert (
        "**Plan: 1 to create, 1 to replace, 0 to cancel, 0 to adopt, 0 to forget. "
        "Unchanged: 1 wait, 1 no-op. Estimated new spend: \\~\\$3.75.**"
    ) in lines
    assert "| | action | name | provider | reason | estimate | budget |" in lines
    rows = [line for line in lines if line.startswith("| `")]
    assert rows[0] == "| `+` | create | **bot** | together | new spec | \\~\\$1.25 |  |"
    assert rows[1].startswith("| `-/+` | replace | **reviewer** | together | hyperparameters.lea")
    assert "\\~\\$2.50" in rows[1]
    # field changes, old → new, under the replace
    assert "<details open><summary><b>reviewer</b>: 1 field forces a new job</summary>" in md
    assert "- `hyperparameters.learning_rate`: `1e-05` → `2e-05`" in lines
    # the unchanged jobs, collapsed
    assert "<details><summary>Unchanged: 2 jobs</summary>" in lines
    assert "| `=` | wait | steady | together | running |" in lines
    assert "| ` ` | no-op | done | together | succeeded: acct/bot-v1 |" in lines
    assert "No changes" not in md
    assert md.endswith("</details>\n")


def test_output_is_stable_and_sorted_as_the_plan() -> None:
    plan = mixed_plan()
    assert plan_markdown(plan) == plan_markdown(mixed_plan())
    md = plan_markdown(plan)
    assert md.index("**bot**") < md.index("**reviewer**")
    assert md.index("| done |") < md.index("| steady |")


def test_no_changes() -> None:
    plan = make_plan([desired("done")], {"done": running(desired("done"), Phase.SUCCEEDED)}, NOW)
    md = plan_markdown(plan, offline=True)
    assert "**No changes.** Reality matches the specs." in md
    assert "Offline: planned from the ledger alone" in md
    assert "| | action |" not in md
    assert "<details><summary>Unchanged: 1 job</summary>" in md


def test_an_empty_plan() -> None:
    md = plan_markdown(Plan(()), title="plan for #42")
    assert md.splitlines()[1] == "### plan for \\#42"
    assert "**No changes.** No specs and no jobs in the ledger: nothing to do." in md
    assert "<details>" not in md and "| |" not in md
    assert "**Plan: 0 to create, 0 to replace, 0 to cancel, 0 to adopt, 0 to forget.**" in md


def test_refused_by_budget_is_marked() -> None:
    plan = make_plan([desired("big", cost=80.0, policy={"budget_usd": 50})], {}, NOW)
    md = plan_markdown(plan)
    (row,) = [line for line in md.splitlines() if line.startswith("| `+`")]
    assert row.endswith("| **refused:** estimate \\$80.00 exceeds policy.budget\\_usd \\$50.00 |")
    assert "1 refused by budget." in md
    assert "Estimated new spend" not in md  # a refused create is not spend


def test_user_text_cannot_break_the_table_or_ping_anyone() -> None:
    nasty = "a | b <script>x</script> *bold* [link](http://x) @team `tick`\nsecond line"
    action = Action(
        Kind.CANCEL,
        name="bot",
        provider="openai",
        reason=nasty,
        changes=(FieldChange("options.note", "x|`y`", None),),
    )
    md = plan_markdown(Plan((action,)))
    (row,) = [line for line in md.splitlines() if line.startswith("| `-`")]
    assert row.count(" | ") == 6  # seven cells, none split by the reason's '|'
    assert "a \\| b \\<script\\>x\\</script\\> \\*bold\\* \\[link\\](http://x) \\@team" in row
    assert "\\`tick\\` second line" in row
    assert "<script>" not in md
    assert "- `options.note`: `` x|`y` `` → `(unset)`" in md


def test_adopt_then_replace_and_the_pause_summary() -> None:
    actions = (
        Action(
            Kind.ADOPT,
            name="a",
            provider="together",
            reason="resolve",
            then=Kind.REPLACE,
            changes=(FieldChange("model", "m1", "m2"), FieldChange("training_file", SHA, "b" * 64)),
        ),
        Action(Kind.PAUSE, name="b", provider="openai", reason="spec.suspend is true"),
    )
    md = plan_markdown(Plan(actions))
    assert "| `~` | adopt, then replace | **a** |" in md
    assert "<b>a</b>: 2 fields force a new job" in md
    assert f"- `training_file`: `{SHA[:12]}…` → `{'b' * 12}…`" in md
    assert summary_line(Plan(actions)).startswith(
        "Plan: 0 to create, 0 to replace, 0 to cancel, 1 to adopt, 0 to forget, "
        "1 to pause, 0 to resume."
    )


def test_escaping_helpers() -> None:
    assert md_text("x_y|z\n  w") == "x\\_y\\|z w"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`a") == "`` `a ``"
    assert md_code("a|b", in_table=True) == "`a\\|b`"
    assert md_code("-/+") == "`-/+`"
    assert md_code(" ") == "` `"
