"""Time to converge N Together specs against an emulator limited to R requests per
minute, against the floor N·calls/R.

"Converged" means ``reconciler apply --yes`` has returned with every job created at the
provider and recorded in the ledger (a remote id for every spec).

Time base: the emulator's limit counts requests per *emulated* minute, and its
``Retry-After`` is converted to real seconds (``emulated / speed``), so R requests per
emulated minute at speed S are ``R·S/60`` requests per real second, and the floor is
``calls / (R·S/60)`` real seconds.

The limiter is a sliding window: a client that arrives at an idle emulator gets R
requests at once for free. So that the figure measures steady pacing, not that
burst, the window is first filled with R requests spread evenly over one window.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import specgen
import yaml
from measure import KEYS, EmulatorProcess, Figure, reconciler_argv, reconciler_env, run_child

# the calls a create needs at the least (DESIGN §4): per data file the upload protocol
# of Together (POST /files → 302, PUT to the signed URL, POST /files/{id}/preprocess);
# per job a tag lookup (one unpaginated list) and the create itself
UPLOAD_CALLS = 3
JOB_CALLS = 2


def data_files(specs: Path) -> set[Path]:
    out = set()
    for path in specs.rglob("*.yaml"):
        spec = yaml.safe_load(path.read_text())["spec"]
        for key in ("training_file", "validation_file"):
            if spec.get(key):
                out.add((path.parent / spec[key]).resolve())
    return out


def fill_window(emu: EmulatorProcess, rpm: int, speed: float) -> None:
    """R authorised requests spread over one window, so the limiter is at steady state."""
    gap = 60.0 / speed / rpm
    request = urllib.request.Request(
        f"{emu.url}/together/v1/files",
        headers={"authorization": f"Bearer {KEYS['TOGETHER_API_KEY']}"},
    )
    start = time.monotonic()
    for i in range(rpm):
        time.sleep(max(0.0, start + i * gap - time.monotonic()))
        with urllib.request.urlopen(request, timeout=10.0) as answer:
            answer.read()
    time.sleep(max(0.0, start + rpm * gap - time.monotonic()))


def kind_of(req: dict[str, Any]) -> str:
    method, path = req["method"], req["path"]
    if req["status"] == 429:
        return "429 answers"
    if path.startswith("/_storage/") or path.endswith("/files") or "/preprocess" in path:
        return "upload"
    if method == "GET" and "/files/" in path:
        return "file-ready polls"
    if path.endswith("/estimate-price"):
        return "estimate-price"
    if method == "GET" and path.endswith("/fine-tunes"):
        return "tag lookups"
    if method == "POST" and path.endswith("/fine-tunes"):
        return "creates"
    return f"{method} {path}"


def run(work: Path, jobs: int, rpm: int, speed: float) -> list[Figure]:
    specs, ledger = work / "specs", work / "ledger.db"
    specgen.write_tree(specs, jobs, ("together",))
    files = len(data_files(specs))
    floor_calls = files * UPLOAD_CALLS + jobs * JOB_CALLS
    per_second = rpm * speed / 60.0
    with EmulatorProcess(work / "emulator.db", "--speed", str(speed), "--rpm", str(rpm)) as emu:
        fill_window(emu, rpm, speed)
        skip = len(emu.requests("together"))
        child = run_child(
            reconciler_argv(specs, ledger, "apply", "--yes"), env=reconciler_env(emu.url)
        )
        seen = emu.requests("together")[skip:]
    from reconciler.ledger import open_ledger

    book = open_ledger(ledger, readonly=True)
    try:
        recorded = sum(
            1 for r in book.records().values() if r.current and r.current.remote_id is not None
        )
    finally:
        book.close()
    if recorded != jobs:
        raise RuntimeError(f"converge: {recorded} of {jobs} jobs recorded with a remote id")
    kinds = Counter(kind_of(r) for r in seen)
    made = sum(n for k, n in kinds.items() if k != "429 answers")
    breakdown = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    time_base = f"R={rpm}/emulated min at speed {speed:g} = {per_second:g}/s"
    return [
        Figure(
            f"converge: apply --yes, {jobs} Together jobs at {rpm} rpm",
            child.seconds,
            "s",
            floor_calls / per_second,
            f"{floor_calls} calls ({files} files x {UPLOAD_CALLS} + {jobs} x {JOB_CALLS}), "
            + time_base,
            budget=1.2,
            extra={"calls": dict(kinds), "floor_calls": floor_calls, "rpm": rpm, "speed": speed},
        ),
        Figure(
            "converge: same, against the calls it actually made",
            child.seconds,
            "s",
            made / per_second,
            f"{made} calls made",
            note=breakdown,
        ),
    ]
