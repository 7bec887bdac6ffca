"""Cost estimates and budgets: an over-budget create is marked in the plan and refused
by apply, while the rest of the plan still applies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeDriver, FakePool
from support import Clock, SpecTree
from test_apply import World
from test_plan import NOW, desired

from reconciler.cost import estimate, model_size_b
from reconciler.model import Phase
from reconciler.plan import Kind, make_plan
from reconciler.providers import CATALOG
from reconciler.spec import JobSpec


def spec(**over: Any) -> JobSpec:
    data: dict[str, Any] = {
        "provider": "together",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "training_file": "d.jsonl",
    }
    data.update(over)
    return JobSpec.model_validate(data)


def test_model_sizes_are_read_from_names() -> None:
    assert model_size_b("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference") == 8
    assert model_size_b("meta-llama/Meta-Llama-3.1-70B-Instruct-Reference") == 70
    assert model_size_b("Qwen/Qwen2.5-7B-Instruct") == 7
    assert model_size_b("gpt-4.1-mini") is None


def test_together_estimate_is_tokens_times_epochs_times_the_bracket_price() -> None:
    est = estimate(spec(hyperparameters={"epochs": 3}), 1_000_000)
    assert est is not None and est.tokens == 3_000_000 and est.usd == pytest.approx(3 * 0.48)
    assert "offline estimate" in est.basis and "3 epochs" in est.basis
    big_full = estimate(spec(model="x/Llama-70B", lora=False), 1_000_000)
    assert big_full is not None and big_full.usd == pytest.approx(3.20)
    dpo = estimate(spec(method="dpo"), 1_000_000)
    assert dpo is not None and dpo.usd == pytest.approx(1.20)


def test_one_epoch_is_singular_in_the_basis() -> None:
    one = estimate(spec(hyperparameters={"epochs": 1}), 1_000)
    assert one is not None and "× 1 epoch)" in one.basis and "epochs" not in one.basis
    two = estimate(spec(hyperparameters={"epochs": 2}), 1_000)
    assert two is not None and "× 2 epochs)" in two.basis


def test_evaluations_add_validation_tokens() -> None:
    est = estimate(spec(hyperparameters={"epochs": 1, "n_evals": 4}), 1_000_000, 100_000)
    assert est is not None and est.tokens == 1_400_000


def test_openai_default_epochs_and_mistral_minimum() -> None:
    oa = estimate(spec(provider="openai", model="gpt-4.1-mini-2025-04-14"), 1_000_000)
    assert oa is not None and oa.tokens == CATALOG["openai"].default_epochs * 1_000_000
    mi = estimate(spec(provider="mistral", model="open-mistral-7b"), 1_000)
    assert mi is not None and mi.usd == 4.0 and "$4 minimum" in mi.basis


def test_unknown_model_has_no_estimate() -> None:
    assert estimate(spec(model="someone/mystery-model"), 1_000) is None


def test_policy_budget_refuses_only_the_expensive_create() -> None:
    cheap = desired("cheap")
    dear = desired("dear", policy={"budget_usd": 5})
    cheap = type(cheap)(**{**cheap.__dict__, "estimated_cost_usd": 1.0})
    dear = type(dear)(**{**dear.__dict__, "estimated_cost_usd": 9.5})
    plan = make_plan([cheap, dear], {}, NOW)
    assert plan.action("cheap").refused is None  # type: ignore[union-attr]
    assert plan.action("dear").refused == "estimate $9.50 exceeds policy.budget_usd $5.00"  # type: ignore[union-attr]


def test_budget_without_an_estimate_refuses() -> None:
    d = desired("x", policy={"budget_usd": 5})
    action = make_plan([d], {}, NOW).action("x")
    assert action is not None and "no cost estimate" in (action.refused or "")


def test_max_cost_admits_creates_in_order_until_the_cap() -> None:
    jobs = []
    for name in ("a", "b", "c"):
        d = desired(name)
        jobs.append(type(d)(**{**d.__dict__, "estimated_cost_usd": 4.0}))
    plan = make_plan(jobs, {}, NOW, max_cost=10)
    assert [a.refused is None for a in plan.actions] == [True, True, False]
    assert "over --max-cost $10.00" in (plan.actions[2].refused or "")


def test_apply_refuses_the_over_budget_create_and_applies_the_rest(
    tree: SpecTree, tmp_path: Path, clock: Clock
) -> None:
    tree.spec("alpha")
    tree.spec("beta", policy={"budget_usd": 0})  # any real estimate is over a zero budget
    world = World(tree, tmp_path / "ledger.db", clock)
    plan, outcomes = world.run()
    by_name = {o.name: o for o in outcomes}
    assert by_name["alpha"].ok
    assert not by_name["beta"].ok and "refused: estimate $" in by_name["beta"].message
    assert len(world.provider.jobs) == 1
    assert [a.kind for a in plan.changes] == [Kind.CREATE, Kind.CREATE]


class PricedDriver(FakeDriver):
    """A fake provider that prices jobs itself and parks them after validation."""

    price = 99.0
    validated_cost = 10.0

    def estimate_price(self, training_file_id: str, req: Any) -> float:
        return self.price

    def create_job(self, request: Any) -> Any:
        job = super().create_job(request)
        parked = replace(job, status="VALIDATED", cost_usd=self.validated_cost)
        self.world.jobs[job.id] = parked
        return parked

    def start_if_parked(self, job: Any) -> Any:
        if job.status == "VALIDATED":
            self.world.set_phase(job.id, Phase.RUNNING)
        return self.world.jobs[job.id]


@pytest.fixture(autouse=True)
def _pricing_and_parking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake provider, as its catalog entry says, prices jobs and parks them."""
    info = CATALOG["together"]
    caps = replace(info.capabilities, estimates_price=True, parks_after_validation=True)
    monkeypatch.setitem(CATALOG.builtin, "together", replace(info, capabilities=caps))  # type: ignore[index]


