"""Specs from git: `--git-ref` applies only what is committed, records the commit, and
`watch --git-ref` follows the ref when it moves."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import SpecTree
from test_e2e import Cli, start_emulator, stop
from test_e2e_watch import remote_ids, start_watch, wait_for

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tree: SpecTree) -> Path:
    top = tree.root.parent
    git(top, "init", "-q", "-b", "main")
    (top / ".gitignore").write_text("state/\n")
    return top


def test_only_committed_specs_are_applied_and_status_shows_the_commit(
    tree: SpecTree, repo: Path, tmp_path: Path
) -> None:
    emu = start_emulator(tmp_path / "e.db")
    try:
        cli = Cli(tree, emu)
        tree.spec("g-committed")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "first spec")
        first = git(repo, "rev-parse", "HEAD")
        tree.spec("g-uncommitted")  # in the working tree only
        plan = json.loads(cli("plan", "--git-ref", "HEAD", "--json", "--offline").stdout)
        assert [a["name"] for a in plan["actions"]] == ["g-committed"]
        markdown = cli("plan", "--git-ref", "HEAD", "--format", "markdown", "--offline").stdout
        assert "g-committed" in markdown and "g-uncommitted" not in markdown and "|" in markdown
        cli("apply", "--yes", "--git-ref", "HEAD")
        status = cli.status()
        assert status["g-committed"]["git_commit"] == first
        assert status["g-committed"]["spec_path"] == "specs/g-committed.yaml"
        assert "g-uncommitted" in status and status["g-uncommitted"]["remote_id"] is None
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "second spec")
        cli("apply", "--yes", "--git-ref", "HEAD")
        assert cli.status()["g-uncommitted"]["git_commit"] == git(repo, "rev-parse", "HEAD")
        bad = cli("plan", "--git-ref", "no-such-ref", expect=1).stderr
        assert "--git-ref no-such-ref: no such commit" in bad
    finally:
        stop(emu)


def test_watch_follows_a_moving_ref(tree: SpecTree, repo: Path, tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "e.db")
    try:
        cli = Cli(tree, emu)
        tree.spec("g-one")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "one")
        git(repo, "branch", "deploy")  # the ref a cron job would fetch and move
        daemon = start_watch(cli, "--git-ref", "deploy")
        try:
            assert wait_for(lambda: remote_ids(cli).get("g-one"))
            tree.spec("g-two")
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "two")  # on main; deploy has not moved
            time.sleep(1.5)
            assert "g-two" not in {k for k, v in remote_ids(cli).items() if v}
            git(repo, "branch", "-f", "deploy", "main")  # the ref moves
            assert wait_for(lambda: remote_ids(cli).get("g-two"), timeout=20)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(10) == 0
    finally:
        stop(emu)
