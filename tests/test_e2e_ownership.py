"""End to end, issue #11: ownership. The real CLI against the emulator as a process.

Two projects share one provider account: neither adopts, cancels or counts the other's
jobs. A lost ledger of one project recovers every live job of every current spec,
whatever its attempt number.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SpecTree
from test_e2e import Cli, Emulator, emulator  # noqa: F401  (the module's emulator fixture)

from reconciler.project import project_yaml
from reconciler.tags import namespace_code

pytestmark = pytest.mark.slow


def project(tmp_path: Path, emulator: Emulator, team: str, namespace: str | None) -> Cli:  # noqa: F811
    tree = SpecTree(tmp_path / team / "specs")
    if namespace is not None:
        (tree.root / "reconciler.yaml").write_text(project_yaml(namespace))
    return Cli(tree, emulator)


def test_two_projects_on_one_account_never_touch_each_others_jobs(
    tmp_path: Path,
    emulator: Emulator,  # noqa: F811
) -> None:
    a = project(tmp_path, emulator, "team-a", "team-a")
    b = project(tmp_path, emulator, "team-b", "team-b")
    for team in (a, b):  # the same name on the same data: only the namespace differs
        team.tree.spec("support-bot", suffix="shared")
    a("apply", "--yes")
    job_a = a.status()["support-bot"]["remote_id"]
    out = b("apply", "--yes").stdout
    assert "adopted" not in out, out
    job_b = b.status()["support-bot"]["remote_id"]
    assert job_b != job_a  # B made its own job
    b.tree.spec("support-bot", suffix="shared", hyperparameters={"epochs": 5})
    out = b("apply", "--yes").stdout
    assert f"cancel requested for {job_b}" in out and job_a not in out, out
    jobs = {j["id"]: j for j in emulator.together_jobs()}
    assert jobs[job_a]["status"] in ("pending", "queued", "running")  # A's job untouched
    assert jobs[job_b]["status"] in ("cancel_requested", "cancelled")
    a("plan", "--detailed-exitcode", expect=0)  # A sees nothing to do


def test_a_lost_ledger_recovers_a_job_past_its_first_attempt(
    tmp_path: Path,
    emulator: Emulator,  # noqa: F811
) -> None:
    team = project(tmp_path, emulator, "team-c", "team-c")
    team.tree.spec("support-bot")
    team("apply", "--yes")
    first = team.status()["support-bot"]["remote_id"]
    team.tree.spec("support-bot", hyperparameters={"epochs": 4})
    team("apply", "--yes")  # a replace: attempt 2 runs now
    second = team.status()["support-bot"]
    assert second["attempt"] == 2 and second["remote_id"] != first
    for path in team.ledger.parent.glob("ledger.db*"):
        path.unlink()  # the ledger is lost
    out = team("apply", "--yes").stdout
    assert f"adopted {second['remote_id']}" in out, out
    ours = [j for j in emulator.together_jobs() if j["id"] in (first, second["remote_id"])]
    assert len(ours) == 2  # nothing trained again
    assert team.status()["support-bot"]["remote_id"] == second["remote_id"]
    team("plan", "--detailed-exitcode", expect=0)
    team.assert_no_secret()


def test_a_namespace_that_is_not_a_name_is_one_line(
    tmp_path: Path,
    emulator: Emulator,  # noqa: F811
) -> None:
    team = project(tmp_path, emulator, "team-d", None)
    (team.tree.root / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Project\nnamespace: Team D\nnamespce: x\n"
    )
    team.tree.spec("bot")
    err = team("validate", expect=1).stderr
    assert "reconciler.yaml:3: namespace: String should match pattern" in err, err
    assert "reconciler.yaml:4: namespce: unknown key, did you mean 'namespace'?" in err, err


def test_an_orphaned_job_comes_back_with_its_spec_and_by_import(
    tmp_path: Path,
    emulator: Emulator,  # noqa: F811
) -> None:
    team = project(tmp_path, emulator, "team-e", "team-e")
    team.tree.spec("orphan", policy={"on_delete": "orphan"})
    team.tree.spec("other", policy={"on_delete": "orphan"})
    team.tree.spec("stays")
    team("apply", "--yes")
    jobs = {n: j["remote_id"] for n, j in team.status().items()}
    spec_text = (team.tree.root / "orphan.yaml").read_text()
    other_text = (team.tree.root / "other.yaml").read_text()
    team.tree.remove("orphan")
    team.tree.remove("other")
    team("apply", "--yes")  # forgotten, left running
    assert "orphan" not in team.status()
    (team.tree.root / "orphan.yaml").write_text(spec_text)  # the spec is back
    out = team("apply", "--yes").stdout
    assert f"re-adopted orphaned {jobs['orphan']}" in out, out
    assert team.status()["orphan"]["remote_id"] == jobs["orphan"]
    (team.tree.root / "other.yaml").write_text(other_text)
    out = team("import", f"together:{jobs['other']}", "--name", "other").stdout
    assert "Imported" in out, out
    assert team.status()["other"]["remote_id"] == jobs["other"]
    code = namespace_code("team-e")
    ours = [j for j in emulator.together_jobs() if f"rc{code}-" in str(j.get("suffix"))]
    assert len(ours) == 3  # nothing trained twice
    team("plan", "--detailed-exitcode", expect=0)  # nothing trained twice, nothing to do