def _run_priced(world: World, driver: PricedDriver) -> tuple[Any, list[Any]]:
    from reconciler.ledger import open_ledger
    from reconciler.reconcile import Reconciler

    ledger = open_ledger(world.ledger_path, clock=world.clock)
    try:
        core = Reconciler(ledger, FakePool(driver), clock=world.clock, adopt_grace=0)  # type: ignore[arg-type]
        result = core.pass_once(world.jobs())
        return result.plan, list(result.outcomes)
    finally:
        ledger.close()


def test_the_providers_own_estimate_is_checked_against_the_budget(
    tree: SpecTree, tmp_path: Path, clock: Clock
) -> None:
    tree.spec("pricey", policy={"budget_usd": 50})
    world = World(tree, tmp_path / "ledger.db", clock)
    driver = PricedDriver(world.provider)
    _, outcomes = _run_priced(world, driver)
    assert not outcomes[0].ok
    assert (
        "refused: together estimates $99.00, over policy.budget_usd $50.00" in outcomes[0].message
    )
    assert not world.provider.jobs and not world.ledger_rows()


def test_a_parked_job_starts_only_within_budget(
    tree: SpecTree, tmp_path: Path, clock: Clock
) -> None:
    tree.spec("cheap", policy={"budget_usd": 50})
    tree.spec("dear", policy={"budget_usd": 5})
    world = World(tree, tmp_path / "ledger.db", clock)
    driver = PricedDriver(world.provider)
    driver.price = 1.0  # the up-front estimate passes both budgets
    _run_priced(world, driver)  # creates: both parked at VALIDATED, validated cost $10
    plan, _ = _run_priced(world, driver)  # refresh: start what the budget allows
    kinds = {a.name: a.kind for a in plan.actions}
    assert kinds == {"cheap": Kind.WAIT, "dear": Kind.DEGRADED}
    dear = plan.action("dear")
    assert (
        dear is not None and "validated cost $10.00 exceeds policy.budget_usd $5.00" in dear.reason
    )
    phases = sorted(j.phase.value for j in world.provider.jobs.values())
    assert phases == ["cancelling", "running"]
