"""Human and machine renderings of plans and status.

Human output is in the spirit of ``terraform plan``: one symbol per action, the
reason under it, the field changes old → new, a summary line. Colour only on a TTY
and never with ``NO_COLOR`` (rich honours both). JSON carries ``format_version``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .plan import CHANGES, Action, Kind, Plan

if TYPE_CHECKING:
    from rich.console import Console

FORMAT_VERSION = "1.0"

SYMBOLS: dict[Kind, tuple[str, str]] = {
    Kind.CREATE: ("+", "green"),
    Kind.RETRY: ("+", "green"),
    Kind.REPLACE: ("-/+", "yellow"),
    Kind.CANCEL: ("-", "red"),
    Kind.ADOPT: ("~", "cyan"),
    Kind.FORGET: (".", "magenta"),
    Kind.WAIT: ("=", "blue"),
    Kind.NOOP: (" ", "dim"),
    Kind.BLOCKED: ("…", "yellow"),
    Kind.SUSPENDED: ("‖", "dim"),
    Kind.DEGRADED: ("!", "red"),
    Kind.DRIFT: ("!", "yellow"),
    Kind.PAUSE: ("‖", "cyan"),
    Kind.RESUME: (">", "cyan"),
}

# Terraform-style action lists, so consumers can scan for "delete"
WIRE_ACTIONS: dict[Kind, list[str]] = {
    Kind.CREATE: ["create"],
    Kind.RETRY: ["create"],
    Kind.REPLACE: ["delete", "create"],
    Kind.CANCEL: ["delete"],
    Kind.ADOPT: ["adopt"],
    Kind.FORGET: ["forget"],
    Kind.PAUSE: ["pause"],
    Kind.RESUME: ["resume"],
}


def console(stream: Any = None, no_color: bool = False) -> Console:
    from rich.console import Console

    tty = bool(getattr(stream, "isatty", lambda: False)())
    return Console(
        file=stream,
        no_color=no_color or None,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        # off a terminal (CI logs, pipes) nothing wraps: ids and model names stay whole
        width=None if tty else 240,
    )


def _money(value: float | None) -> str:
    if value is None:
        return ""
    return f"~${value:,.2f}" if value >= 0.01 else "<$0.01"


def _current(action: Action) -> str:
    cur = action.current
    if cur is None:
        return ""
    job = cur.remote_id or f"intent {cur.tag}"
    return f"{job}, attempt {cur.attempt}"


def print_plan(plan: Plan, out: Console, *, show_unchanged: bool = True) -> None:
    from rich.markup import escape

    changes = plan.changes
    others = [a for a in plan.actions if not a.is_change]
    if not plan.actions:
        out.print("No specs and no jobs in the ledger: nothing to do.")
        return
    if changes:
        out.print("reconciler will perform the following actions:\n")
    for action in changes:
        symbol, colour = SYMBOLS[action.kind]
        label = action.kind.value
        if action.kind is Kind.ADOPT and action.then:
            label = f"adopt, then {action.then.value}"
        head = f"[{colour}]{symbol:>3} {label:<9}[/] [bold]{escape(action.name)}[/]"
        detail = [action.provider]
        if cur := _current(action):
            detail.append(cur)
        if action.kind in (Kind.CREATE, Kind.RETRY, Kind.REPLACE) and action.attempt:
            detail.append(f"new attempt {action.attempt}")
        if money := _money(action.estimated_cost_usd):
            detail.append(money)
        out.print(f"{head}  [dim]({escape(', '.join(detail))})[/]")
        out.print(f"      [dim]{escape(action.reason)}[/]")
        if action.refused:
            out.print(f"      [red]refused by budget:[/] {escape(action.refused)}")
        for change in action.changes:
            out.print(f"      [yellow]~[/] {escape(change.render())}  [dim]# forces replacement[/]")
    if show_unchanged and others:
        # one line each: what is left alone, and why (Terraform hides these; a fine-tune
        # user wants to see the jobs still running and the ones that need attention)
        if changes:
            out.print()
        width = max(len(a.name) for a in others)
        for action in others:
            symbol, colour = SYMBOLS[action.kind]
            out.print(
                f"[{colour}]{symbol:>3} {action.kind.value:<9}[/] {escape(action.name):<{width}}  "
                f"[dim]{escape(action.reason)}[/]"
            )
    counts = plan.counts()
    out.print()
    if not changes:
        out.print("[green]No changes.[/] Reality matches the specs.")
    summary = (
        f"Plan: {counts.get(Kind.CREATE, 0) + counts.get(Kind.RETRY, 0)} to create, "
        f"{counts.get(Kind.REPLACE, 0)} to replace, {counts.get(Kind.CANCEL, 0)} to cancel, "
        f"{counts.get(Kind.ADOPT, 0)} to adopt, {counts.get(Kind.FORGET, 0)} to forget."
    )
    if counts.get(Kind.PAUSE) or counts.get(Kind.RESUME):
        summary = summary[:-1] + (
            f", {counts.get(Kind.PAUSE, 0)} to pause, {counts.get(Kind.RESUME, 0)} to resume."
        )
    waiting = [
        f"{counts[k]} {k.value}"
        for k in (Kind.WAIT, Kind.NOOP, Kind.BLOCKED, Kind.SUSPENDED, Kind.DEGRADED, Kind.DRIFT)
        if counts.get(k)
    ]
    if waiting:
        summary += f" Unchanged: {', '.join(waiting)}."
    spend = new_spend(plan)
    if spend is not None:
        summary += f" Estimated new spend: ~${spend:,.2f} (offline estimate)."
    refused = [a for a in plan.actions if a.refused]
    if refused:
        summary += f" {len(refused)} refused by budget."
    out.print(f"[bold]{escape(summary)}[/]")


def new_spend(plan: Plan) -> float | None:
    """What the creates apply would make are estimated to cost (refused ones excluded)."""
    costs = [
        a.estimated_cost_usd
        for a in plan.actions
        if a.kind in (Kind.CREATE, Kind.RETRY, Kind.REPLACE) and not a.refused
    ]
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


def action_json(action: Action) -> dict[str, Any]:
    cur = action.current
    return {
        "name": action.name,
        "kind": action.kind.value,
        "actions": WIRE_ACTIONS.get(action.kind, ["no-op"]),
        "change": action.kind in CHANGES,
        "provider": action.provider,
        "reason": action.reason,
        "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in action.changes],
        "replace_paths": [c.path for c in action.changes],
        "fingerprint": action.fingerprint,
        "attempt": action.attempt,
        "tag": action.tag,
        "then": action.then.value if action.then else None,
        "blocked_on": action.blocked_on,
        "estimated_cost_usd": action.estimated_cost_usd,
        "estimate_basis": action.estimate_basis,
        "refused": action.refused,
        "current": None
        if cur is None
        else {
            "attempt": cur.attempt,
            "remote_id": cur.remote_id,
            "phase": cur.phase.value,
            "provider_status": cur.status,
            "tag": cur.tag,
            "fingerprint": cur.fingerprint,
        },
    }


def plan_json(
    plan: Plan, *, ledger: Mapping[str, Any], specs_root: str, offline: bool
) -> dict[str, Any]:
    counts = plan.counts()
    from . import __version__

    return {
        "format_version": FORMAT_VERSION,
        "reconciler_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "offline": offline,
        "specs_root": specs_root,
        "ledger": dict(ledger),
        "fingerprints": dict(plan.fingerprints),
        "actions": [action_json(a) for a in plan.actions],
        "summary": {
            **{k.value: counts.get(k, 0) for k in Kind},
            "changes": len(plan.changes),
        },
        "estimated_new_spend_usd": new_spend(plan),
    }


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)
