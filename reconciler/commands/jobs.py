"""``import`` (adopt a provider's job as a spec's current job) and ``logs`` (a job's
events at the provider, or reconciler's own audit log)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from ..errors import ConfigError
from ..ledger import open_ledger
from ..model import AttemptView, Phase
from ..providers import CATALOG
from ..providers.pool import DriverPool
from ..reconcile import Reconciler
from .workspace import Workspace


def cmd_import(args: argparse.Namespace) -> int:
    """Adopt an existing provider job as the current job of a spec (Terraform's import)."""
    ws = Workspace.from_args(args)
    provider, sep, job_id = args.target.partition(":")
    state = ws.source.desired()  # first: its reconciler.yaml may name provider profiles
    if not sep or provider not in CATALOG or not job_id:
        raise ConfigError(
            f"import takes PROVIDER:JOB_ID with PROVIDER one of {', '.join(CATALOG)}, "
            f"e.g. together:ft-0123 (got {args.target!r})"
        )
    want = next((j for j in state.jobs if j.name == args.name), None)
    if want is None:
        raise ConfigError(
            f"no spec named {args.name!r} in {ws.specs}: write the spec the job was trained "
            "from, then import it"
        )
    if want.spec.provider != provider:
        raise ConfigError(f"spec {args.name!r} is for {want.spec.provider}, not {provider}")
    with ws.writing("import") as ledger:
        drivers = DriverPool(ws.env)
        try:
            core = Reconciler(ledger, drivers, provenance=ws.source, namespace=state.namespace)
            job, attempt = core.import_job(want, job_id)
        finally:
            drivers.close()
    ws.out().print(
        f"Imported {provider}:{job_id} ({job.status}) as {want.name}, attempt {attempt}. "
        "The spec is now taken to describe it: check `reconciler plan`.",
        markup=False,
    )
    return 0


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else "-"


def _no_job(name: str, cur: AttemptView) -> str:
    """Why a spec's current attempt has no job at the provider, and what to do."""
    if cur.phase is Phase.FAILED:
        then = "the next apply tries again" if cur.error_retryable else "fix the spec and run apply"
        return (
            f"{name}: the create failed (attempt {cur.attempt}): {cur.error or 'no reason given'}"
            f" — no provider job exists; {then}"
        )
    return f"{name!r} has no provider job yet (intent {cur.tag})"


def cmd_logs(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    out = ws.out()
    if args.ledger_events:
        if not ws.ledger_exists():
            raise ConfigError(f"no ledger at {ws.ledger_label}")
        ledger = open_ledger(ws.ledger, readonly=True)
        try:
            events = ledger.events(args.name, limit=1000)
        finally:
            ledger.close()
        if not events:
            raise ConfigError(f"no ledger events for {args.name!r}")
        for e in events:
            out.print(f"{_when(e['ts'])}  {e['kind']:<14} {e['message']}", markup=False)
        return 0
    record = ws.view().records.get(args.name)
    cur = record.current if record else None
    if cur is None:
        raise ConfigError(f"no job for {args.name!r} in the ledger {ws.ledger_label}")
    if cur.remote_id is None:
        raise ConfigError(_no_job(args.name, cur))
    remote_id = cur.remote_id
    drivers = DriverPool(ws.env)
    try:
        driver = drivers.get(cur.provider)
        seen: set[tuple[float | None, str]] = set()

        def show_new() -> None:
            for ev in driver.job_events(remote_id):
                if (ev.created_at, ev.message) in seen:
                    continue
                seen.add((ev.created_at, ev.message))
                out.print(f"{_when(ev.created_at)}  {ev.level:<7} {ev.message}", markup=False)

        show_new()
        if not args.follow:
            if not seen:
                out.print(f"{remote_id}: no events yet", markup=False)
            return 0
        while True:
            job = driver.get_job(remote_id)
            if job.phase.terminal:
                show_new()  # the last lines, written as the job ended
                out.print(f"{remote_id}: {job.status}", markup=False)
                return 0
            time.sleep(args.interval)
            show_new()
    finally:
        drivers.close()
