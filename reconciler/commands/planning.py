"""``validate`` and ``plan``: read-only, they never write the ledger or provider state."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import planfile
from ..errors import ConfigError, LedgerError, SpecError, SpecErrors
from ..health import detailed_exit, verdict
from ..ledger import open_ledger
from ..loader import SpecSet, display_path
from ..model import DesiredJob
from ..observe import Sweep
from ..plan import CREATES, Plan
from ..preflight import Preflight, preflight
from ..pricing import repriced
from ..providers import CATALOG
from ..providers.pool import DriverPool
from ..reconcile import Observation, observe, plan_for
from ..removals import mass_removal
from ..render import print_plan
from ..strays import unknown_jobs, unknown_lines
from ..targets import Selection, chooser
from ..validation import DesiredState
from .workspace import Workspace


def diagnostics_json(errors: list[SpecError]) -> dict[str, object]:
    """Problems as Terraform's ``validate -json`` shapes them: one entry each."""
    return {
        "format_version": planfile.FORMAT_VERSION,
        "valid": not errors,
        "error_count": len(errors),
        "diagnostics": [
            {
                "severity": "error",
                "file": str(e.file),
                "line": e.line,
                "field": e.field,
                "message": e.message,
                "summary": e.render(),
            }
            for e in errors
        ],
    }


def diagnostics_markdown(errors: list[SpecError], title: str = "reconciler plan") -> str:
    """Problems as a pull-request comment: the CI step gets a body, not an empty one."""
    from ..render import MARKDOWN_MARKER, md_text

    lines = [
        MARKDOWN_MARKER,
        f"### {md_text(title)}: {len(errors)} problem(s) in the specs",
        "",
        "Nothing was planned. Fix these and push again:",
        "",
        "```",
        *(e.render().replace("```", "` ` `") for e in errors),
        "```",
    ]
    return "\n".join(lines) + "\n"


def online_checks(ws: Workspace, jobs: list[DesiredJob], specs: SpecSet | None) -> Preflight:
    """The providers' own pre-flight checks (their model lists and limits); a provider that
    cannot be asked is a note, not a failure."""
    drivers = DriverPool(ws.env)
    try:
        return preflight(jobs, specs, drivers)
    finally:
        drivers.close()


def print_notes(ws: Workspace, notes: list[str]) -> None:
    for note in notes:
        ws.err().print(f"note: {note}", markup=False, highlight=False)


