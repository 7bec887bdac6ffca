"""Watch pickup latency: from a spec file write to the ``"specs changed"`` log line,
and to the first ``"action"`` line for the new spec (median of several writes).

``reconciler watch --interval 30`` logs JSON lines with ISO timestamps on stderr; the
write is stamped with ``time.time()`` just before the file is written (the write itself
takes well under a millisecond), so both ends use the same clock.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import specgen
from measure import EmulatorProcess, Figure, reconciler_argv, reconciler_env

BUDGET = 0.5


class LogTail:
    """Collects a child's JSON log lines from a pipe in a thread, each with the
    ``time.monotonic()`` of its arrival (``arrived``); ``copy`` gets every raw line."""

    def __init__(self, stream: Any, copy: IO[str] | None = None) -> None:
        self.lines: list[dict[str, Any]] = []
        self.arrived: list[float] = []
        self.changed = threading.Condition()
        self._copy = copy
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            if self._copy is not None:
                self._copy.write(raw if isinstance(raw, str) else raw.decode(errors="replace"))
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                with self.changed:
                    self.lines.append(record)
                    self.arrived.append(time.monotonic())
                    self.changed.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def wait(self, found: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        return self.wait_at(found, timeout)[1]

    def wait_at(
        self, found: Callable[[dict[str, Any]], bool], timeout: float, after: float = 0.0
    ) -> tuple[float, dict[str, Any]]:
        """(arrival, record) of the first matching line that arrived after ``after``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.changed:
            while True:
                for at, record in zip(self.arrived[seen:], self.lines[seen:], strict=True):
                    if at > after and found(record):
                        return at, record
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching log line in time")
                self.changed.wait(min(left, 1.0))


def stamp(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(record["timestamp"])).timestamp()


def changed_after(file: str, written: float) -> Callable[[dict[str, Any]], bool]:
    def found(r: dict[str, Any]) -> bool:
        return (
            r.get("event") == "specs changed"
            and file in (r.get("files") or ())
            and stamp(r) >= written
        )

    return found


def action_for(name: str, *, finished: bool = False) -> Callable[[dict[str, Any]], bool]:
    """The ``action`` line logged before the create (or, ``finished``, its outcome)."""

    def found(r: dict[str, Any]) -> bool:
        return r.get("event") == "action" and r.get("name") == name and ("ok" in r or not finished)

    return found


def latencies(
    work: Path, active: int, suspended: int, writes: int
) -> tuple[list[float], list[float]]:
    """(write → "specs changed", write → "action") for ``writes`` new specs written into
    a tree of ``active`` specs (created by watch's first pass) and ``suspended`` ones
    (loaded and planned on every pass, never acted on)."""
    specs, ledger = work / "specs", work / "ledger.db"
    specgen.write_tree(specs, active, ("together",), prefix="base")
    specgen.write_tree(specs, suspended, ("together",), prefix="idle", suspend=True)
    changed_lat: list[float] = []
    action_lat: list[float] = []
    with EmulatorProcess(work / "emulator.db", "--speed", "100") as emu:
        daemon = subprocess.Popen(
            reconciler_argv(specs, ledger, "watch", "--interval", "30"),
            env=reconciler_env(emu.url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            tail = LogTail(daemon.stderr)
            created: set[str] = set()

            def first_pass_done(record: dict[str, Any]) -> bool:
                if record.get("event") == "action" and "ok" in record:
                    created.add(str(record.get("name")))
                return len(created) >= active

            tail.wait(first_pass_done, timeout=180.0)
            time.sleep(0.5)  # let the pass finish its bookkeeping
            for i in range(writes):
                name = f"watch-new-{i:02d}"
                written = time.time()
                specgen.write_spec(specs, name, seed=i)
                changed = tail.wait(changed_after(f"{name}.yaml", written), timeout=60.0)
                action = tail.wait(action_for(name), timeout=120.0)
                changed_lat.append(stamp(changed) - written)
                action_lat.append(stamp(action) - written)
                # the create finished: the next write starts from an idle daemon
                tail.wait(action_for(name, finished=True), timeout=60.0)
                time.sleep(0.2)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    return changed_lat, action_lat


def run(work: Path, existing: int, writes: int, large: int) -> list[Figure]:
    """Two trees: ``existing`` specs all created by watch (a small team's repository),
    and ``large`` specs of which all but one are suspended (the cost of a pass)."""
    changed, action = latencies(work / "small", existing, 0, writes)
    big_changed, big_action = latencies(work / "large", 1, large - 1, max(3, writes // 3))
    figures = []
    for label, samples in (
        (f"write → 'specs changed', {existing} specs", changed),
        (f"write → first 'action' for it, {existing} specs", action),
        (f"write → 'specs changed', {large} specs", big_changed),
        (f"write → first 'action' for it, {large} specs", big_action),
    ):
        figures.append(
            Figure(
                f"watch_pickup: {label} (median of {len(samples)})",
                statistics.median(samples),
                "s",
                budget=BUDGET,
                budget_kind="absolute",
                note=f"max {max(samples):.3f} s",
                extra={"samples": samples},
            )
        )
    return figures
