"""``validate`` and ``plan``: read-only, they never write the ledger or provider state."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import planfile
from ..errors import ConfigError, LedgerError, SpecErrors
from ..ledger import open_ledger
from ..loader import display_path
from ..model import DesiredJob
from ..observe import Sweep
from ..plan import CREATES, Plan, mass_removal
from ..pricing import priced_online
from ..providers.pool import DriverPool
from ..reconcile import observe, plan_for, unknown_jobs, unknown_lines
from ..render import print_plan
from ..validation import DesiredState
from .workspace import Workspace


def cmd_validate(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    paths = [Path(p) for p in args.paths] or None
    specs, state = ws.source.load_set(paths)
    if state.errors:
        raise SpecErrors(state.errors)
    records = sum(r[0].records + (r[1].records if r[1] else 0) for r in state.reports.values())
    shown = ", ".join(str(display_path(p)) for p in (paths or [ws.specs]))
    ws.out().print(
        f"[green]✓[/] {len(state.jobs)} spec(s) valid in {shown} "
        f"({len(specs.files)} file(s), {records} data record(s))"
    )
    return 0


DEFAULT_NAMESPACE_NOTE = (
    "note: no reconciler.yaml at the specs root: the namespace is 'default'. Give every "
    "project that shares a provider account a namespace of its own (README: the project file)."
)


def compute_plan(
    ws: Workspace, state: DesiredState, *, offline: bool, max_cost: float | None = None
) -> tuple[Plan, list[dict[str, str | None]]]:
    """The plan from the ledger (refreshed from the providers unless ``offline``), and the
    unknown jobs of the namespace the lists showed; creates whose data a provider already
    holds are priced by that provider."""
    import time

    view = ws.view()
    if offline:
        obs = observe(view, None, time.time())
        return plan_for(state.jobs, obs, max_cost=max_cost, namespace=state.namespace), []
    drivers = DriverPool(ws.env)
    try:
        sweep = Sweep(state.namespace, ws.known_remote_ids)
        obs = observe(view, drivers, time.time(), sweep=sweep)
        for provider, err in obs.errors.items():
            raise ConfigError(
                f"cannot refresh {provider} jobs: {err} "
                "(plan --offline plans from the ledger alone)"
            ) from err
        plan = plan_for(state.jobs, obs, max_cost=max_cost, namespace=state.namespace)
        priced = _priced(ws, state, plan, drivers)
        if priced is not None:
            plan = plan_for(priced, obs, max_cost=max_cost, namespace=state.namespace)
        return plan, unknown_jobs(obs)
    finally:
        drivers.close()


def _priced(
    ws: Workspace, state: DesiredState, plan: Plan, drivers: DriverPool
) -> list[DesiredJob] | None:
    """The plan again with each create priced by its provider, where the provider holds the
    data already (a plan uploads nothing, and an estimate needs an uploaded file); None
    when no price changed."""
    creating = {a.name for a in plan.actions if a.kind in CREATES}
    if not creating or not ws.ledger.exists():
        return None
    try:
        ledger = open_ledger(ws.ledger, readonly=True)
    except LedgerError:
        return None
    try:

        def uploaded(provider: str, sha256: str) -> str | None:
            row = ledger.file_row(provider, sha256)
            return str(row["remote_id"]) if row and row["remote_id"] else None

        jobs = priced_online(state.jobs, creating, uploaded, drivers)
    finally:
        ledger.close()
    return jobs if jobs != state.jobs else None


def cmd_plan(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    state = ws.source.desired()
    plan, unknown = compute_plan(ws, state, offline=args.offline, max_cost=args.max_cost)
    document = planfile.plan_json(
        plan, ledger_path=str(ws.ledger), specs_root=str(ws.specs), offline=args.offline
    )
    document["unknown_jobs"] = unknown
    if args.out:
        planfile.write(Path(args.out), document)
    if args.json or args.format == "json":
        print(planfile.dumps(document))
    elif args.format == "markdown":
        from ..render import plan_markdown

        print(plan_markdown(plan, offline=args.offline, commit=ws.source.commit), end="")
    else:
        out = ws.out()
        print_plan(plan, out)
        if state.project_file is None and plan.actions:
            out.print(f"\n{DEFAULT_NAMESPACE_NOTE}", markup=False)
        if unknown:
            out.print("\n" + "\n".join(unknown_lines(unknown)), markup=False)
        tracked = sum(1 for a in plan.actions if a.current is not None)
        if (too_much := mass_removal(plan, tracked, len(state.jobs))) is not None:
            out.print(
                f"\n[yellow]warning:[/] {too_much}: `apply` refuses it without "
                "--allow-mass-removal (an empty or mistyped --specs folder looks like this)."
            )
        if args.out:
            out.print(f"\nSaved the plan to {args.out}: run `reconciler apply --plan {args.out}`.")
        elif plan.changes:
            out.print("\nRun `reconciler apply` to make these changes.")
    if args.detailed_exitcode and plan.changes:
        return 2
    return 0
