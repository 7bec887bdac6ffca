"""``apply`` (and ``apply --wait``): one pass of the reconcile core, shown and confirmed;
with ``--wait``, passes until every job settles."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.markup import escape

from .. import planfile
from ..apply import Outcome
from ..errors import ConfigError, SpecErrors
from ..health import Health, attention_line, health, sync, verdict
from ..model import AttemptView, Phase, SpecRecord
from ..plan import Kind, Plan
from ..providers.pool import DriverPool
from ..reconcile import (
    MassRemoval,
    Observation,
    PassResult,
    Reconciler,
    Settled,
)
from ..redact import scrub
from ..render import print_plan
from ..strays import unknown_jobs, unknown_lines
from ..targets import chooser
from .planning import online_checks, print_notes, selection_of
from .workspace import Workspace


def cmd_apply(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    for option in ("timeout", "interval", "adopt_grace"):
        if getattr(args, option) < 0:
            raise ConfigError(f"--{option.replace('_', '-')} must not be negative")
    if args.refresh_only:
        return cmd_refresh(args)
    # before the lock and the ledger: a bad spec touches nothing, nothing is uploaded for
    # a model the provider says it cannot train
    specs, state = ws.source.load_set()
    if state.errors:
        raise SpecErrors(state.errors)
    if state.jobs and not args.plan:
        checked = online_checks(ws, state.jobs, specs)
        print_notes(ws, checked.notes)
        if checked.errors:
            raise SpecErrors(checked.errors)
    saved = planfile.read(Path(args.plan)) if args.plan else None
    selection = selection_of(args)
    only = chooser(selection, state.jobs, ws.view().records)
    out = ws.out()
    with ws.writing("apply") as ledger:
        drivers = DriverPool(ws.env)
        try:
            core = Reconciler(
                ledger,
                drivers,
                provenance=ws.source,
                adopt_grace=args.adopt_grace,
                max_cost=args.max_cost,
                on_outcome=lambda o: _outcome_line(out, o),
                namespace=state.namespace,
                price_online=True,
            )

            def confirm(plan: Plan, obs: Observation) -> bool:
                print_plan(plan, out, show_unchanged=args.show_unchanged)
                if not selection.everything:
                    out.print(
                        f"note: --target/--exclude: {len(plan.actions)} spec(s) in this apply; "
                        "the others are left as they are.",
                        markup=False,
                    )
                if unknown := unknown_jobs(obs):
                    out.print("\n".join(unknown_lines(unknown)), markup=False)
                for provider, err in obs.errors.items():
                    out.print(
                        f"[yellow]warning:[/] cannot refresh {provider} jobs ({scrub(str(err))}); "
                        f"{provider} actions are skipped this time"
                    )
                if not plan.changes:
                    return True
                if not _confirmed(args):
                    out.print("Apply cancelled.")
                    return False
                out.print()
                return True

            mass: MassRemoval = "allow" if args.allow_mass_removal else "refuse"
            first = core.pass_once(
                state.jobs,
                confirm=confirm,
                saved=saved,
                mass_removal=mass,
                only=None if selection.everything else only,
                force=frozenset(selection.replace),
            )
            if first.refused:
                print_plan(first.plan, out)
                raise ConfigError(f"{first.refused}: nothing done. {MASS_REMOVAL_HINT}")
            if first.declined:
                return 1
            if args.wait:
                return _wait(args, core, state.jobs, first, out, saved is not None, only)
            return _summary(first, out)
        finally:
            drivers.close()


def cmd_refresh(args: argparse.Namespace) -> int:
    """``refresh`` (and ``apply --refresh-only``): save what the providers report, so the
    ledger (``status --offline``, a deploy step's ``output``) is true afterwards."""
    ws = Workspace.from_args(args)
    state = ws.source.load()  # a broken spec does not stop a refresh: nothing is acted on
    out = ws.out()
    with ws.writing("refresh") as ledger:
        serial = ledger.serial
        drivers = DriverPool(ws.env)
        try:
            core = Reconciler(ledger, drivers, provenance=ws.source, namespace=state.namespace)
            result = core.refresh_only(state.jobs)
        finally:
            drivers.close()
        changed = ledger.serial - serial
    failed = result.observation.errors
    for provider, err in failed.items():
        out.print(f"[yellow]warning:[/] cannot refresh {provider} jobs: {escape(scrub(str(err)))}")
    active = sum(1 for a in result.observation.view.attempts() if a.phase.active)
    out.print(
        f"Refreshed {active} active job(s): {len(result.observation.refresh.observed)} reported, "
        f"{changed} ledger change(s) saved."
    )
    if unknown := unknown_jobs(result.observation):
        out.print("\n".join(unknown_lines(unknown)), markup=False)
    return 1 if failed else 0


MASS_REMOVAL_HINT = (
    "An empty or mistyped --specs folder looks like this; if the removal is meant, "
    "run again with --allow-mass-removal"
)


def _confirmed(args: argparse.Namespace) -> bool:
    if args.yes or args.plan:
        return True
    if not sys.stdin.isatty():
        raise ConfigError("apply needs confirmation: pass --yes (no terminal to ask on)")
    try:
        answer = input("\nApply these changes? Only 'yes' is accepted: ")
    except EOFError:
        return False
    return answer.strip() == "yes"


def _outcome_line(out: Any, o: Outcome) -> None:
    mark = "[green]✓[/]" if o.ok else ("[yellow]…[/]" if o.pending else "[red]✗[/]")
    out.print(f"{mark} {escape(o.name)}: {o.what}: {escape(scrub(o.message))}")


def _summary(result: PassResult, out: Any) -> int:
    outcomes = result.outcomes
    done = sum(1 for o in outcomes if o.ok)
    pending = sum(1 for o in outcomes if o.pending)
    summary = f"Apply complete: {done} done, {pending} pending, {len(result.failed)} failed."
    out.print(("\n" if outcomes else "") + f"[bold]{summary}[/]")
    waiting = any(a.kind is Kind.WAIT for a in result.plan.actions)
    if any(o.ok or o.pending for o in outcomes) or waiting:
        out.print(
            "Jobs run at the provider: follow them with `reconciler status` or `apply --wait`."
        )
    return 1 if result.failed else 0


def _wait(
    args: argparse.Namespace,
    core: Reconciler,
    desired: Any,
    first: PassResult,
    out: Any,
    saved: bool,
    only: Callable[[str], bool],
) -> int:
    """``--wait``: pass after pass until settled; each phase change printed once."""
    progress = _Progress(out, first.records)
    settled = core.until_settled(
        desired,
        first,
        timeout=args.timeout,
        interval=args.interval,
        execute=not saved,
        on_pass=progress.show,
        only=only,
    )
    return _finish(args, settled, out, saved)


class _Progress:
    """Prints each attempt's phase and progress changes between passes, and provider
    trouble once per distinct error."""

    def __init__(self, out: Any, records: Mapping[str, SpecRecord]) -> None:
        self.out = out
        self.seen = {a.id: (a.phase, a.progress) for a in _attempts(records)}
        self.warned: set[str] = set()

    def show(self, result: PassResult) -> None:
        for provider, err in result.observation.errors.items():
            if str(err) not in self.warned:  # a provider down while we wait: say so once
                self.warned.add(str(err))
                self.out.print(f"[yellow]warning:[/] {provider}: {escape(scrub(str(err)))}")
        for a in _attempts(result.records):
            was = self.seen.get(a.id)
            if was == (a.phase, a.progress):
                continue
            self.seen[a.id] = (a.phase, a.progress)
            if was is not None and was[0] is a.phase:  # same phase, new progress
                self.out.print(f"  {escape(a.name)}: {a.phase.value}, {escape(a.progress or '')}")
                continue
            detail = f" ({a.progress})" if a.progress else ""
            if a.phase is Phase.SUCCEEDED and a.fine_tuned_model:
                detail = f": {a.fine_tuned_model}"
            elif a.error:
                detail = f": {a.error}"
            start = was[0].value if was else "new"
            self.out.print(f"  {escape(a.name)}: {start} → {a.phase.value}{escape(detail)}")


def _attempts(records: Mapping[str, SpecRecord]) -> list[AttemptView]:
    return [a for r in records.values() for a in r.attempts]


def _finish(args: argparse.Namespace, settled: Settled, out: Any, saved: bool) -> int:
    """The end of ``--wait``: one line per spec that is not plainly done (the whole plan
    was shown at the start), then the tally of health."""
    plan = settled.last.plan
    out.print()
    for a in plan.actions:
        h = health(a)
        if h is Health.HEALTHY and not a.is_change:
            continue
        out.print(f"  {escape(a.name)}: {h.value}, {sync(a).value}: {escape(a.reason)}")
    tally: dict[str, int] = {}
    for a in plan.actions:
        tally[health(a).value] = tally.get(health(a).value, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(tally.items(), key=lambda kv: -kv[1]))
    v = verdict(plan.actions)
    if plan.actions and v.matches and all(health(a) is Health.HEALTHY for a in plan.actions):
        out.print(f"[green]All {len(plan.actions)} job(s) succeeded.[/] Reality matches the specs.")
    elif plan.actions:
        out.print(
            f"[bold]Settled: {counts}.[/]" + (f" {attention_line(v)}" if not v.matches else "")
        )
    if settled.timed_out:
        out.print(
            f"[red]Timed out after {args.timeout:.0f}s;[/] jobs keep running: "
            "see `reconciler status`."
        )
        return 1
    if saved and plan.changes:
        names = ", ".join(f"{a.name} ({a.kind.value})" for a in plan.changes)
        out.print(f"[yellow]Not in the saved plan:[/] {names}; run `reconciler plan` again.")
        return 1
    return 1 if settled.failed or v.drifted or v.degraded else 0
