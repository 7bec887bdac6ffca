"""The crash suite with random kills: `kill -9` an apply again and again while it applies
many specs (and a watch mid-pass), then one final apply; nothing duplicated, nothing
unknown, the ledger intact, every job converged.

`make test` runs a bounded form; `make soak` (RECONCILER_SOAK=1) the long form of the
issue: 50 kills over 20 specs, a watch killed 20 times, and prints the figures.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from test_e2e import start_emulator, stop
from test_e2e_crash import assert_invariants, converge, read_ledger, workspace, write_specs

from reconciler.project import project_yaml
from reconciler.tags import namespace_code

pytestmark = pytest.mark.slow

SOAK = os.environ.get("RECONCILER_SOAK") == "1"
# libfaketime, for a step of the local clock (Debian's faketime; skipped without it)
LIBFAKETIME = next(iter(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")), None)
KILLS, SPECS, WATCH_KILLS = (50, 20, 20) if SOAK else (6, 6, 3)


def _kill_later(proc, rng: random.Random, low: float, high: float) -> bool:  # type: ignore[no-untyped-def]
    """SIGKILL after a random delay; False when the process had already ended."""
    deadline = time.monotonic() + rng.uniform(low, high)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return True


def test_random_kills_of_apply_and_watch_leave_no_duplicate(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    emu = start_emulator(tmp_path / "soak.db", "--speed", "5", "--latency-ms", "60")
    started = time.monotonic()
    try:
        tree, cli = workspace(tmp_path, emu)
        names = write_specs(tree, "together", SPECS)
        killed = 0
        for i in range(KILLS):
            proc = cli.start(
                "apply", "--yes", "--adopt-grace", "0", log=tmp_path / f"apply-{i}.log"
            )
            killed += _kill_later(proc, rng, 0.05, 1.5)
            view = read_ledger(cli.ledger)
            assert view is None or view.integrity == "ok", f"kill {i}: ledger damaged"
        # a watch killed mid-pass, while specs keep arriving
        for i in range(WATCH_KILLS):
            extra = f"together-soak-watch-{i}"
            tree.spec(extra, model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
            names.append(extra)
            proc = cli.start(
                "watch", "--interval", "0.3", "--adopt-grace", "0", log=tmp_path / f"watch-{i}.log"
            )
            killed += _kill_later(proc, rng, 0.3, 2.0)
        log = converge(cli)
        jobs = assert_invariants(emu, cli, "together", names, log)
        view = read_ledger(cli.ledger)
        assert view is not None and view.integrity == "ok"
        elapsed = time.monotonic() - started
        print(
            f"\nsoak: {KILLS} apply runs and {WATCH_KILLS} watch runs, {killed} killed with SIGKILL;"
            f" {len(names)} specs → {len(jobs)} remote jobs, 0 duplicates, 0 unknown to the ledger,"
            f" integrity ok, converged in {elapsed:.0f} s"
        )
        cli.assert_no_secret()
    finally:
        stop(emu)


def _ours(emu, namespace: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    code = namespace_code(namespace)
    return [j for j in emu.together_jobs() if f"rc{code}-" in str(j.get("suffix"))]


def _event_messages(ledger: Path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(ledger)
    try:
        return [str(r[0]) for r in conn.execute("SELECT message FROM events")]
    finally:
        conn.close()


def _live(job: dict[str, object]) -> bool:
    return job["status"] in ("pending", "queued", "running", "compressing", "uploading")


def test_two_projects_under_lag_hiccups_truncating_saves_and_a_lost_ledger(
    tmp_path: Path,
) -> None:
    """DESIGN §4 under what real accounts do: two projects share the account; creates lose
    their answers while lists lag longer than the grace; one apply at a wrong endpoint (every
    job a 404); one apply with the local clock five minutes ahead (with libfaketime); an
    editor's truncate-and-write under watch; one project's ledger deleted mid-run; kill -9
    throughout. Then: no attempt has two live jobs, no job of either
    namespace is unknown to its ledger, neither project touched the other's jobs."""
    rng = random.Random(20261201)
    emu = start_emulator(tmp_path / "hostile.db", "--speed", "1")
    other = start_emulator(tmp_path / "elsewhere.db", "--speed", "1")  # the wrong endpoint
    started = time.monotonic()
    rounds = 12 if SOAK else 3
    try:
        teams = {}
        for team in ("team-a", "team-b"):
            tree, cli = workspace(tmp_path / team, emu)
            (tree.root / "reconciler.yaml").write_text(project_yaml(team))
            teams[team] = (tree, cli, write_specs(tree, "together", 4 if SOAK else 3))
        emu.admin(
            "/_emulator/faults",
            {
                "list_lag_seconds": 4,
                "drop_rate": 0.3,
                "drop_mode": "after",
                "methods": ["POST"],
                "path_contains": "/fine-tunes",
                "seed": 7,
            },
        )
        killed = 0
        said: dict[str, list[str]] = {team: [] for team in teams}  # what each ledger recorded
        for i in range(rounds):
            for team, (_tree, cli, _names) in teams.items():
                if i == 1 and team == "team-b":  # one apply at the wrong endpoint
                    cli.env["TOGETHER_BASE_URL"] = other.url + "/together/v1"
                    cli.run("apply", "--yes", "--adopt-grace", "2")
                    cli.retarget(emu)
                if i == 2 and team == "team-b":  # the ledger is lost
                    said[team] += _event_messages(cli.ledger) if cli.ledger.exists() else []
                    for path in cli.ledger.parent.glob("ledger.db*"):
                        path.unlink()
                stepped = i == 1 and team == "team-a" and LIBFAKETIME is not None
                if stepped:  # the local clock jumps five minutes ahead for this apply
                    (tmp_path / "offset").write_text("+300s\n")
                    real, cli.env = (
                        cli.env,
                        {
                            **cli.env,
                            "LD_PRELOAD": str(LIBFAKETIME),
                            "FAKETIME_TIMESTAMP_FILE": str(tmp_path / "offset"),
                            "FAKETIME_NO_CACHE": "1",
                        },
                    )
                proc = cli.start(
                    "apply", "--yes", "--adopt-grace", "2", log=tmp_path / f"{team}-apply-{i}.log"
                )
                if stepped:
                    cli.env = real
                killed += _kill_later(proc, rng, 0.05, 2.0)
        # a watch, an editor that truncates and writes a spec under it, and (with
        # libfaketime) the watch's wall clock stepping back an hour mid-run
        tree, cli, names = teams["team-a"]
        emu.admin("/_emulator/faults", {"drop_rate": 0})  # a pass that only looks: no sleep
        offset = tmp_path / "watch-offset"
        offset.write_text("+0s\n")
        real = cli.env
        if LIBFAKETIME is not None:
            cli.env = {
                **cli.env,
                "LD_PRELOAD": str(LIBFAKETIME),
                "FAKETIME_TIMESTAMP_FILE": str(offset),
                "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            }
        daemon = cli.start(
            "watch", "--interval", "0.3", "--adopt-grace", "2", log=tmp_path / "watch.log"
        )
        cli.env = real
        try:
            for step in range(3):
                if step == 1:
                    offset.write_text("-3600s\n")
                path = tree.root / f"{names[0]}.yaml"
                text = path.read_text()
                path.write_text("")
                time.sleep(0.1)
                path.write_text(text)
                time.sleep(0.5)
            assert daemon.poll() is None, (tmp_path / "watch.log").read_text()[-2000:]
        finally:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(10)
            killed += 1
        watch_log = (tmp_path / "watch.log").read_text()
        assert "internal error" not in watch_log, watch_log[-2000:]
        assert '"kind": "cancel"' not in watch_log, "a truncating save cancelled a job"
        emu.admin("/_emulator/faults", {"drop_rate": 0, "list_lag_seconds": 4})
        emu.advance(10)  # every job is listed now
        for (
            _team,
            cli,
        ) in ((t, c) for t, (_x, c, _y) in teams.items()):
            for _ in range(4):  # the final passes: evidence, sweeps, convergence
                cli.run("apply", "--yes", "--adopt-grace", "2")
                time.sleep(0.5)
        lines = []
        for team, (_tree, cli, names) in teams.items():
            jobs = _ours(emu, team)
            view = read_ledger(cli.ledger)
            assert view is not None and view.integrity == "ok", team
            current = {a["spec_name"]: a["remote_id"] for a in view.attempts if a["remote_id"]}
            assert sorted(current) == sorted(names), f"{team}: {current}"  # every spec tracked
            assert set(current.values()) <= {j["id"] for j in jobs}, f"{team}: not its own jobs"
            known = {a["remote_id"] for a in view.attempts if a["remote_id"]}
            unknown = [j["id"] for j in jobs if j["id"] not in known and _live(j)]
            assert not unknown, f"{team}: live jobs unknown to the ledger: {unknown}"
            by_tag: dict[str, int] = {}
            for job in jobs:
                if _live(job):
                    tag = str(job.get("suffix"))
                    by_tag[tag] = by_tag.get(tag, 0) + 1
            duplicates = {t: n for t, n in by_tag.items() if n > 1}
            assert not duplicates, f"{team}: two live jobs for one attempt: {duplicates}"
            lines.append(f"{team}: {len(jobs)} jobs, 0 live duplicates, 0 unknown")
        # neither project cancelled the other's jobs: every cancelled job of a project is
        # one its own ledger says it cancelled (a duplicate of its own)
        for team, (_tree, cli, _names) in teams.items():
            recorded = " ".join(said[team] + _event_messages(cli.ledger))
            for job in _ours(emu, team):
                if job["status"] in ("cancel_requested", "cancelled"):
                    assert str(job["id"]) in recorded, f"{team}'s {job['id']} cancelled by another"
        print(
            f"\nhostile soak: 2 projects, {rounds} rounds, {killed} kills, 30 % lost create "
            f"answers under list lag past the grace, one apply at a wrong endpoint, a lost "
            f"ledger, truncating saves under watch"
            + (
                ", the clock stepped +300 s for an apply and -3600 s under watch"
                if LIBFAKETIME
                else ""
            )
            + "; "
            + "; ".join(lines)
            + f"; 0 jobs of another namespace touched, integrity ok, {time.monotonic() - started:.0f} s"
        )
    finally:
        stop(other)
        stop(emu)
