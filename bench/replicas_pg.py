"""Three ``watch`` replicas on one PostgreSQL ledger over 10,000 specs (DESIGN §9, §12).

- **One pass**: three replicas started together, until each has finished its first pass
  (loaded every spec, taken its share of the provider accounts, planned and acted on
  them). Floor: the same first pass by one ``watch`` on a SQLite ledger.
- **Failover**: the replica holding the most accounts is killed with SIGKILL; until
  another replica holds all of them and has finished a pass over them. Floor: the lease
  TTL plus one pass of watch (a dead replica's leases are free only when they expire,
  and a survivor claims them at its next pass: ``--interval`` plus the pass's own work,
  as the survivors took it in the same run); budget 1.0x.

The specs are suspended (``suspend: true``): every spec is read, checked and planned
each pass, and none is trained, so the figures are the replicas' own work.
The PostgreSQL server is started here from the machine's ``initdb``/``pg_ctl``
(``tests/pgserver.py``); without them the benchmark says so and is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import specgen
from measure import PYTHON, REPO, EmulatorProcess, Figure, reconciler_env
from watch_pickup import LogTail

sys.path.insert(0, str(REPO / "tests"))

TTL = 5.0
INTERVAL = 1.0


class Replica:
    """A ``watch`` child whose JSON log lines are read as they arrive (``LogTail``)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.tail = LogTail(self.proc.stderr, copy=self.log)

    def first(self, event: str, after: float = 0.0, timeout: float = 300.0) -> tuple[float, Any]:
        """(arrival, record) of the first ``event`` line that arrived after ``after``."""
        if self.proc.poll() is not None:
            raise TimeoutError(f"replica exited (see {self.log.name})")
        return self.tail.wait_at(lambda r: r.get("event") == event, timeout, after)

    def events(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        with self.tail.changed:
            pairs = list(zip(self.tail.arrived, self.tail.lines, strict=True))
        return [(at, r) for at, r in pairs if r.get("event") == event]

    def holds(self) -> set[str]:
        leases = self.events("leases")
        return set(leases[-1][1]["holds"]) if leases else set()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tail.join(5)
        self.log.close()


def _watch(specs: Path, ledger: str, *extra: str) -> list[str]:
    head = [PYTHON, "-m", "reconciler", "--specs", str(specs), "--ledger", ledger, "-vv"]
    return [*head, "watch", "--interval", str(INTERVAL), "--log-format", "json", *extra]


def run(work: Path, count: int) -> list[Figure]:
    try:
        import psycopg  # noqa: F401
        from pgserver import binaries, running
    except ImportError as exc:
        raise RuntimeError(f"skipped: {exc} (pip install '.[postgres]')") from exc
    if binaries() is None:
        raise RuntimeError("skipped: PostgreSQL's initdb and pg_ctl are not installed")
    specs = work / "specs"
    specgen.write_tree(specs, count, suspend=True)
    base = Path(tempfile.mkdtemp(prefix="reconciler-bench-pg-"))
    base.chmod(0o755)  # the server may run as `postgres`, which must reach its folder
    try:
        with running(base / "cluster") as server, EmulatorProcess(work / "emu.db") as emu:
            url = server.url(server.create_database("bench"))
            env = reconciler_env(emu.url)
            env["RECONCILER_CACHE"] = "off"  # each replica reads the specs itself
            return _measure(work, specs, url, env, count)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _measure(work: Path, specs: Path, url: str, env: dict[str, str], count: int) -> list[Figure]:
    # the floor: one watch on SQLite, its first pass
    single = Replica(_watch(specs, str(work / "single.db")), env, work / "single.log")
    try:
        done, _ = single.first("pass")
        floor_pass = done - single.started
    finally:
        single.stop()

    replicas = [
        Replica(_watch(specs, url, "--lease-ttl", str(TTL)), env, work / f"replica-{i}.log")
        for i in range(3)
    ]
    try:
        ends = [r.first("pass")[0] for r in replicas]
        start = min(r.started for r in replicas)
        three_pass = max(ends) - start
        # the accounts shared out (each replica holds one of the three)
        deadline = time.monotonic() + 120
        while not all(r.holds() for r in replicas) and time.monotonic() < deadline:
            time.sleep(0.2)
        victim = max(replicas, key=lambda r: len(r.holds()))
        orphaned = victim.holds()
        killed = time.monotonic()
        victim.stop(signal.SIGKILL)
        survivors = [r for r in replicas if r is not victim]
        taken, takers = _taken_over(survivors, orphaned, killed)
        acted = max(r.first("pass", after=taken)[0] for r in takers)
        failover = acted - killed
        # the survivors' passes after the kill (holding more accounts than before it); the
        # median, as the pass that took over ran its plan twice (watch.reconcile)
        steady = [rec["seconds"] for r in survivors for at, rec in r.events("pass") if at > killed]
        pass_s = statistics.median(steady) if steady else floor_pass
    finally:
        for r in replicas:
            r.stop()
    accounts = ", ".join(sorted(orphaned))
    return [
        Figure(
            f"replicas: one pass of 3 watch replicas on PostgreSQL, {count} specs",
            three_pass,
            "s",
            floor_pass,
            "one watch on SQLite, its first pass",
            note=f"three processes on {os.cpu_count()} cores, each reading every spec",
        ),
        Figure(
            "replicas: failover (SIGKILL → another replica holds the accounts and passes)",
            failover,
            "s",
            TTL + INTERVAL + pass_s,
            f"lease TTL {TTL:g} s + one pass (--interval {INTERVAL:g} s + {pass_s:.2f} s)",
            budget=1.0,
            note=f"accounts taken over: {accounts}; the lease expired "
            f"{taken - killed:.2f} s after the kill",
        ),
    ]


def _taken_over(
    survivors: list[Replica], accounts: set[str], since: float
) -> tuple[float, list[Replica]]:
    """When the survivors' leases (as each last logged them) covered ``accounts``, and
    which survivors took them."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        latest: dict[int, tuple[float, set[str]]] = {}
        for i, r in enumerate(survivors):
            for at, rec in r.events("leases"):
                if at > since:
                    latest[i] = (at, set(rec["holds"]))
        held = set().union(*(h for _, h in latest.values())) if latest else set()
        if accounts <= held:
            takers = [survivors[i] for i, (_, h) in latest.items() if h & accounts]
            return max(at for at, _ in latest.values()), takers
        time.sleep(0.05)
    raise TimeoutError(f"no survivor took over {sorted(accounts)}")


if __name__ == "__main__":  # a quick look: python bench/replicas_pg.py [COUNT]
    with tempfile.TemporaryDirectory() as tmp:
        for f in run(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 1000):
            print(f.name, round(f.value, 2), f.unit, "floor", f.floor and round(f.floor, 2))
