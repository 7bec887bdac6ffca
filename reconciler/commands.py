"""The commands behind the CLI: each loads what it needs, acts, prints, returns an exit code."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .apply import Executor, Outcome, persist_observations, refresh, with_observations
from .errors import (
    ConfigError,
    EmptyLedgerError,
    LedgerError,
    ReconcilerError,
    SpecError,
    SpecErrors,
    StalePlanError,
)
from .ledger import Ledger, WriterLock
from .loader import SpecSet, display_path, load_tree
from .log import get as get_logger
from .model import Phase, SpecRecord
from .plan import CREATES, Kind, Plan, make_plan
from .providers.pool import DriverPool
from .redact import scrub
from .render import FORMAT_VERSION, console, dumps, plan_json, print_plan
from .validation import DesiredState, desired_state

log = get_logger()


@dataclass
class Workspace:
    """Paths and streams of one invocation."""

    specs: Path
    ledger: Path
    no_color: bool
    git_ref: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _snapshot: Any = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Workspace:
        return cls(
            Path(args.specs), Path(args.ledger), bool(args.no_color), getattr(args, "git_ref", None)
        )

    def snapshot(self) -> Any:
        """The specs tree as committed at ``--git-ref`` (exported once per invocation)."""
        if self._snapshot is None and self.git_ref is not None:
            import atexit

            from .gitref import export

            self._snapshot = export(self.specs, self.git_ref)
            atexit.register(self._snapshot.close)
        return self._snapshot

    def commit_of(self, spec_file: str) -> str | None:
        """Provenance: the commit a spec comes from (``-dirty`` when edited since)."""
        snap = self.snapshot()
        return snap.commit if snap is not None else git_commit(spec_file)

    def spec_path_of(self, spec_file: str) -> str:
        snap = self.snapshot()
        if snap is None:
            return spec_file
        from .gitref import commit_of

        return commit_of(Path(spec_file), snap)[1]

    def out(self) -> Any:
        return console(sys.stdout, no_color=self.no_color)

    def err(self) -> Any:
        return console(sys.stderr, no_color=self.no_color)


def _load(ws: Workspace, paths: list[Path] | None = None) -> tuple[SpecSet, DesiredState]:
    snap = ws.snapshot()
    if snap is not None:
        if paths:
            raise ConfigError("--git-ref reads the whole specs tree of a commit: give no PATH")
        specs = load_tree([snap.specs_dir])
        state = desired_state(specs, snap.specs_dir)
        state.errors = [_at_ref(err, ws, snap) for err in state.errors]
        return specs, state
    if paths is None and not ws.specs.is_dir():
        raise ConfigError(
            f"specs folder {ws.specs} does not exist (set --specs or RECONCILER_SPECS)"
        )
    specs = load_tree(paths or [ws.specs])
    root = ws.specs if ws.specs.is_dir() else (paths[0] if paths else ws.specs)
    return specs, desired_state(specs, root)


def _at_ref(err: SpecError, ws: Workspace, snap: Any) -> SpecError:
    """A problem in an exported snapshot, named as ``REF:path`` rather than a temp path."""
    try:
        rel = Path(err.file).resolve().relative_to(Path(snap.root).resolve())
    except ValueError:
        return err
    return SpecError(err.message, f"{ws.git_ref}:{rel}", err.line, err.field)


def _desired(ws: Workspace) -> DesiredState:
    _, state = _load(ws)
    if state.errors:
        raise SpecErrors(state.errors)
    return state


def _read_ledger(ws: Workspace) -> tuple[dict[str, SpecRecord], str, int]:
    """The ledger's view, read-only; an absent ledger is an empty one (and stays absent)."""
    if not ws.ledger.exists():
        return {}, "", 0
    try:
        ledger = Ledger.open(ws.ledger, readonly=True)
    except EmptyLedgerError:
        return {}, "", 0
    try:
        return ledger.snapshot()
    finally:
        ledger.close()


