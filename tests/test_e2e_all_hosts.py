"""End to end, issue #13 "done when": one spec set using Together, a second Together
profile, Azure OpenAI, Nebius and Fireworks validates, plans with a cost per job, applies
and succeeds against the emulator; ``status``, ``logs`` and ``output`` work for each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import CONVERSATION, SENTINEL_KEY, SpecTree
from test_e2e import Cli, Emulator, emulator  # noqa: F401  (the module's emulator fixture)

from reconciler.project import project_yaml

pytestmark = pytest.mark.slow

PROJECT = project_yaml("all-hosts") + (
    "providers:\n"
    "  together-research:\n"
    "    kind: together\n"
    "    api_key_env: TOGETHER_RESEARCH_API_KEY\n"
    "    base_url_env: TOGETHER_RESEARCH_BASE_URL\n"
)

SPECS = {
    "tg-bot": {"provider": "together"},
    "research-bot": {"provider": "together-research"},
    "azure-bot": {
        "provider": "azure-openai",
        "model": "gpt-4.1-2025-04-14",
        "hyperparameters": {"epochs": 1, "learning_rate_multiplier": 1.5},
    },
    "nebius-bot": {
        "provider": "nebius",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "hyperparameters": {"epochs": 1, "learning_rate": 1e-5},
    },
    "fireworks-bot": {
        "provider": "fireworks",
        "model": "accounts/fireworks/models/qwen3-8b",
        "lora": {"r": 8},
        "hyperparameters": {"epochs": 1, "learning_rate": 1e-4},
    },
}


def test_one_spec_set_at_five_accounts_converges(
    tmp_path: Path,
    emulator: Emulator,  # noqa: F811
) -> None:
    tree = SpecTree(tmp_path / "specs")
    tree.data("data/train.jsonl", [CONVERSATION] * 12)
    (tree.root / "reconciler.yaml").write_text(PROJECT)
    for name, spec in SPECS.items():
        tree.spec(name, **spec)
    cli = Cli(tree, emulator)
    base = emulator.url
    cli.env.update(
        TOGETHER_RESEARCH_API_KEY=SENTINEL_KEY + "-research",
        TOGETHER_RESEARCH_BASE_URL=base + "/together/v1",
        AZURE_OPENAI_API_KEY=SENTINEL_KEY + "-azure",
        AZURE_OPENAI_BASE_URL=base + "/azure/openai/v1",
        NEBIUS_API_KEY=SENTINEL_KEY + "-nebius",
        NEBIUS_BASE_URL=base + "/nebius/v1",
        FIREWORKS_API_KEY=SENTINEL_KEY + "-fireworks",
        FIREWORKS_BASE_URL=base + "/fireworks/v1",
        FIREWORKS_ACCOUNT_ID="e2e",
    )
    assert "5 spec(s) valid" in cli("validate").stdout
    plan = json.loads(cli("plan", "--json").stdout)
    costs = {a["name"]: a["estimated_cost_usd"] for a in plan["actions"]}
    assert set(costs) == set(SPECS) and all(c is not None and c > 0 for c in costs.values()), costs
    cli("apply", "--yes")
    emulator.advance(100_000)
    cli("apply", "--yes", "--wait", "--interval", "0.2", "--timeout", "90")
    status = cli.status()
    for name, spec in SPECS.items():
        row = status[name]
        assert (row["provider"], row["phase"], row["health"]) == (
            spec["provider"],
            "succeeded",
            "Healthy",
        ), row
        if name == "nebius-bot":  # no model name: a checkpoint is registered to serve it
            assert row["fine_tuned_model"] is None
            assert "--raw checkpoint" in cli("output", name, "--raw", expect=1).stderr
            assert cli("output", name, "--raw", "checkpoint").stdout.strip()
        else:
            assert cli("output", name, "--raw").stdout.strip() == row["fine_tuned_model"]
        cli("logs", name)  # every provider's events (or the job's own history) read back
        cli("status", name)
    azure = cli("output", "azure-bot").stdout
    assert "note:" in azure and "deploy" in azure.lower()  # a model Azure serves once deployed
    cli("plan", "--detailed-exitcode", expect=0)
    cli.assert_no_secret()
