"""Crash safety end to end for the OpenAI-shaped hosts (DESIGN §4): real `reconciler`
processes against a real emulator, Azure OpenAI and Nebius. Neither can filter its job
list on metadata, so every interrupted create is resolved by listing and reading the tag
at the end of the suffix. The invariants are test_e2e_crash's."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import test_e2e_crash
from support import SENTINEL_KEY
from test_e2e import Emulator
from test_e2e_crash import (
    CrashCli,
    assert_invariants,
    clear_faults,
    converge,
    fresh_emulator,
    quiesce,
    read_ledger,
    remote_tag,
    requests_seen,
    workspace,
)

pytestmark = pytest.mark.slow
emu = test_e2e_crash.emu  # the module's emulator process, bound here

HOSTS: dict[str, dict[str, Any]] = {
    "azure-openai": {
        "emulated": "azure",
        "url": "/azure/openai/v1",
        "model": "gpt-4o-mini-2024-07-18",
        "hyperparameters": {"epochs": 1, "learning_rate_multiplier": 1.5},
    },
    "nebius": {
        "emulated": "nebius",
        "url": "/nebius/v1",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "hyperparameters": {"epochs": 1, "learning_rate": 1.0e-5},
    },
}
SLOW = {"latency_ms": 150, "methods": ["POST"]}


def host_cli(root: Path, emulator: Emulator) -> tuple[Any, CrashCli]:
    tree, cli = workspace(root, emulator)
    cli.env["AZURE_OPENAI_API_KEY"] = cli.env["NEBIUS_API_KEY"] = SENTINEL_KEY
    for provider, host in HOSTS.items():
        var = provider.upper().replace("-", "_") + "_BASE_URL"
        cli.env[var] = emulator.url + host["url"]
    return tree, cli


def write_specs(tree: Any, provider: str, count: int) -> list[str]:
    host = HOSTS[provider]
    names = [f"{host['emulated']}-crash-{i}" for i in range(count)]
    for name in names:
        tree.spec(
            name, provider=provider, model=host["model"], hyperparameters=host["hyperparameters"]
        )
    return names


def creates(emulator: Emulator, provider: str) -> list[dict[str, Any]]:
    path = HOSTS[provider]["url"] + "/fine_tuning/jobs"
    return [r for r in requests_seen(emulator) if r["method"] == "POST" and r["path"] == path]


def kill_at_create(
    proc: subprocess.Popen[bytes], emulator: Emulator, provider: str, nth: int
) -> bool:
    """SIGKILL ``proc`` while its ``nth`` create is in flight; False when it ended first."""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if len(creates(emulator, provider)) >= nth:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(10)
    return proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("provider", list(HOSTS))
def test_kill_9_mid_create_then_apply_leaves_exactly_one_job_a_spec(
    provider: str,
    emu: Emulator,
    tmp_path: Path,
) -> None:
    unresolved = 0
    for nth in (1, 2):
        context = f"{provider}, kill at create {nth} in flight"
        fresh_emulator(emu, SLOW)
        tree, cli = host_cli(tmp_path / f"run-{nth}", emu)
        names = write_specs(tree, provider, 3)
        log = tmp_path / f"apply-{nth}.log"
        proc = cli.start("apply", "--yes", log=log)
        killed = kill_at_create(proc, emu, provider, nth)
        assert killed or proc.returncode == 0, f"{context}: {log.read_text()}"
        quiesce(emu)
        view = read_ledger(cli.ledger)
        assert view is None or view.integrity == "ok", context
        unresolved += sum(1 for r in (view.attempts if view else []) if not r["remote_id"])
        clear_faults(emu)
        transcript = converge(cli)
        assert_invariants(emu, cli, HOSTS[provider]["emulated"], names, f"{context}\n{transcript}")
        cli.assert_no_secret()
    assert unresolved > 0  # some kill did interrupt a create: the look-up path ran


@pytest.mark.parametrize("provider", list(HOSTS))
def test_a_lost_create_answer_is_resolved_by_the_tag_in_the_suffix(
    provider: str,
    emu: Emulator,
    tmp_path: Path,
) -> None:
    fresh_emulator(emu)
    tree, cli = host_cli(tmp_path, emu)
    (name,) = write_specs(tree, provider, 1)
    path = HOSTS[provider]["url"] + "/fine_tuning/jobs"
    lost = {"drop_next": 1, "drop_mode": "after", "methods": ["POST"], "path_contains": path}
    emu.admin("/_emulator/faults", lost)

    first = cli("apply", "--yes")
    assert "create outcome unknown" in first.stdout, first.stdout
    (job,) = [
        j
        for j in emu.admin("/_emulator/state")["jobs"]
        if j["provider"] == HOSTS[provider]["emulated"]
    ]
    ledger = read_ledger(cli.ledger)
    assert ledger is not None
    (intent,) = ledger.attempts
    assert intent["remote_id"] is None and remote_tag(provider, job) == intent["tag"]

    clear_faults(emu)
    second = cli("apply", "--yes", "--adopt-grace", "0")
    assert f"adopted {job['id']}" in second.stdout, second.stdout
    assert assert_invariants(emu, cli, HOSTS[provider]["emulated"], [name]) == {name: job["id"]}
    assert len(creates(emu, provider)) == 1  # posted once, never re-posted
    cli.assert_no_secret()
