"""The run folder of a local job, shared by the driver and the trainer process.

    <runs>/<tag>/config.json           the resolved training config (one per fingerprint)
    <runs>/<tag>/metrics.jsonl         one line per logged step, every attempt
    <runs>/<tag>/checkpoints/checkpoint-<step>/
    <runs>/<tag>/model/                the final adapter (or full model)
    <runs>/<tag>/attempts/<n>/         attempt.json, process.json, slot.json,
                                       trainer.log, events.jsonl, cancel.json, result.json
    <runs>/.slots/<i>.lock             held (flock) by the trainer using slot i

The tag is the same for every attempt at one fingerprint (``tags.tag_for``), so a retry
shares the folder and resumes from its checkpoints; the job id is ``<tag>.<n>``.
A process is known by its pid *and* its start time (pids are reused).

At most ``concurrency`` trainers of one runs folder train at once: each holds one slot's
lock for its life (the kernel drops it when the process dies, however it dies); the
others wait, oldest attempt first, and show as queued.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RUNS_VAR = "RECONCILER_LOCAL_RUNS"
CONCURRENCY_VAR = "RECONCILER_LOCAL_CONCURRENCY"
SLOTS = ".slots"
INCOMPLETE = "checkpoint-is-incomplete.txt"  # transformers' sentinel while saving


def runs_root(env: Mapping[str, str]) -> Path:
    """Where runs live: ``RECONCILER_LOCAL_RUNS``, else ``runs/`` beside a file ledger
    named by ``RECONCILER_LEDGER``, else ``state/runs`` (beside the default ledger)."""
    chosen = (env.get(RUNS_VAR) or "").strip()
    if chosen:
        return Path(chosen).expanduser().absolute()
    ledger = (env.get("RECONCILER_LEDGER") or "").strip()
    if ledger and "://" not in ledger:
        return Path(ledger).expanduser().absolute().parent / "runs"
    return Path("state", "runs").absolute()


def job_id(tag: str, attempt: int) -> str:
    return f"{tag}.{attempt}"


def split_id(job: str) -> tuple[str, int] | None:
    tag, _, number = job.rpartition(".")
    return (tag, int(number)) if tag and number.isdigit() else None


class Run:
    """One tag's folder."""

    def __init__(self, root: Path, tag: str) -> None:
        self.tag = tag
        self.dir = root / tag
        self.config = self.dir / "config.json"
        self.metrics = self.dir / "metrics.jsonl"
        self.checkpoints = self.dir / "checkpoints"
        self.model = self.dir / "model"
        self.attempts = self.dir / "attempts"

    def attempt(self, n: int) -> Path:
        return self.attempts / str(n)

    def attempt_numbers(self) -> list[int]:
        if not self.attempts.is_dir():
            return []
        return sorted(int(p.name) for p in self.attempts.iterdir() if p.name.isdigit())

    def complete_checkpoints(self) -> list[tuple[int, Path]]:
        """(step, folder) of each checkpoint fully written, oldest first."""
        out = []
        if self.checkpoints.is_dir():
            for path in self.checkpoints.glob("checkpoint-*"):
                step = path.name.removeprefix("checkpoint-")
                done = (path / "trainer_state.json").is_file() and not (path / INCOMPLETE).exists()
                if step.isdigit() and done:
                    out.append((int(step), path))
        return sorted(out)


def run_of_attempt(attempt_dir: Path) -> Run:
    run_dir = attempt_dir.parent.parent  # <runs>/<tag>/attempts/<n>
    return Run(run_dir.parent, run_dir.name)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a torn last line (a kill mid-write) skipped."""
    out = []
    with contextlib.suppress(OSError), path.open() as f:
        for line in f:
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append(item)
    return out


def append_line(path: Path, data: Mapping[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(data, sort_keys=True) + "\n")


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat``), None
    when it is gone or a zombie. Where there is no /proc, "alive" for a live pid."""
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "alive"
        return "alive"
    try:
        fields = stat.read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # fields[0] is the state (field 3); the start time is field 22
    return None if fields[0] in ("Z", "X") else fields[19]


def process_record(pid: int) -> dict[str, Any]:
    return {"pid": pid, "start": process_start(pid)}


def is_alive(record: Mapping[str, Any] | None) -> bool:
    """The process a record names is still the same process, still running."""
    if not record or not isinstance(record.get("pid"), int):
        return False
    start = process_start(record["pid"])
    return start is not None and start == record.get("start")


def note(folder: Path, message: str, level: str = "info") -> None:
    """One line of an attempt's events (the trainer writes them; ``logs`` reads them)."""
    append_line(folder / "events.jsonl", {"time": time.time(), "level": level, "message": message})


# -- devices and slots ----------------------------------------------------------------


def gpu_count(env: Mapping[str, str]) -> int:
    """NVIDIA GPUs this process may use, read without torch: ``CUDA_VISIBLE_DEVICES``
    when set, else the driver's ``/proc/driver/nvidia/gpus`` entries."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        return 0 if not ids or ids[0].startswith("-") else len(ids)
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return sum(1 for _ in gpus.iterdir())
    except OSError:
        return 0


def concurrency(env: Mapping[str, str]) -> int:
    """How many local jobs train at once: ``RECONCILER_LOCAL_CONCURRENCY`` (set from
    ``reconciler.yaml``'s ``local.concurrency``), else one per GPU, else one."""
    chosen = (env.get(CONCURRENCY_VAR) or "").strip()
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    return max(gpu_count(env), 1)


def waiting(root: Path) -> list[Path]:
    """The attempt folders whose trainer is alive and waiting for a slot, first in line
    first (by creation time, then path)."""
    found: list[tuple[float, str, Path]] = []
    if not root.is_dir():
        return []
    for folder in root.glob("*/attempts/*"):
        if (folder / "slot.json").exists() or (folder / "result.json").exists():
            continue
        if not is_alive(read_json(folder / "process.json")):
            continue
        created = (read_json(folder / "attempt.json") or {}).get("created_at")
        at = float(created) if isinstance(created, int | float) else 0.0
        found.append((at, str(folder), folder))
    return [f for _, _, f in sorted(found)]


def try_lock(path: Path) -> int | None:
    """An exclusive flock on ``path`` (created if need be), held through the returned
    descriptor; None when another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
