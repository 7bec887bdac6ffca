"""``plan --offline`` over 10,000 specs against PyYAML's C loader on the same files
(DESIGN §9): cold (a fresh ledger folder, so an empty spec cache) ≤ 1.25x, warm (the same
specs, ledger and cache again: the plan is replayed, ``planmemo``) ≤ 0.25x, peak memory
≤ 100 MB; and, for the record, the cold plan in one process (``RECONCILER_WORKERS=1``: no
parsing on a second core) and a warm plan after one spec was edited (the spec cache)."""

from __future__ import annotations

import gc
import json
import subprocess
import time
from pathlib import Path

import specgen
import yaml
from measure import PYTHON, Figure, reconciler_argv, reconciler_env, run_child

from reconciler.fanout import workers

# the same plan, inside one interpreter: start-up excluded, imports of the commands included
IN_PROCESS = """\
import contextlib, json, os, sys, time
t0 = time.perf_counter()
from reconciler.cli import main
t1 = time.perf_counter()
with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
    code = main(sys.argv[1:])
t2 = time.perf_counter()
print(json.dumps({"code": code, "import_cli": t1 - t0, "main": t2 - t1}))
"""

# the memory floor: every document loaded by the C loader and kept, as plan keeps its specs
HOLD_ALL = """\
import pathlib, sys, yaml
files = sorted(pathlib.Path(sys.argv[1]).rglob("*.yaml"))
docs = [yaml.load(p.read_text(), Loader=yaml.CSafeLoader) for p in files]
assert len(docs) == len(files)
"""


def c_loader_seconds(files: list[Path]) -> float:
    """Read + ``yaml.load(text, Loader=CSafeLoader)`` for every file, once."""
    gc.collect()
    started = time.perf_counter()
    for path in files:
        yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    return time.perf_counter() - started


def run(work: Path, count: int, repeats: int) -> list[Figure]:
    specs = work / "specs"
    files = specgen.write_tree(specs, count, weights=(0.7, 0.15, 0.15))
    env = reconciler_env()  # offline: no endpoint is ever called

    def plan(state: Path, **extra: str) -> tuple[float, float]:
        # a fresh ledger folder and cache home per cold run: whatever a cache keeps
        # next to the ledger or under XDG_CACHE_HOME starts empty
        state.mkdir(parents=True, exist_ok=True)
        argv = reconciler_argv(specs, state / "none.db", "plan", "--offline")
        child = run_child(argv, env={**env, "XDG_CACHE_HOME": str(state / "cache"), **extra})
        return child.seconds, child.max_rss_mb

    # floor and figure alternate, so a busy spell on the machine hits both alike
    floors, cold = [], []
    for i in range(repeats):
        floors.append(c_loader_seconds(files))
        cold.append(plan(work / f"cold-{i}"))
    floor = min(floors)
    # the same ledger and cache as the last cold run, as many times
    warms = [plan(work / f"cold-{repeats - 1}") for _ in range(repeats)]
    warm = min(s for s, _ in warms)
    # one spec edited (a comment more): the replay misses, the spec cache has the others
    edited = []
    for i in range(repeats):
        with files[0].open("a") as f:
            f.write(f"# edited {i}\n")
        edited.append(plan(work / f"cold-{repeats - 1}")[0])
    one = min(plan(work / f"one-{i}", RECONCILER_WORKERS="1")[0] for i in range(repeats))
    best = min(s for s, _ in cold)
    rss = max(m for _, m in cold + warms)

    argv = ["--specs", str(specs), "--ledger", str(work / "inproc" / "none.db")]
    proc = subprocess.run(
        [PYTHON, "-c", IN_PROCESS, *argv, "plan", "--offline"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    inproc = json.loads(proc.stdout.strip().splitlines()[-1])

    hold = run_child([PYTHON, "-c", HOLD_ALL, str(specs)])
    label = f"C loader, {count} files"
    return [
        Figure(
            f"plan_10k: plan --offline, {count} specs (subprocess, best of {repeats})",
            best,
            "s",
            floor,
            label,
            budget=1.25,
            note=f"parsing on {workers()} cores; in one process: {one:.2f} s ({one / floor:.2f}x)",
            extra={"runs": [s for s, _ in cold], "floor_runs": floors, "specs": count},
        ),
        Figure(
            "plan_10k: same, in-process (cli.main, no interpreter start-up)",
            inproc["main"],
            "s",
            floor,
            label,
            note=f"importing reconciler.cli took {inproc['import_cli'] * 1000:.0f} ms more",
            extra=inproc,
        ),
        Figure(
            f"plan_10k: warm, nothing changed (the plan replayed, best of {repeats})",
            warm,
            "s",
            floor,
            label,
            budget=0.25,
            note=f"{warm / best:.2f}x the cold run",
            extra={"runs": [s for s, _ in warms]},
        ),
        Figure(
            f"plan_10k: warm, one spec edited since (best of {repeats})",
            min(edited),
            "s",
            floor,
            label,
            note="the plan is made again; the other files come from the spec cache",
            extra={"runs": edited},
        ),
        Figure(
            f"memory: peak RSS of plan --offline, {count} specs (cold and warm)",
            rss,
            "MB",
            hold.max_rss_mb,
            f"C loader holding {count} docs",
            budget=100.0,
            budget_kind="absolute",
        ),
    ]
