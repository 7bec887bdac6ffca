"""``status``: every spec's phase, job, progress, model or error, and whether it is in sync."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from typing import Any

from ..errors import ReconcilerError
from ..model import Phase, SpecRecord
from ..observe import Sweep
from ..planfile import FORMAT_VERSION, dumps
from ..providers.pool import DriverPool
from ..reconcile import observe, plan_for, unknown_jobs, unknown_lines
from ..redact import scrub
from ..tags import DEFAULT_NAMESPACE
from .workspace import Workspace


def _with_progress(records: Mapping[str, SpecRecord], drivers: DriverPool) -> dict[str, SpecRecord]:
    """Current progress of each running job: one detailed read each (lists carry none)."""
    out = dict(records)
    for name, record in records.items():
        cur = record.current
        if cur is None or not cur.remote_id or cur.phase not in (Phase.RUNNING, Phase.UNKNOWN):
            continue
        try:
            progress = drivers.get(cur.provider).job_progress(cur.remote_id)
        except ReconcilerError:
            continue  # progress is a nicety: the phase is already known
        if progress:
            current = dataclasses.replace(cur, progress=progress)
            out[name] = dataclasses.replace(record, attempts=(*record.attempts[:-1], current))
    return out


def status_rows(
    ws: Workspace, offline: bool
) -> tuple[list[dict[str, Any]], list[dict[str, str | None]]]:
    """A row per spec or tracked job, and the unknown jobs of the namespace the lists showed."""
    view = ws.view()
    obs = observe(view, None, time.time())
    jobs: list[Any] = []
    namespace = DEFAULT_NAMESPACE
    if ws.specs.is_dir():
        state = ws.source.load()
        jobs, namespace = state.jobs, state.namespace
        if state.errors:
            print(
                f"warning: {len(state.errors)} spec problem(s); run `reconciler validate`",
                file=sys.stderr,
            )
    if not offline and view.records:
        drivers = DriverPool(ws.env)
        try:
            obs = observe(view, drivers, obs.now, sweep=Sweep(namespace, ws.known_remote_ids))
            for provider, err in obs.errors.items():
                print(
                    f"warning: cannot refresh {provider} jobs: {scrub(str(err))}", file=sys.stderr
                )
            obs = dataclasses.replace(obs, records=_with_progress(obs.records, drivers))
        finally:
            drivers.close()
    rows = []
    for action in plan_for(jobs, obs, namespace=namespace).actions:
        cur = action.current
        rows.append(
            {
                "name": action.name,
                "provider": action.provider,
                "phase": cur.phase.value if cur else "absent",
                "provider_status": cur.status if cur else None,
                "remote_id": cur.remote_id if cur else None,
                "attempt": cur.attempt if cur else None,
                "progress": cur.progress if cur else None,
                "fine_tuned_model": cur.fine_tuned_model if cur else None,
                "error": cur.error if cur else None,
                "git_commit": cur.git_commit if cur else None,
                "spec_path": cur.spec_path if cur else None,
                "sync": "Synced" if not action.is_change else "OutOfSync",
                "next_action": action.kind.value,
                "reason": action.reason,
            }
        )
    return rows, unknown_jobs(obs)


def cmd_status(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    rows, unknown = status_rows(ws, args.offline)
    if args.json:
        print(dumps({"format_version": FORMAT_VERSION, "jobs": rows, "unknown_jobs": unknown}))
        return 0
    out = ws.out()
    if not rows:
        out.print("No specs and no jobs yet. Write a spec in specs/ and run `reconciler plan`.")
        return 0
    from rich.table import Table

    colours = {"succeeded": "green", "failed": "red", "running": "cyan", "cancelled": "yellow"}
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("NAME", "PROVIDER", "PHASE", "JOB", "PROGRESS", "MODEL / ERROR", "COMMIT", "SYNC"):
        table.add_column(col, overflow="fold", no_wrap=col in ("NAME", "JOB", "COMMIT"))
    for r in rows:
        colour = colours.get(r["phase"], "")
        phase = f"[{colour}]{r['phase']}[/]" if colour else r["phase"]
        detail = r["fine_tuned_model"] or r["error"] or ""
        sync = "Synced" if r["sync"] == "Synced" else f"[yellow]OutOfSync[/] ({r['next_action']})"
        table.add_row(
            r["name"],
            r["provider"],
            phase,
            r["remote_id"] or "-",
            r["progress"] or "",
            detail,
            sync,
        )
    out.print(table)
    if unknown:
        out.print("\n" + "\n".join(unknown_lines(unknown)), markup=False)
    return 0
