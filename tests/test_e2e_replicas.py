"""Three `watch` replicas on one PostgreSQL ledger (DESIGN §12), against the emulator,
with replicas killed with SIGKILL at random instants and started again.

Afterwards, the emulator's own state is the truth:
- no two remote jobs carry one tag, and each spec has exactly one job;
- every job carrying one of our tags is known to the ledger with that job id;
- every spec converged (its job succeeded);
and the failover time (a kill, or a pause past the lease: every account the replica held
is held by another) is measured and printed. A paused replica wakes up with leases that
are no longer its own: its fence refuses its writes (or, paused inside a transaction,
the server ended that transaction and the replica stops, to be started again). `make soak` (RECONCILER_SOAK=1) runs it longer.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_e2e_crash import PROVIDERS, emu, fresh_emulator, remote_tag, workspace, write_specs

pytestmark = [pytest.mark.slow, pytest.mark.process]
emulator = emu  # the crash suite's emulator (10x), one per module

SOAK = bool(os.environ.get("RECONCILER_SOAK"))
KILL_PHASE_S = 60.0 if SOAK else 14.0
TTL = 2.0


def query(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        return list(conn.execute(sql, args).fetchall())


def ready(url: str, count: int) -> bool:
    if not query(url, "SELECT to_regclass('replicas') IS NOT NULL AS ok")[0]["ok"]:
        return False
    live = query(
        url,
        "SELECT COUNT(*) AS n FROM replicas WHERE seen_at > "
        "EXTRACT(EPOCH FROM clock_timestamp()) - 5",
    )
    return int(live[0]["n"]) >= count


def held_by(url: str, pid: int) -> set[str]:
    rows = query(
        url,
        "SELECT name FROM leases WHERE holder LIKE %s AND expires_at > "
        "EXTRACT(EPOCH FROM clock_timestamp())",
        (f"%:{pid}:%",),
    )
    return {r["name"] for r in rows}


def taken_over(url: str, accounts: set[str], pid: int) -> bool:
    rows = query(
        url,
        "SELECT name, holder FROM leases WHERE expires_at > EXTRACT(EPOCH FROM clock_timestamp())",
    )
    holders = {r["name"]: r["holder"] for r in rows}
    return all(a in holders and f":{pid}:" not in holders[a] for a in accounts)


def test_three_replicas_killed_at_random_share_the_work_and_never_duplicate(
    tmp_path: Path,
    emulator: Any,
    pg_url: str,
) -> None:
    fresh_emulator(emulator)
    tree, cli = workspace(tmp_path, emulator)
    cli.env["RECONCILER_LEDGER"] = pg_url
    names = {p: write_specs(tree, p, 3) for p in PROVIDERS}  # 3 accounts, 9 specs
    logs = tmp_path / "logs"
    logs.mkdir()
    argv = ("watch", "--interval", "0.5", "--lease-ttl", str(TTL), "--adopt-grace", "3")
    started = 0

    def start() -> subprocess.Popen[bytes]:
        nonlocal started
        started += 1
        return cli.start(*argv, log=logs / f"replica-{started}.log")

    replicas = [start() for _ in range(3)]
    deadline = time.monotonic() + 30
    while not ready(pg_url, 3):  # the first one migrates the database; all three heartbeat
        assert time.monotonic() < deadline, "the replicas never all started"
        time.sleep(0.2)
    rng = random.Random(int(os.environ.get("RECONCILER_SEED", "7")))
    failovers: list[float] = []
    kills = pauses = stopped = 0
    end = time.monotonic() + KILL_PHASE_S
    try:
        while time.monotonic() < end:
            time.sleep(rng.uniform(1.0, 3.0))
            emulator.advance(rng.choice([0, 120, 600]))  # jobs move on meanwhile
            victim = rng.randrange(len(replicas))
            proc = replicas[victim]
            accounts = held_by(pg_url, proc.pid)
            pause = rng.random() < 1 / 3  # a frozen host rather than a dead one
            proc.send_signal(signal.SIGSTOP if pause else signal.SIGKILL)
            hit_at = time.monotonic()
            if not pause:
                proc.wait(10)
                kills += 1
                replicas[victim] = start()  # back at once, under a new name
            if accounts:
                deadline = hit_at + 10 * TTL
                while not taken_over(pg_url, accounts, proc.pid):
                    assert time.monotonic() < deadline, f"nobody took over {accounts}"
                    time.sleep(0.05)
                failovers.append(time.monotonic() - hit_at)
            if pause:
                time.sleep(0.5)
                proc.send_signal(signal.SIGCONT)  # it wakes up with leases that are no longer its
                pauses += 1
            for i, other in enumerate(replicas):  # one that found its connection cut stopped
                if other.poll() is not None:
                    assert other.returncode == 1, other.returncode
                    stopped += 1
                    replicas[i] = start()
        # let everything finish: jobs complete, every spec converges
        deadline = time.monotonic() + 90
        while True:
            emulator.advance(3600)
            jobs = cli.status()
            if all(
                jobs.get(n, {}).get("phase") == "succeeded" for ns in names.values() for n in ns
            ):
                break
            assert time.monotonic() < deadline, {n: j["phase"] for n, j in jobs.items()}
            time.sleep(0.5)
        shares = [len(held_by(pg_url, p.pid)) for p in replicas]
    finally:
        for proc in replicas:
            proc.send_signal(signal.SIGTERM)
        for proc in replicas:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    # each replica held one of the three accounts at the end: the work was shared
    assert sorted(shares) == [1, 1, 1], shares

    attempts = query(pg_url, "SELECT spec_name, tag, remote_id FROM attempts")
    by_tag = {a["tag"]: a for a in attempts}
    state = emulator.admin("/_emulator/state")
    duplicates = unknown = 0
    for provider, specs in names.items():
        jobs = [j for j in state["jobs"] if j["provider"] == provider]
        tags = [remote_tag(provider, j) for j in jobs]
        assert None not in tags, jobs
        duplicates += sum(n - 1 for n in Counter(tags).values() if n > 1)
        for job, tag in zip(jobs, tags, strict=True):
            if tag not in by_tag or by_tag[tag]["remote_id"] != job["id"]:
                unknown += 1
        per_spec = Counter(by_tag[t]["spec_name"] for t in tags if t in by_tag)
        assert per_spec == dict.fromkeys(specs, 1), per_spec
    for log in logs.iterdir():
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    median = statistics.median(failovers) if failovers else float("nan")
    print(
        f"\nreplicas: {kills} SIGKILLs and {pauses} SIGSTOPs past the TTL ({stopped} stopped "
        f"on waking) in {KILL_PHASE_S:.0f}s, {duplicates} duplicate jobs, "
        f"{unknown} jobs unknown to the ledger, all {sum(map(len, names.values()))} specs "
        f"converged; failover (kill → another replica holds the dead one's accounts, lease "
        f"TTL {TTL:g}s): median {median:.2f}s, max {max(failovers, default=float('nan')):.2f}s "
        f"over {len(failovers)} take-overs"
    )
    assert duplicates == 0 and unknown == 0
    assert kills + pauses >= 4 and failovers, "the kills must have hit replicas holding accounts"
    assert max(failovers) < 4 * TTL
