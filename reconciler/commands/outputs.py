"""``output NAME``: what a spec's latest successful job produced, for a deploy step
(Terraform's ``output -raw``). Read from the ledger; checkpoints from the provider."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..errors import ConfigError, ReconcilerError
from ..ledger import open_ledger
from ..model import Phase
from ..plan import usd
from ..planfile import FORMAT_VERSION, dumps
from ..providers import CATALOG
from ..providers.pool import DriverPool
from ..redact import scrub
from .workspace import Workspace

FIELDS = (
    "model",
    "job_id",
    "provider",
    "attempt",
    "trained_tokens",
    "cost_usd",
    "git_commit",
    "spec_path",
    "fingerprint",
    "tag",
    "finished_at",
    "checkpoint",
)


def outputs(ws: Workspace, name: str, drivers: DriverPool | None) -> dict[str, Any]:
    """The outputs of ``name``'s latest succeeded attempt; a clear error when none. A
    current job the ledger last saw active is asked about (with ``drivers``; None:
    offline): it may have finished since (nothing is written: ``refresh`` saves)."""
    offline = drivers is None
    if not ws.ledger_exists():
        raise ConfigError(f"no ledger at {ws.ledger_label}: nothing has been applied yet")
    ledger = open_ledger(ws.ledger, readonly=True)
    try:
        rows = [r for r in ledger.attempts(name) if not r.get("forgotten")]
    finally:
        ledger.close()
    if not rows:
        raise ConfigError(f"no job of a spec named {name!r} in {ws.ledger_label}")
    rows.sort(key=lambda r: int(r["attempt"]))
    current = rows[-1]
    if drivers is not None and current["remote_id"] and Phase(current["status"]).active:
        rows[-1] = current = _asked(drivers, current)
    done = [r for r in rows if r["status"] == Phase.SUCCEEDED.value]
    if not done:
        what = current["status"] + (f": {current['error']}" if current.get("error") else "")
        stale = offline and Phase(current["status"]).active
        hint = "; `reconciler refresh` saves what the provider says now" if stale else ""
        raise ConfigError(
            f"{name} has no successful job yet (attempt {current['attempt']} is {what}"
            f"{', as the ledger last saw it' if stale else ''}); "
            f"see `reconciler status {name}`{hint}"
        )
    row = done[-1]
    finished = row.get("finished_at")
    out: dict[str, Any] = {
        "name": name,
        "model": row["fine_tuned_model"],
        "job_id": row["remote_id"],
        "provider": row["provider"],
        "attempt": row["attempt"],
        "trained_tokens": row.get("trained_tokens"),
        "cost_usd": row.get("cost_estimate_usd"),
        "cost_basis": "estimate made before the job was created",
        "git_commit": row.get("git_commit"),
        "spec_path": row.get("spec_path"),
        "fingerprint": row["fingerprint"],
        "tag": row["tag"],
        "finished_at": _iso(finished) if finished else None,
        "checkpoints": [],
        "checkpoint": None,
        "newer_attempt": None,
    }
    if current is not row:
        out["newer_attempt"] = {"attempt": current["attempt"], "phase": current["status"]}
    info = CATALOG.get(row["provider"])
    out["deploy_note"] = info.deploy_note if info is not None else None
    return out


def _asked(drivers: DriverPool, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as the provider describes its job now; as recorded when it cannot say."""
    try:
        job = drivers.get(row["provider"]).get_job(row["remote_id"])
    except ReconcilerError as exc:
        print(f"warning: cannot ask {row['provider']}: {scrub(str(exc))}", file=sys.stderr)
        return row
    return {
        **row,
        "status": job.phase.value,
        "fine_tuned_model": job.fine_tuned_model or row["fine_tuned_model"],
        "trained_tokens": job.trained_tokens or row.get("trained_tokens"),
        "error": job.error,
    }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _with_checkpoints(drivers: DriverPool, out: dict[str, Any]) -> dict[str, Any]:
    """The provider's checkpoints of the job (newest last), when it lists them."""
    try:
        found = drivers.get(out["provider"]).checkpoints(out["job_id"])
    except ReconcilerError as exc:
        print(f"warning: cannot list checkpoints: {scrub(str(exc))}", file=sys.stderr)
        return out
    out["checkpoints"] = [
        {"id": c.id, "step": c.step, "model": c.model, "metrics": c.metrics} for c in found
    ]
    out["checkpoint"] = (found[-1].model or found[-1].id) if found else None
    return out


def cmd_output(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    drivers = None if args.offline else DriverPool(ws.env)  # one pool: drivers built on use
    try:
        out = outputs(ws, args.name, drivers)
        wanted = args.raw in (None, "checkpoint") or (args.raw == "model" and not out["model"])
        if wanted and drivers is not None:
            out = _with_checkpoints(drivers, out)
    finally:
        if drivers is not None:
            drivers.close()
    if args.json:
        print(dumps({"format_version": FORMAT_VERSION, **out}))
        return 0
    if args.raw is not None:
        if args.raw not in FIELDS:
            raise ConfigError(f"output --raw {args.raw}: not a field (one of {', '.join(FIELDS)})")
        value = out[args.raw]
        if value is None:
            hint = ""
            if args.raw == "model" and out["checkpoint"]:
                hint = f" (its last checkpoint is {out['checkpoint']}: --raw checkpoint)"
            raise ConfigError(
                f"{args.name}: no {args.raw} is recorded for job {out['job_id']}{hint}"
            )
        sys.stdout.write(f"{value}\n")
        return 0
    console = ws.out()
    style = console.color_system is not None
    lines = []
    shown = [(k, out[k]) for k in FIELDS if k != "checkpoint" and out[k] is not None]
    width = max(len(k) for k, _ in shown) + 1
    for key, value in shown:
        label = f"{key}:".ljust(width)
        if key == "cost_usd":
            value = f"~{usd(float(value))} ({out['cost_basis']})"
        lines.append(f"\x1b[1m{label}\x1b[0m {value}" if style else f"{label} {value}")
    for cp in out["checkpoints"]:
        step = f" (step {cp['step']})" if cp.get("step") is not None else ""
        lines.append(f"  checkpoint {cp['model'] or cp['id']}{step}")
    if out["deploy_note"]:
        lines.append(f"note: {out['deploy_note']}")
    if newer := out["newer_attempt"]:
        lines.append(
            f"note: attempt {newer['attempt']} is {newer['phase']}; these are attempt "
            f"{out['attempt']}'s outputs until it succeeds"
        )
    console.file.write("\n".join(lines) + "\n")
    return 0
