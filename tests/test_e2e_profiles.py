"""End to end, issue #13 §2: provider profiles. Two accounts at one host (two emulators,
each accepting only its own key) in one project: every spec's job goes to its account,
the ledger and the sweep keep them apart, and the commands work for each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SENTINEL_KEY, SpecTree
from test_e2e import Cli, Emulator, start_emulator, stop

from reconciler.project import project_yaml

pytestmark = pytest.mark.slow

RESEARCH_KEY = SENTINEL_KEY + "-research"


@pytest.fixture
def research(tmp_path: Path) -> Iterator[Emulator]:
    """The second account: another host that accepts only the research key."""
    emu = start_emulator(tmp_path / "research.db", "--speed", "1", "--api-key", RESEARCH_KEY)
    yield emu
    stop(emu)


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path / "production.db", "--speed", "1", "--api-key", SENTINEL_KEY)
    yield emu
    stop(emu)


def profiles_yaml(namespace: str) -> str:
    return project_yaml(namespace) + (
        "providers:\n"
        "  together-research:\n"
        "    kind: together\n"
        "    api_key_env: TOGETHER_RESEARCH_API_KEY\n"
        "    base_url_env: TOGETHER_RESEARCH_BASE_URL\n"
    )


def test_two_accounts_at_one_host_are_kept_apart(
    tmp_path: Path, production: Emulator, research: Emulator
) -> None:
    tree = SpecTree(tmp_path / "specs")
    (tree.root / "reconciler.yaml").write_text(profiles_yaml("two-accounts"))
    tree.spec("prod-bot", suffix="prod")
    tree.spec("research-bot", provider="together-research", suffix="research")
    cli = Cli(tree, production)
    cli.env.update(
        TOGETHER_RESEARCH_API_KEY=RESEARCH_KEY,
        TOGETHER_RESEARCH_BASE_URL=research.url + "/together/v1",
    )
    assert "2 spec(s) valid" in cli("validate").stdout
    plan = json.loads(cli("plan", "--json").stdout)
    assert {a["name"]: a["provider"] for a in plan["actions"]} == {
        "prod-bot": "together",
        "research-bot": "together-research",
    }
    assert all(a["estimated_cost_usd"] for a in plan["actions"])  # the kind's prices
    cli("apply", "--yes")
    status = cli.status()
    prod_jobs = production.together_jobs()
    research_jobs = research.together_jobs()
    assert [j["id"] for j in prod_jobs] == [status["prod-bot"]["remote_id"]]
    assert [j["id"] for j in research_jobs] == [status["research-bot"]["remote_id"]]
    # the sweep of one account never reports the other's job as unknown, nor cancels it
    again = cli("apply", "--yes").stdout
    assert "! unknown" not in again and "0 to cancel" in again and "✓" not in again, again
    production.advance(7200)
    research.advance(7200)
    cli("refresh")
    for name in ("prod-bot", "research-bot"):
        assert cli("output", name, "--raw").stdout.strip()
        assert cli("logs", name).stdout.strip()
    assert cli.status()["research-bot"]["health"] == "Healthy"
    cli("plan", "--detailed-exitcode", expect=0)
    cli.assert_no_secret()
    for text in cli.transcript:
        assert RESEARCH_KEY not in text


def test_a_profile_without_its_key_or_of_an_unknown_kind_is_one_line(
    tmp_path: Path, production: Emulator
) -> None:
    tree = SpecTree(tmp_path / "specs")
    (tree.root / "reconciler.yaml").write_text(profiles_yaml("two-accounts"))
    tree.spec("research-bot", provider="together-research")
    cli = Cli(tree, production)
    refused = cli("apply", "--yes", expect=1)
    said = refused.stdout + refused.stderr
    assert "✗ research-bot: create: TOGETHER_RESEARCH_API_KEY is not set" in said, said
    (tree.root / "reconciler.yaml").write_text(
        project_yaml("two-accounts") + "providers:\n  acme:\n    kind: acmecloud\n"
    )
    bad = cli("validate", expect=1).stderr
    assert "reconciler.yaml" in bad and "providers.acme.kind: unknown kind 'acmecloud'" in bad
    tree.spec("research-bot", provider="togethr")
    typo = cli("validate", expect=1).stderr
    assert "spec.provider: unknown provider 'togethr', did you mean 'together'?" in typo