def cmd_validate(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    paths = [Path(p) for p in args.paths] or None
    specs, state = ws.source.load_set(paths)
    errors = list(state.errors)
    checked = Preflight(notes=["online checks skipped (--offline)"] if args.offline else [])
    if not errors and not args.offline and state.jobs:
        checked = online_checks(ws, state.jobs, specs)
        errors += checked.errors
    if args.json:
        document = {**diagnostics_json(errors), "specs": len(state.jobs), "notes": checked.notes}
        print(planfile.dumps(document))
        return 1 if errors else 0
    print_notes(ws, checked.notes)
    if errors:
        raise SpecErrors(errors)
    for warning in state.warnings:
        ws.err().print(f"[yellow]warning:[/] {warning}", highlight=False)
    records = sum(r[0].records + (r[1].records if r[1] else 0) for r in state.reports.values())
    shown = ", ".join(str(display_path(p)) for p in (paths or [ws.specs]))
    asked = sorted({j.spec.provider for j in state.jobs} - {n.split(":")[0] for n in checked.notes})
    online = f"; checked online with {', '.join(asked)}" if asked and not args.offline else ""
    ws.out().print(
        f"[green]✓[/] {len(state.jobs)} spec(s) valid in {shown} "
        f"({len(specs.files)} file(s), {records} data record(s){online})"
    )
    return 0


DEFAULT_NAMESPACE_NOTE = (
    "note: no reconciler.yaml at the specs root: the namespace is 'default'. Give every "
    "project that shares a provider account a namespace of its own (README: the project file)."
)


EVERYTHING = Selection()


def compute_plan(
    ws: Workspace,
    state: DesiredState,
    *,
    offline: bool,
    max_cost: float | None = None,
    selection: Selection = EVERYTHING,
) -> tuple[Plan, list[dict[str, str | None]]]:
    """The plan from the ledger (refreshed from the providers unless ``offline``), and the
    unknown jobs of the namespace the lists showed; creates whose data a provider already
    holds are priced by that provider."""
    import time

    view = ws.view()
    only = chooser(selection, state.jobs, view.records)
    force = frozenset(selection.replace)

    def planned(jobs: list[DesiredJob], obs: Observation) -> Plan:
        return plan_for(
            jobs, obs, max_cost=max_cost, namespace=state.namespace, force=force, only=only
        )

    if offline:
        return planned(state.jobs, observe(view, None, time.time())), []
    drivers = DriverPool(ws.env)
    try:
        sweep = Sweep(state.namespace, ws.known_remote_ids)
        obs = observe(view, drivers, time.time(), sweep=sweep)
        for provider, err in obs.errors.items():
            raise ConfigError(
                f"cannot refresh {provider} jobs: {err} "
                "(plan --offline plans from the ledger alone)"
            ) from err
        plan = planned(state.jobs, obs)
        priced = _priced(ws, state, plan, drivers)
        if priced is not None:
            plan = planned(priced, obs)
        return plan, unknown_jobs(obs)
    finally:
        drivers.close()


def _priced(
    ws: Workspace, state: DesiredState, plan: Plan, drivers: DriverPool
) -> list[DesiredJob] | None:
    """The plan's creates priced by their provider where it holds the data already (a
    plan uploads nothing, and an estimate needs an uploaded file); None when unchanged."""
    if not any(a.kind in CREATES for a in plan.actions) or not ws.ledger_exists():
        return None
    try:
        ledger = open_ledger(ws.ledger, readonly=True)
    except LedgerError:
        return None
    try:
        return repriced(state.jobs, plan, ledger.file_row, drivers)
    finally:
        ledger.close()


def _local(job: DesiredJob) -> bool:
    """Local training: its estimate reads the model's folder, which a replay does not
    check."""
    return CATALOG[job.spec.provider].base == "local"


def data_paths(specs: SpecSet, state: DesiredState) -> list[str]:
    """The data files a plan read: as checked, and as each spec names them (a symbolic
    link that points elsewhere now is another file)."""
    out = {str(p) for j in state.jobs for p in (j.training_path, j.validation_path) if p}
    named = {
        (os.path.dirname(spec.file), value)
        for spec in specs
        for value in (spec.job.spec.training_file, spec.job.spec.validation_file)
        if value is not None
    }
    out.update(os.path.join(folder, value) for folder, value in named)
    return sorted(out)


def selection_of(args: argparse.Namespace) -> Selection:
    return Selection(tuple(args.target), tuple(args.exclude), tuple(getattr(args, "replace", [])))


def cmd_plan(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    form = "json" if args.json else args.format
    if args.out and Path(args.out).suffix.lower() in (".md", ".markdown"):
        raise ConfigError(
            f"--out {args.out}: --out saves the plan for `apply --plan` (JSON); for markdown, "
            f"redirect stdout: reconciler plan --format markdown > {args.out}"
        )
    try:
        specs, state = ws.source.load_set()
        if state.errors:
            raise SpecErrors(state.errors)
        if not args.offline and state.jobs:  # the providers' own checks, before anything
            checked = online_checks(ws, state.jobs, specs)
            print_notes(ws, checked.notes)
            if checked.errors:
                raise SpecErrors(checked.errors)
    except SpecErrors as exc:  # CI reads stdout: give it the problems in its format
        if form == "json":
            print(planfile.dumps(diagnostics_json(exc.errors)))
        elif form == "markdown":
            print(diagnostics_markdown(exc.errors), end="")
        raise
    selection = selection_of(args)
    plan, unknown = compute_plan(
        ws, state, offline=args.offline, max_cost=args.max_cost, selection=selection
    )
    memo = getattr(args, "memo", None)
    if memo is not None and plan.timeless and not any(_local(j) for j in state.jobs):
        memo.keep(specs.files, specs.digests, data_paths(specs, state))
    if args.out or form == "json":  # the document of every action: only when asked for
        document = planfile.plan_json(
            plan,
            ledger_path=ws.ledger_label,
            specs_root=str(ws.specs),
            offline=args.offline,
            git_ref=ws.git_ref,
            git_commit=ws.source.commit,
            selection=None if selection == EVERYTHING else selection.as_json(),
        )
        document["unknown_jobs"] = unknown
        if args.out:
            planfile.write(Path(args.out), document)
    if form == "json":
        print(planfile.dumps(document))
    elif form == "markdown":
        from ..render import plan_markdown

        print(plan_markdown(plan, offline=args.offline, commit=ws.source.commit), end="")
    else:
        _print_text(ws, args, state, plan, unknown, selection)
    if args.detailed_exitcode:
        return detailed_exit(verdict(plan.actions))
    return 0


def _print_text(
    ws: Workspace,
    args: argparse.Namespace,
    state: DesiredState,
    plan: Plan,
    unknown: list[dict[str, str | None]],
    selection: Selection,
) -> None:
    out = ws.out()
    print_plan(plan, out, show_unchanged=args.show_unchanged)
    if not selection.everything:
        out.print(
            f"\nnote: --target/--exclude: {len(plan.actions)} spec(s) planned; "
            "the others are left out of this plan.",
            markup=False,
        )
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
