"""``status``: every spec's phase, job, progress, model or error, and whether it is in sync."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, EmptyLedgerError, ReconcilerError
from ..health import health, sync
from ..leases import replica_lines, replicas_and_leases
from ..ledger import open_ledger
from ..ledger.target import is_url
from ..model import Phase, SpecRecord
from ..observe import Sweep
from ..plan import Action, usd
from ..planfile import FORMAT_VERSION, dumps
from ..providers.pool import DriverPool
from ..reconcile import observe, plan_for
from ..redact import scrub
from ..render import Styler
from ..statusview import detail_lines, summary, table_lines
from ..strays import unknown_jobs, unknown_lines
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
) -> tuple[list[dict[str, Any]], list[dict[str, str | None]], Mapping[str, SpecRecord]]:
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
    plan = plan_for(jobs, obs, namespace=namespace)
    estimates = {j.name: j.estimated_cost_usd for j in jobs}
    rows = [status_row(a, estimates.get(a.name)) for a in plan.actions]
    return rows, unknown_jobs(obs), obs.records


def status_row(action: Action, estimate: float | None = None) -> dict[str, Any]:
    cur = action.current
    return {
        "name": action.name,
        "provider": action.provider,
        "sync": sync(action).value,
        "health": health(action).value,
        "phase": cur.phase.value if cur else "absent",
        "provider_status": cur.status if cur else None,
        "remote_id": cur.remote_id if cur else None,
        "attempt": cur.attempt if cur else None,
        "tag": cur.tag if cur else None,
        "progress": cur.progress if cur else None,
        "fine_tuned_model": cur.fine_tuned_model if cur else None,
        "error": cur.error if cur else None,
        "git_commit": cur.git_commit if cur else None,
        "spec_path": cur.spec_path if cur else None,
        "estimate": f"~{usd(estimate)}" if estimate else None,
        "next_action": action.kind.value,
        "reason": action.reason,
    }


def _attempt_rows(record: SpecRecord | None) -> list[dict[str, Any]]:
    rows = []
    for a in record.attempts if record else ():
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.created_at)) + "Z"
        rows.append(
            {
                "attempt": a.attempt,
                "phase": a.phase.value,
                "job": a.remote_id or a.tag,
                "created": created,
                "note": a.fine_tuned_model or a.error or "",
            }
        )
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    rows, unknown, records = status_rows(ws, args.offline)
    if args.name is not None:
        return _one(ws, args, rows, records)
    replicas = _replicas(ws)
    if args.json:
        doc: dict[str, Any] = {"format_version": FORMAT_VERSION, "jobs": rows}
        doc["unknown_jobs"] = unknown
        if replicas is not None:
            doc["replicas"] = replicas
        print(dumps(doc))
        return 0
    out = ws.out()
    if not rows:
        out.print("No specs and no jobs yet. Write a spec in specs/ and run `reconciler plan`.")
        return 0
    style = Styler(out.color_system is not None)
    width = out.width if sys.stdout.isatty() else None  # off a terminal nothing is cut
    lines = table_lines(rows, style, width)
    lines += ["", summary(rows)]
    if unknown:
        lines += ["", *unknown_lines(unknown)]
    if replicas:
        lines += ["", *replica_lines(replicas)]
    out.file.write("\n".join(lines) + "\n")
    return 0


SEEN_WITHIN_S = 120.0  # a replica heard from this recently is listed by status


def _replicas(ws: Workspace) -> list[dict[str, Any]] | None:
    """The live ``watch`` replicas of a PostgreSQL ledger and what each holds (None: a
    SQLite ledger, one writer)."""
    if not is_url(ws.ledger):
        return None
    from ..ledger.sql import SqlLedger

    try:
        ledger = open_ledger(ws.ledger, readonly=True)
    except EmptyLedgerError:
        return []
    try:
        assert isinstance(ledger, SqlLedger)
        return replicas_and_leases(ledger.rows, SEEN_WITHIN_S)
    finally:
        ledger.close()


def _one(ws: Workspace, args: argparse.Namespace, rows: list[dict[str, Any]], records: Any) -> int:
    row = next((r for r in rows if r["name"] == args.name), None)
    if row is None:
        names = ", ".join(r["name"] for r in rows[:8]) + (", …" if len(rows) > 8 else "")
        known = f" (known: {names})" if rows else ""
        raise ConfigError(f"no spec or job named {args.name!r}{known}")
    attempts = _attempt_rows(records.get(args.name))
    if args.json:
        print(dumps({"format_version": FORMAT_VERSION, "job": row, "attempts": attempts}))
        return 0
    out = ws.out()
    style = Styler(out.color_system is not None)
    out.file.write("\n".join(detail_lines(row, attempts, style)) + "\n")
    return 0
