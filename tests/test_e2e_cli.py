"""End to end, issue #12: the CLI a Terraform or Argo CD user trusts. The real CLI
against the emulator as a process: health apart from sync, drift and degraded jobs in
the exit codes, ``output``, ``refresh``, ``--target``/``--exclude``/``--replace``,
renames that keep the job, ``init``, ``version``, completion and ``validate --json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import SENTINEL_KEY, SpecTree
from test_e2e import Cli, Emulator, emulator  # noqa: F401  (the module's emulator fixture)

pytestmark = pytest.mark.slow


def cancel_outside(emulator: Emulator, job_id: str) -> None:  # noqa: F811
    """What a person does in the provider's console: cancel the job by hand."""
    answer = httpx.post(
        f"{emulator.url}/together/v1/fine-tunes/{job_id}/cancel",
        headers={"Authorization": f"Bearer {SENTINEL_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
def cli(tree: SpecTree, emulator: Emulator) -> Cli:  # noqa: F811
    return Cli(tree, emulator)


def test_a_job_cancelled_outside_is_out_of_sync_and_plan_exits_3(
    cli: Cli,
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    tree.spec("drift-bot", suffix="drift")
    cli("apply", "--yes")
    job = cli.status()["drift-bot"]
    assert (job["sync"], job["health"]) == ("Synced", "Progressing")
    cancel_outside(emulator, job["remote_id"])
    emulator.advance(60)
    row = cli.status()["drift-bot"]
    assert (row["sync"], row["health"]) == ("OutOfSync", "Missing"), row
    out = cli("plan", "--detailed-exitcode", expect=3).stdout
    assert "Reality matches" not in out
    assert "Reality does not match the specs: 1 drifted (drift-bot)" in out
    table = cli("status").stdout
    line = next(x for x in table.splitlines() if x.startswith("drift-bot"))
    assert "OutOfSync" in line and "Missing" in line and "cancelled" in line
    cli.assert_no_secret()


def test_a_job_that_failed_for_good_is_degraded_and_plan_exits_3(
    cli: Cli,
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    emulator.admin("/_emulator/faults", {"fail_jobs": ["doomed:permanent"]})
    try:
        tree.spec("doomed-bot", suffix="doomed")
        cli("apply", "--yes")
        emulator.advance(7200)
        cli("refresh")
        row = cli.status()["doomed-bot"]
        assert (row["sync"], row["health"], row["phase"]) == ("Synced", "Degraded", "failed")
        out = cli("plan", "--detailed-exitcode", expect=3).stdout
        assert "1 degraded (doomed-bot)" in out and "Reality matches" not in out
        detail = cli("status", "doomed-bot").stdout
        assert "Health:" in detail and "Degraded" in detail and "Error:" in detail
        # --replace starts a new attempt on purpose, even of a job that failed for good
        emulator.admin("/_emulator/faults", {"fail_jobs": []})
        out = cli("apply", "--yes", "--replace", "doomed-bot").stdout
        assert "--replace asked" in out and "new attempt 2" in out, out
        assert cli.status()["doomed-bot"]["attempt"] == 2
    finally:
        emulator.admin("/_emulator/faults", {"fail_jobs": []})


def test_output_refresh_and_status_offline_tell_the_truth(
    cli: Cli,
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    tree.spec("out-bot", suffix="outbot")
    cli("apply", "--yes")
    missing = cli("output", "out-bot", expect=1)
    last = missing.stderr.strip().splitlines()[-1]  # Cli runs with -v: a traceback above
    assert last.startswith("error: out-bot has no successful job yet"), missing.stderr
    emulator.advance(7200)
    offline = json.loads(cli("status", "--offline", "--json").stdout)["jobs"][0]
    assert offline["phase"] != "succeeded"  # the ledger has not heard yet
    stale = cli("output", "out-bot", "--offline", expect=1).stderr.strip().splitlines()[-1]
    assert "as the ledger last saw it" in stale and "reconciler refresh" in stale, stale
    asked = cli("output", "out-bot", "--raw")  # online: the provider is asked, nothing saved
    assert asked.stdout.strip()
    refreshed = cli("apply", "--refresh-only").stdout
    assert "ledger change(s) saved" in refreshed and "create" not in refreshed
    offline = json.loads(cli("status", "--offline", "--json").stdout)["jobs"][0]
    assert (offline["phase"], offline["health"]) == ("succeeded", "Healthy")
    doc = json.loads(cli("output", "out-bot", "--json").stdout)
    assert doc["format_version"] and doc["job_id"] == offline["remote_id"]
    assert doc["model"] == offline["fine_tuned_model"] and doc["provider"] == "together"
    raw = cli("output", "out-bot", "--raw").stdout
    assert raw == doc["model"] + "\n"
    assert cli("output", "out-bot", "-raw", "job_id").stdout == doc["job_id"] + "\n"
    bad = cli("output", "out-bot", "--raw", "colour", expect=1)
    assert "not a field" in bad.stderr
    human = cli("output", "out-bot").stdout
    assert "model:" in human and doc["model"] in human
    assert "checkpoint" in human and doc["checkpoint"] == doc["job_id"]  # Together's final
    assert "--show-unchanged lists them" in cli("plan").stdout
    loud = cli("plan", "--show-unchanged").stdout
    assert "out-bot" in loud and "--show-unchanged lists them" not in loud
    cli.assert_no_secret()


def test_target_and_exclude_act_on_the_named_specs_only(cli: Cli, tree: SpecTree) -> None:
    for name in ("tg-alpha", "tg-beta", "tg-gamma"):
        tree.spec(name, suffix=name)
    plan = json.loads(cli("plan", "--json", "--target", "tg-a*").stdout)
    assert [a["name"] for a in plan["actions"]] == ["tg-alpha"]
    assert plan["selection"]["target"] == ["tg-a*"]
    out = cli("apply", "--yes", "--exclude", "tg-gamma", "--exclude", "tg-beta").stdout
    assert "tg-alpha" in out and "tg-beta" not in out
    status = cli.status()
    assert status["tg-alpha"]["remote_id"] and status["tg-beta"]["remote_id"] is None
    planned = cli("plan", "--target", "tg-beta").stdout  # its data is uploaded already
    applied = cli("apply", "--yes", "--target", "tg-beta").stdout
    for out in (planned, applied):  # priced the same way in plan and in apply
        assert "cost: together estimate-price (online)" in out, out
    status = cli.status()
    assert status["tg-beta"]["remote_id"] and status["tg-gamma"]["remote_id"] is None
    typo = cli("plan", "--target", "tg-delta", expect=1)
    assert typo.stderr.strip().splitlines()[-1].startswith("error: --target 'tg-delta' matches")


def test_a_renamed_spec_keeps_its_job(cli: Cli, tree: SpecTree, emulator: Emulator) -> None:  # noqa: F811
    tree.spec("old-name", suffix="rename")
    cli("apply", "--yes")
    job = cli.status()["old-name"]["remote_id"]
    tree.remove("old-name")
    path = tree.spec("new-name", suffix="rename")
    doc = json.loads(path.read_text())
    doc["metadata"]["previous_names"] = ["old-name"]
    path.write_text(json.dumps(doc))
    out = cli("plan", "--detailed-exitcode", expect=2).stdout
    assert "~ moved" in out and "old-name → new-name" in out, out
    assert "0 to create, 0 to replace, 0 to cancel" in out and "1 to move." in out, out
    plan = json.loads(cli("plan", "--json").stdout)
    (action,) = plan["actions"]  # no cancel of old-name, no create of new-name
    assert (action["name"], action["moved_from"], action["actions"]) == (
        "new-name",
        "old-name",
        ["move"],
    )
    cli("apply", "--yes")
    status = cli.status()
    assert "old-name" not in status and status["new-name"]["remote_id"] == job
    assert len([j for j in emulator.together_jobs() if "rename" in json.dumps(j)]) == 1
    cli("plan", "--detailed-exitcode", expect=0)
    events = cli("logs", "new-name", "--ledger-events").stdout
    assert "old-name → new-name" in events


def test_init_scaffolds_a_project_that_validates_and_never_overwrites(tmp_path: Path) -> None:
    project = tmp_path / "Acme Bots"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}

    def reconciler(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            capture_output=True,
            text=True,
            env={**env, "NO_COLOR": "1"},
            cwd=project,
            timeout=60,
            check=False,
        )
        assert proc.returncode == expect, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        return proc

    project.mkdir()
    out = reconciler("init").stdout
    assert "namespace acme-bots" in out
    for rel in (
        "specs/reconciler.yaml",
        "specs/example.yaml",
        "specs/data/example.jsonl",
        "state/.gitignore",
        ".github/workflows/reconciler.yml",
    ):
        assert (project / rel).is_file(), rel
    assert "namespace: acme-bots" in (project / "specs/reconciler.yaml").read_text()
    assert "1 spec(s) valid" in reconciler("validate").stdout
    plan = json.loads(reconciler("plan", "--offline", "--json").stdout)
    assert [a["kind"] for a in plan["actions"]] == ["create"]
    again = reconciler("init", expect=1)
    assert "would overwrite" in again.stderr and again.stderr.count("\n") == 1
    bad = reconciler("init", "elsewhere", "--namespace", "Not OK", expect=1)
    assert "--namespace" in bad.stderr and not (project / "elsewhere").exists()


def test_version_completion_and_validate_json(tree: SpecTree, tmp_path: Path) -> None:
    env = {**os.environ, "RECONCILER_SPECS": str(tree.root), "NO_COLOR": "1"}

    def reconciler(
        *args: str, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            capture_output=True,
            text=True,
            env={**env, **(extra or {})},
            timeout=60,
            check=False,
        )

    version = json.loads(reconciler("version", "--json").stdout)
    assert version["version"] and version["spec_api_version"] == "reconciler/v1"
    for shell in ("bash", "zsh", "fish"):
        script = reconciler("completion", shell)
        assert (
            script.returncode == 0
            and "reconciler" in script.stdout
            and "_ARGCOMPLETE" in script.stdout
        )
    # what the shell's hook asks: the words that complete `reconciler st`
    answer = tmp_path / "completions.txt"
    asked = reconciler(
        extra={
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": "\n",
            "COMP_LINE": "reconciler st",
            "COMP_POINT": str(len("reconciler st")),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
        }
    )
    assert asked.returncode == 0, asked.stderr
    assert set(answer.read_text().split()) == {"status"}
    tree.spec("ok-bot")
    tree.spec("typo-bot", hyperparameters={"epochz": 3})
    result = reconciler("validate", "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["valid"] is False and doc["error_count"] == 1
    (diag,) = doc["diagnostics"]
    assert diag["file"].endswith("typo-bot.yaml") and "epochz" in diag["field"] and diag["line"]
    # with a spec error, a CI step reading stdout gets the problems in its format
    md = reconciler("plan", "--offline", "--format", "markdown")
    assert md.returncode == 1 and "<!-- reconciler-plan -->" in md.stdout and "epochz" in md.stdout
    js = reconciler("plan", "--offline", "--json")
    assert js.returncode == 1 and json.loads(js.stdout)["diagnostics"][0]["field"]


def test_a_refused_create_is_said_once_and_logs_tells_why(cli: Cli, tree: SpecTree) -> None:
    tree.spec("refused-bot", options={"warmup_ratio": "lots"})  # only the create says no
    proc = subprocess.run(  # without -v: what a user sees
        [sys.executable, "-m", "reconciler", "apply", "--yes"],
        capture_output=True,
        text=True,
        env=cli.env,
        cwd=cli.tree.root.parent,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    both = proc.stdout + proc.stderr
    failures = [line for line in both.splitlines() if "expected number" in line]
    assert len(failures) == 1 and failures[0].startswith("✗ refused-bot: create:"), both
    logs = cli("logs", "refused-bot", expect=1).stderr.strip().splitlines()[-1]
    assert "the create failed (attempt 1)" in logs and "HTTP 4" in logs, logs
    row = cli.status()["refused-bot"]
    assert (row["health"], row["phase"]) == ("Degraded", "failed")


def test_a_saved_plan_records_the_git_ref_and_its_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    tree = SpecTree(repo / "specs")
    tree.spec("ref-bot")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "specs"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    saved = tmp_path / "ref.plan.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "plan",
            "--offline",
            "--git-ref",
            "main",
            "--out",
            str(saved),
        ],
        capture_output=True,
        text=True,
        cwd=repo,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(saved.read_text())
    assert doc["git_ref"] == "main" and doc["git_commit"] == head.stdout.strip()


def test_preflight_asks_the_provider_before_anything_is_uploaded(
    cli: Cli,
    tree: SpecTree,
    emulator: Emulator,  # noqa: F811
) -> None:
    tree.spec("pf-bot", model="acme/no-such-model-7b")
    files_before = len(emulator.admin("/_emulator/state")["files"])
    last = cli("validate", expect=1).stderr.strip().splitlines()[-2]
    assert last.endswith(
        "pf-bot.yaml:9: spec.model: 'acme/no-such-model-7b' is not a model Together can fine-tune"
    ), last
    offline = cli("validate", "--offline")
    assert "online checks skipped (--offline)" in offline.stderr
    cli("plan", expect=1)
    refused = cli("apply", "--yes", expect=1)
    assert "is not a model Together can fine-tune" in refused.stderr
    assert len(emulator.admin("/_emulator/state")["files"]) == files_before  # nothing uploaded
    tree.spec("pf-bot", lora={"r": 512})
    bad_rank = cli("validate", expect=1).stderr
    assert "spec.lora.r: 512 is over Together's" in bad_rank, bad_rank
    tree.spec("pf-bot")
    assert "checked online with together" in cli("validate").stdout
    keyless = {k: v for k, v in cli.env.items() if k != "TOGETHER_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate"],
        capture_output=True,
        text=True,
        env=keyless,
        cwd=tree.root.parent,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and "TOGETHER_API_KEY is not set" in proc.stderr