@cache
def _git_head(folder: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def git_commit(spec_path: str) -> str | None:
    """The commit a spec file comes from; ``-dirty`` when the file differs from it."""
    path = Path(spec_path)
    head = _git_head(str(path.parent.resolve()))
    if head is None:
        return None
    status = subprocess.run(
        ["git", "-C", str(path.parent.resolve()), "status", "--porcelain", "--", path.name],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return head + ("-dirty" if status.stdout.strip() else "")


# -- validate ------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    paths = [Path(p) for p in args.paths] or None
    specs, state = _load(ws, paths)
    if state.errors:
        raise SpecErrors(state.errors)
    records = sum(r[0].records + (r[1].records if r[1] else 0) for r in state.reports.values())
    shown = ", ".join(str(display_path(p)) for p in (paths or [ws.specs]))
    ws.out().print(
        f"[green]✓[/] {len(state.jobs)} spec(s) valid in {shown} "
        f"({len(specs.files)} file(s), {records} data record(s))"
    )
    return 0


# -- plan ----------------------------------------------------------------------------


def _compute_plan(
    ws: Workspace, state: DesiredState, offline: bool, max_cost: float | None = None
) -> tuple[Plan, dict[str, Any]]:
    records, lineage, serial = _read_ledger(ws)
    now = time.time()
    if not offline:
        drivers = DriverPool(ws.env)
        try:
            fresh = refresh(records, drivers)
            for provider, err in fresh.errors.items():
                raise ConfigError(
                    f"cannot refresh {provider} jobs: {err} "
                    "(plan --offline plans from the ledger alone)"
                ) from err
            records = with_observations(records, fresh.observed, now)
            state.jobs = _priced(ws, state.jobs, records, drivers, now)
        finally:
            drivers.close()
    plan = make_plan(state.jobs, records, now, max_cost=max_cost)
    return plan, {"path": str(ws.ledger), "lineage": lineage, "serial": serial}


def _priced(
    ws: Workspace,
    jobs: list[Any],
    records: dict[str, SpecRecord],
    drivers: DriverPool,
    now: float,
) -> list[Any]:
    """The provider's own price for each create whose data it already holds (Together's
    estimate-price needs an uploaded file; plan uploads nothing)."""
    import dataclasses

    from .model import create_request

    if not ws.ledger.exists():
        return jobs
    creating = {a.name for a in make_plan(jobs, records, now).actions if a.kind in CREATES}
    try:
        ledger = Ledger.open(ws.ledger, readonly=True)
    except LedgerError:
        return jobs
    out = []
    try:
        for job in jobs:
            row = ledger.file_row(job.spec.provider, job.training_sha256)
            if job.name not in creating or row is None or not row["remote_id"]:
                out.append(job)
                continue
            try:
                estimate = getattr(drivers.get(job.spec.provider), "estimate_price", None)
                if estimate is None:
                    out.append(job)
                    continue
                request = create_request(
                    job.name, job.spec, tag="rc-000000000000", training_file_id=row["remote_id"]
                )
                price = estimate(row["remote_id"], request)
            except ReconcilerError:
                out.append(job)  # the offline estimate stands
                continue
            if price is None:
                out.append(job)
                continue
            basis = f"{job.spec.provider} estimate-price (online)"
            out.append(dataclasses.replace(job, estimated_cost_usd=price, estimate_basis=basis))
    finally:
        ledger.close()
    return out


def cmd_plan(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    state = _desired(ws)
    plan, ledger = _compute_plan(ws, state, args.offline, args.max_cost)
    document = plan_json(plan, ledger=ledger, specs_root=str(ws.specs), offline=args.offline)
    if args.out:
        try:
            Path(args.out).write_text(dumps(document) + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot write plan to {args.out}: {exc.strerror or exc}") from exc
    if args.json or args.format == "json":
        print(dumps(document))
    elif args.format == "markdown":
        from .render import plan_markdown

        snap = ws.snapshot()
        print(
            plan_markdown(plan, offline=args.offline, commit=snap.commit if snap else None), end=""
        )
    else:
        out = ws.out()
        print_plan(plan, out)
        if args.out:
            out.print(f"\nSaved the plan to {args.out}: run `reconciler apply --plan {args.out}`.")
        elif plan.changes:
            out.print("\nRun `reconciler apply` to make these changes.")
    if args.detailed_exitcode and plan.changes:
        return 2
    return 0


# -- apply ---------------------------------------------------------------------------


def _check_saved(saved: dict[str, Any], ledger: Ledger, plan: Plan, source: str) -> None:
    """Refuse a saved plan whose ledger or specs have moved since it was made."""
    if saved.get("format_version") != FORMAT_VERSION:
        raise StalePlanError(
            f"{source}: plan format {saved.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    was = saved.get("ledger") or {}
    fresh_ledger = was.get("lineage") == "" and ledger.serial == 0
    if not fresh_ledger and was.get("lineage") != ledger.lineage:
        raise StalePlanError(f"{source} was made for another ledger (lineage {was.get('lineage')})")
    if not fresh_ledger and was.get("serial") != ledger.serial:
        raise StalePlanError(
            f"{source} is stale: the ledger changed since it was made "
            f"(serial {was.get('serial')} → {ledger.serial}); run `reconciler plan` again"
        )
    before = saved.get("fingerprints") or {}
    acting = {a["name"] for a in saved.get("actions", []) if a.get("change")}
    acting |= {a.name for a in plan.changes}
    # a spec that only became unblocked gains a fingerprint: that alone is not a change
    for name in sorted(acting | (set(before) ^ set(plan.fingerprints))):
        if name in acting and before.get(name) != plan.fingerprints.get(name):
            raise StalePlanError(
                f"{source} is stale: the inputs of {name!r} changed since it was made; "
                "run `reconciler plan` again"
            )


def _read_saved(path: str) -> dict[str, Any]:
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read plan {path}: {exc}") from exc
    if not isinstance(saved, dict) or not isinstance(saved.get("actions"), list):
        raise ConfigError(f"{path} is not a plan written by `reconciler plan --out`")
    return saved


def _only_saved(plan: Plan, saved: dict[str, Any]) -> Plan:
    allowed = {(a["name"], a["kind"]) for a in saved.get("actions", []) if a.get("change")}
    kept = tuple(a for a in plan.actions if not a.is_change or (a.name, a.kind.value) in allowed)
    return Plan(kept, plan.fingerprints)


def _confirm(args: argparse.Namespace) -> bool:
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
    from rich.markup import escape

    mark = "[green]✓[/]" if o.ok else ("[yellow]…[/]" if o.pending else "[red]✗[/]")
    out.print(f"{mark} {escape(o.name)}: {o.kind.value}: {escape(scrub(o.message))}")


def cmd_apply(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    for option in ("timeout", "interval", "adopt_grace"):
        if getattr(args, option) < 0:
            raise ConfigError(f"--{option.replace('_', '-')} must not be negative")
    state = _desired(ws)  # before the lock and the ledger: a bad spec touches nothing
    saved = _read_saved(args.plan) if args.plan else None
    out = ws.out()
    with WriterLock(ws.ledger) as lock:
        lock.acquire("apply")
        ledger = Ledger.open(ws.ledger)
        drivers = DriverPool(ws.env)
        try:
            return _apply(ws, args, state, saved, ledger, drivers, out)
        finally:
            drivers.close()
            ledger.close()


def _apply(
    ws: Workspace,
    args: argparse.Namespace,
    state: DesiredState,
    saved: dict[str, Any] | None,
    ledger: Ledger,
    drivers: DriverPool,
    out: Any,
) -> int:
    fresh = refresh(ledger.records(), drivers)
    now = time.time()
    preview = make_plan(
        state.jobs,
        with_observations(ledger.records(), fresh.observed, now),
        now,
        max_cost=args.max_cost,
    )
    if saved is not None:
        _check_saved(saved, ledger, preview, args.plan)
        preview = _only_saved(preview, saved)
    print_plan(preview, out, show_unchanged=False)
    for provider, err in fresh.errors.items():
        out.print(
            f"[yellow]warning:[/] cannot refresh {provider} jobs ({scrub(str(err))}); "
            f"{provider} actions are skipped this time"
        )
    if preview.changes and not _confirm(args):
        out.print("Apply cancelled.")
        return 1
    executor = Executor(
        ledger,
        drivers,
        state.jobs,
        git_commit=ws.commit_of,
        spec_path=ws.spec_path_of,
        adopt_grace=args.adopt_grace,
        on_outcome=lambda o: _outcome_line(out, o),
        broken=fresh.errors,
    )
    # confirmed: record what the providers said, and the policies the specs carry now
    executor.start_parked(ledger.records(), fresh.observed)
    persist_observations(ledger, fresh.observed)
    ledger.sync_policies({j.name: j.spec.policy.on_delete for j in state.jobs})
    plan = make_plan(state.jobs, ledger.records(), now, max_cost=args.max_cost)
    if saved is not None:
        plan = _only_saved(plan, saved)
    if plan.changes:
        out.print()
    outcomes = executor.execute(plan)
    failed = [o for o in outcomes if not o.ok and not o.pending]
    if args.wait:
        return _finish_wait(args, state, ledger, drivers, executor, out, saved is not None, failed)
    done = sum(1 for o in outcomes if o.ok)
    pending = sum(1 for o in outcomes if o.pending)
    summary = f"Apply complete: {done} done, {pending} pending, {len(failed)} failed."
    out.print(("\n" if outcomes else "") + f"[bold]{summary}[/]")
    if any(o.ok or o.pending for o in outcomes) or any(a.kind is Kind.WAIT for a in plan.actions):
        out.print(
            "Jobs run at the provider: follow them with `reconciler status` or `apply --wait`."
        )
    return 1 if failed else 0


def _finish_wait(
    args: argparse.Namespace,
    state: DesiredState,
    ledger: Ledger,
    drivers: DriverPool,
    executor: Executor,
    out: Any,
    saved: bool,
    failed: list[Outcome],
) -> int:
    plan, failed, timed_out = _wait(args, state, ledger, drivers, executor, out, saved, failed)
    out.print()
    if plan.actions and all(a.kind is Kind.NOOP for a in plan.actions):
        out.print(f"[green]All {len(plan.actions)} job(s) succeeded.[/] Reality matches the specs.")
    else:
        print_plan(plan, out)
    if timed_out:
        out.print(
            f"[red]Timed out after {args.timeout:.0f}s;[/] jobs keep running: "
            "see `reconciler status`."
        )
        return 1
    if saved and plan.changes:
        names = ", ".join(f"{a.name} ({a.kind.value})" for a in plan.changes)
        out.print(f"[yellow]Not in the saved plan:[/] {names}; run `reconciler plan` again.")
        return 1
    bad = [a for a in plan.actions if a.kind in (Kind.DEGRADED, Kind.DRIFT)]
    return 1 if failed or bad else 0


def _wait(
    args: argparse.Namespace,
    state: DesiredState,
    ledger: Ledger,
    drivers: DriverPool,
    executor: Executor,
    out: Any,
    saved: bool,
    failed: list[Outcome],
) -> tuple[Plan, list[Outcome], bool]:
    """Reconcile until every job settles, an action fails, or the timeout: ``--wait``.

    With a saved plan nothing new is executed: it waits for the running jobs only.
    """
    from rich.markup import escape

    deadline = time.monotonic() + args.timeout
    before = {a.id: (a.phase, a.progress) for r in ledger.records().values() for a in r.attempts}
    warned: set[str] = set()
    while True:
        plan = make_plan(state.jobs, ledger.records(), time.time(), max_cost=args.max_cost)
        waiting = any(a.kind is Kind.WAIT for a in plan.actions)
        if failed or (not waiting if saved else plan.settled):
            return plan, failed, False
        if time.monotonic() >= deadline:
            return plan, failed, True
        time.sleep(args.interval)
        fresh = refresh(ledger.records(), drivers)
        executor.start_parked(ledger.records(), fresh.observed)
        persist_observations(ledger, fresh.observed)
        for provider, err in fresh.errors.items():
            if str(err) not in warned:  # a provider down while we wait: say so once, go on
                warned.add(str(err))
                out.print(f"[yellow]warning:[/] {provider}: {escape(scrub(str(err)))}")
        for r in ledger.records().values():
            for a in r.attempts:
                was = before.get(a.id)
                if was == (a.phase, a.progress):
                    continue
                before[a.id] = (a.phase, a.progress)
                if was is not None and was[0] is a.phase:  # same phase, new progress
                    out.print(f"  {escape(a.name)}: {a.phase.value}, {escape(a.progress or '')}")
                    continue
                detail = f" ({a.progress})" if a.progress else ""
                if a.phase is Phase.SUCCEEDED and a.fine_tuned_model:
                    detail = f": {a.fine_tuned_model}"
                elif a.error:
                    detail = f": {a.error}"
                start = was[0].value if was else "new"
                out.print(f"  {escape(a.name)}: {start} → {a.phase.value}{escape(detail)}")
        if not saved:
            plan = make_plan(state.jobs, ledger.records(), time.time(), max_cost=args.max_cost)
            executor.broken = dict(fresh.errors)
            outcomes = executor.execute(plan)
            failed += [o for o in outcomes if not o.ok and not o.pending]


# -- status --------------------------------------------------------------------------


def _with_progress(records: dict[str, SpecRecord], drivers: DriverPool) -> dict[str, SpecRecord]:
    """Current progress of each running job: one detailed read each (lists carry none)."""
    import dataclasses

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


def _status_rows(ws: Workspace, offline: bool) -> list[dict[str, Any]]:
    records, _, _ = _read_ledger(ws)
    if not offline and records:
        drivers = DriverPool(ws.env)
        try:
            fresh = refresh(records, drivers)
            for provider, err in fresh.errors.items():
                print(
                    f"warning: cannot refresh {provider} jobs: {scrub(str(err))}", file=sys.stderr
                )
            records = with_observations(records, fresh.observed, time.time())
            records = _with_progress(records, drivers)
        finally:
            drivers.close()
    jobs: list[Any] = []
    if ws.specs.is_dir():
        _, state = _load(ws)
        jobs = state.jobs
        if state.errors:
            print(
                f"warning: {len(state.errors)} spec problem(s); run `reconciler validate`",
                file=sys.stderr,
            )
    plan = make_plan(jobs, records, time.time())
    rows = []
    for action in plan.actions:
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
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    ws = Workspace.from_args(args)
    rows = _status_rows(ws, args.offline)
    if args.json:
        print(dumps({"format_version": FORMAT_VERSION, "jobs": rows}))
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
    return 0


# -- import --------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    """Adopt an existing provider job as the current job of a spec (Terraform's import)."""
    from .errors import ErrorKind, ProviderError
    from .fingerprint import fingerprint, training_inputs
    from .plan import upstream_output
    from .spec import PROVIDERS

    ws = Workspace.from_args(args)
    provider, sep, job_id = args.target.partition(":")
    if not sep or provider not in PROVIDERS or not job_id:
        raise ConfigError(
            f"import takes PROVIDER:JOB_ID with PROVIDER one of {', '.join(PROVIDERS)}, "
            f"e.g. together:ft-0123 (got {args.target!r})"
        )
    state = _desired(ws)
    want = next((j for j in state.jobs if j.name == args.name), None)
    if want is None:
        raise ConfigError(
            f"no spec named {args.name!r} in {ws.specs}: write the spec the job was trained "
            "from, then import it"
        )
    if want.spec.provider != provider:
        raise ConfigError(f"spec {args.name!r} is for {want.spec.provider}, not {provider}")
    out = ws.out()
    with WriterLock(ws.ledger) as lock:
        lock.acquire("import")
        ledger = Ledger.open(ws.ledger)
        drivers = DriverPool(ws.env)
        try:
            records = ledger.records()
            record = records.get(args.name)
            if record is not None and record.current is not None:
                cur = record.current
                raise ConfigError(
                    f"{args.name!r} already tracks {cur.remote_id or cur.tag} "
                    f"({cur.phase.value}); remove or rename the spec first"
                )
            if any(row["remote_id"] == job_id for row in ledger.attempts()):
                raise ConfigError(f"{provider}:{job_id} is already in the ledger")
            try:
                job = drivers.get(provider).get_job(job_id)
            except ProviderError as exc:
                if exc.kind is ErrorKind.NOT_FOUND:
                    raise ConfigError(f"{provider} has no job {job_id}") from exc
                raise
            from_output = None
            if want.spec.from_ is not None:
                from_output = upstream_output(records.get(want.spec.from_.job))
            inputs = training_inputs(
                want.spec, want.training_sha256, want.validation_sha256, from_output
            )
            attempt = record.next_attempt if record is not None else 1
            attempt_id = ledger.insert_intent(
                name=want.name,
                attempt=attempt,
                fingerprint=fingerprint(inputs),
                tag=job.tag or f"import-{job_id}",
                provider=provider,
                inputs=inputs,
                on_delete=want.spec.policy.on_delete,
                spec_path=ws.spec_path_of(want.file),
                git_commit=ws.commit_of(want.file),
            )
            ledger.record_job(attempt_id, job, event="imported")
        finally:
            drivers.close()
            ledger.close()
    out.print(
        f"Imported {provider}:{job_id} ({job.status}) as {want.name}, attempt {attempt}. "
        "The spec is now taken to describe it: check `reconciler plan`.",
        markup=False,
    )
    return 0


# -- watch ---------------------------------------------------------------------------


def cmd_watch(args: argparse.Namespace) -> int:
    from .notify import notifier_from_env
    from .watch import Source, Watcher, run

    ws = Workspace.from_args(args)
    if args.interval <= 0:
        raise ConfigError("--interval must be positive")
    if not ws.specs.is_dir():
        raise ConfigError(
            f"specs folder {ws.specs} does not exist (set --specs or RECONCILER_SPECS)"
        )
    notifier = notifier_from_env(ws.env)
    with WriterLock(ws.ledger) as lock:
        lock.acquire("watch")
        ledger = Ledger.open(ws.ledger)
        drivers = DriverPool(ws.env)
        server = None
        try:
            source = Source(ws.specs, git_ref=args.git_ref)
            watcher = Watcher(
                ledger=ledger,
                drivers=drivers,
                source=source,
                interval=args.interval,
                adopt_grace=args.adopt_grace,
                max_cost=args.max_cost,
                git_commit=source.commit_of,
                spec_path=source.spec_path_of,
            )
            if args.metrics_port is not None:
                server = _observe(watcher, args)
            if notifier is not None:
                watcher.on_finished = _notify_once(ledger, notifier)
            return run(watcher)
        finally:
            if server is not None:
                server.close()
            if notifier is not None:
                notifier.close()
            drivers.close()
            ledger.close()


def _observe(watcher: Any, args: argparse.Namespace) -> Any:
    """Metrics updated after every pass, served on --metrics-port."""
    from .metrics import Metrics, serve_metrics

    metrics = Metrics()

    def on_pass(seconds: float, ok: bool) -> None:
        metrics.pass_finished(seconds, ok)
        counts: dict[tuple[str, str], int] = {}
        for record in watcher.ledger.records().values():
            if record.current is not None:
                key = (record.current.provider, record.current.phase.value)
                counts[key] = counts.get(key, 0) + 1
        metrics.set_jobs(counts)
        metrics.set_provider_calls(watcher.drivers.call_totals())

    watcher.on_pass = on_pass
    try:
        server = serve_metrics(
            metrics, args.metrics_host, args.metrics_port, max_age=max(60.0, 3 * args.interval)
        )
    except OSError as exc:
        raise ConfigError(f"--metrics-port {args.metrics_port}: {exc.strerror or exc}") from exc
    log.info("metrics", url=f"http://{args.metrics_host}:{server.port}/metrics")
    return server


def _notify_once(ledger: Ledger, notifier: Any) -> Any:
    """A webhook message per attempt reaching a terminal phase, never twice (ledger-backed)."""
    from .notify import JobFinished

    def on_finished(attempt: Any) -> None:
        if ledger.has_event(attempt.id, "notified"):
            return
        event = JobFinished(
            name=attempt.name,
            provider=attempt.provider,
            phase=attempt.phase.value,
            remote_id=attempt.remote_id or "",
            fine_tuned_model=attempt.fine_tuned_model,
            error=attempt.error,
            git_commit=attempt.git_commit,
            spec_path=attempt.spec_path,
        )
        if notifier.send(event):
            ledger.record_attempt_event(attempt.id, "notified", f"webhook: {attempt.phase.value}")

    return on_finished


# -- logs ----------------------------------------------------------------------------


def cmd_logs(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    ws = Workspace.from_args(args)
    out = ws.out()
    if args.ledger_events:
        if not ws.ledger.exists():
            raise ConfigError(f"no ledger at {ws.ledger}")
        ledger = Ledger.open(ws.ledger, readonly=True)
        try:
            events = ledger.events(args.name, limit=1000)
        finally:
            ledger.close()
        if not events:
            raise ConfigError(f"no ledger events for {args.name!r}")
        for e in events:
            ts = datetime.fromtimestamp(e["ts"], UTC).isoformat(timespec="seconds")
            out.print(f"{ts}  {e['kind']:<14} {e['message']}", markup=False)
        return 0
    records, _, _ = _read_ledger(ws)
    record = records.get(args.name)
    cur = record.current if record else None
    if cur is None:
        raise ConfigError(f"no job for {args.name!r} in the ledger {ws.ledger}")
    if cur.remote_id is None:
        raise ConfigError(f"{args.name!r} has no provider job yet (intent {cur.tag})")
    drivers = DriverPool(ws.env)
    try:
        driver = drivers.get(cur.provider)
        seen: set[tuple[float | None, str]] = set()

        def show_new() -> None:
            for ev in driver.job_events(cur.remote_id):  # type: ignore[arg-type]
                if (ev.created_at, ev.message) in seen:
                    continue
                seen.add((ev.created_at, ev.message))
                ts = (
                    datetime.fromtimestamp(ev.created_at, UTC).isoformat(timespec="seconds")
                    if ev.created_at
                    else "-"
                )
                out.print(f"{ts}  {ev.level:<7} {ev.message}", markup=False)

        show_new()
        if not args.follow:
            if not seen:
                out.print(f"{cur.remote_id}: no events yet", markup=False)
            return 0
        while True:
            job = driver.get_job(cur.remote_id)
            if job.phase.terminal:
                show_new()  # the last lines, written as the job ended
                out.print(f"{cur.remote_id}: {job.status}", markup=False)
                return 0
            time.sleep(args.interval)
            show_new()
    finally:
        drivers.close()
