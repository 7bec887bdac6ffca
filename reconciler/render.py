"""Human and machine renderings of plans and status.

Human output is in the spirit of ``terraform plan``: one symbol per action, the
reason under it, the field changes old → new, a summary line. Colour only on a TTY
and never with ``NO_COLOR`` (rich honours both). The JSON form is ``planfile``'s.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .health import attention_line, verdict
from .plan import CHANGES, Action, Kind, Plan, new_spend, usd

if TYPE_CHECKING:
    from rich.console import Console

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


def console(stream: Any = None, no_color: bool = False) -> Console:
    """A rich console for ``stream``: styled only on a terminal, and never with
    ``--no-color`` or ``NO_COLOR`` (no colour, and no bold or dim either)."""
    import os

    from rich.console import Console

    tty = bool(getattr(stream, "isatty", lambda: False)())
    plain = no_color or bool(os.environ.get("NO_COLOR")) or not tty
    return Console(
        file=stream,
        color_system=None if plain else "auto",
        no_color=plain or None,
        force_terminal=False if plain else None,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        # off a terminal (CI logs, pipes) nothing wraps: ids and model names stay whole
        width=None if tty else 240,
    )


def _money(value: float | None) -> str:
    if value is None:
        return ""
    return "~" + usd(value)


def _current(action: Action) -> str:
    cur = action.current
    if cur is None:
        return ""
    job = cur.remote_id or f"intent {cur.tag}"
    return f"{job}, attempt {cur.attempt}"


_ANSI = {
    "green": "32",
    "yellow": "33",
    "red": "31",
    "cyan": "36",
    "magenta": "35",
    "blue": "34",
    "dim": "2",
    "bold": "1",
}


class Styler:
    """ANSI styling when the console has colour (a TTY without NO_COLOR), else plain.

    The plan is written straight to the stream: rich's markup pass costs seconds over
    ten thousand actions, and a plan is plain lines anyway.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or not text:
            return text
        return f"\x1b[{_ANSI[style]}m{text}\x1b[0m"


def plan_lines(plan: Plan, style: Styler, *, show_unchanged: bool = False) -> list[str]:
    """The human plan, one string per line."""
    changes = plan.changes
    others = [a for a in plan.actions if not a.is_change]
    if not plan.actions:
        return ["No specs and no jobs in the ledger: nothing to do."]
    lines: list[str] = []
    if changes:
        lines += ["reconciler will perform the following actions:", ""]
    for action in changes:
        if action.moved_from is not None:
            lines += _moved_lines(action, style)
            if action.kind not in CHANGES:
                continue
        symbol, colour = SYMBOLS[action.kind]
        label = action.kind.value
        if action.kind is Kind.ADOPT and action.then:
            label = f"adopt, then {action.then.value}"
        detail = [action.provider]
        if cur := _current(action):
            detail.append(cur)
        if action.kind in (Kind.CREATE, Kind.RETRY, Kind.REPLACE) and action.attempt:
            detail.append(f"new attempt {action.attempt}")
        if money := _money(action.estimated_cost_usd):
            detail.append(money)
        lines.append(
            f"{style(f'{symbol:>3} {label:<9}', colour)} {style(action.name, 'bold')}  "
            f"{style('(' + ', '.join(detail) + ')', 'dim')}"
        )
        lines.append("      " + style(action.reason, "dim"))
        if action.estimate_basis and action.kind in (Kind.CREATE, Kind.RETRY, Kind.REPLACE):
            lines.append("      " + style(f"cost: {action.estimate_basis}", "dim"))
        if action.refused:
            lines.append(f"      {style('refused by budget:', 'red')} {action.refused}")
        for change in action.changes:
            note = style("# forces replacement", "dim")
            lines.append(f"      {style('~', 'yellow')} {change.render()}  {note}")
    attention = [a for a in others if a.kind in ATTENTION]
    quiet = [a for a in others if a.kind not in ATTENTION]
    # drifted and degraded jobs are always listed: they need a person. The rest (no-op,
    # wait, blocked, suspended) is one line unless --show-unchanged, as in Terraform.
    listed = others if show_unchanged else attention
    if listed:
        if changes:
            lines.append("")
        width = max(len(a.name) for a in listed)
        for action in listed:
            symbol, colour = SYMBOLS[action.kind]
            lines.append(
                f"{style(f'{symbol:>3} {action.kind.value:<9}', colour)} {action.name:<{width}}  "
                f"{style(action.reason, 'dim')}"
            )
    if quiet and not show_unchanged:
        lines += [""] if lines else []
        lines.append(style(f"{_unchanged(quiet)}; --show-unchanged lists them.", "dim"))
    lines.append("")
    v = verdict(plan.actions)
    if not changes:
        if v.matches:
            lines.append(f"{style('No changes.', 'green')} Reality matches the specs.")
        else:
            lines.append(f"{style('No changes to apply.', 'yellow')} {attention_line(v)}")
    elif not v.matches and (line := attention_line(v)):
        lines.append(style(line, "yellow"))
    lines.append(style(summary_line(plan), "bold"))
    return lines


def _moved_lines(action: Action, style: Styler) -> list[str]:
    """``~ moved old → new``: a rename that keeps the job (never a cancel and a create)."""
    detail = [action.provider]
    if cur := _current(action):
        detail.append(cur)
    head = style(f"{'~':>3} {'moved':<9}", "cyan")
    return [
        f"{head} {style(f'{action.moved_from} → {action.name}', 'bold')}  "
        f"{style('(' + ', '.join(detail) + ')', 'dim')}",
        "      " + style("metadata.previous_names: the job is kept under the new name", "dim"),
    ]


ATTENTION = frozenset({Kind.DRIFT, Kind.DEGRADED})


def _unchanged(actions: list[Action]) -> str:
    counts: dict[str, int] = {}
    for a in actions:
        counts[a.kind.value] = counts.get(a.kind.value, 0) + 1
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return f"{len(actions)} unchanged ({parts})"


def summary_line(plan: Plan) -> str:
    # a move that leaves its job as it is counts as a move, not also as unchanged
    counts = plan.only(a for a in plan.actions if not a.moved_from or a.kind in CHANGES).counts()
    summary = (
        f"Plan: {counts.get(Kind.CREATE, 0) + counts.get(Kind.RETRY, 0)} to create, "
        f"{counts.get(Kind.REPLACE, 0)} to replace, {counts.get(Kind.CANCEL, 0)} to cancel, "
        f"{counts.get(Kind.ADOPT, 0)} to adopt, {counts.get(Kind.FORGET, 0)} to forget."
    )
    moved = sum(1 for a in plan.actions if a.moved_from)
    if moved:
        summary = summary[:-1] + f", {moved} to move."
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
        summary += f" Estimated new spend: {_money(spend)}."
    refused = [a for a in plan.actions if a.refused]
    if refused:
        summary += f" {len(refused)} refused by budget."
    return summary


def print_plan(plan: Plan, out: Console, *, show_unchanged: bool = False) -> None:
    style = Styler(out.color_system is not None)
    out.file.write("\n".join(plan_lines(plan, style, show_unchanged=show_unchanged)) + "\n")
    out.file.flush()


# -- markdown, for a pull-request comment ---------------------------------------------

MARKDOWN_MARKER = "<!-- reconciler-plan -->"  # lets CI find and update its own comment
_MD_SPECIAL = frozenset("\\`*_[]<>|~&@!#$")


def md_text(value: object) -> str:
    """User text as inline markdown: one line, constructs and @mentions escaped."""
    text = " ".join(str(value).split())
    return "".join(f"\\{c}" if c in _MD_SPECIAL else c for c in text)


def md_code(value: object, *, in_table: bool = False) -> str:
    """A code span holding ``value`` literally, whatever backticks it contains."""
    text = " ".join(str(value).split()) or " "  # `` would be a bare backtick run, not a span
    fence = "`"
    while fence in text:
        fence += "`"
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    if in_table:  # GFM splits table cells on '|' before it sees code spans
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}"


def _md_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return value[:12] + "…"  # a content hash: the prefix tells them apart
        return value
    return json.dumps(value, sort_keys=True)


def _md_label(action: Action) -> str:
    if action.kind is Kind.ADOPT and action.then:
        return f"adopt, then {action.then.value}"
    return action.kind.value


def plan_markdown(
    plan: Plan, *, title: str = "reconciler plan", offline: bool = False, commit: str | None = None
) -> str:
    """The plan as GitHub-flavoured markdown for a pull-request comment; stable output."""
    changes = plan.changes
    others = [a for a in plan.actions if not a.is_change]
    lines = [MARKDOWN_MARKER, f"### {md_text(title)}", ""]
    where = []
    if commit:
        where.append(f"Specs at commit {md_code(commit[:12] if len(commit) == 40 else commit)}.")
    if offline:
        where.append("Offline: planned from the ledger alone, without asking the providers.")
    if where:
        lines += [" ".join(where), ""]
    if not plan.actions:
        lines += ["**No changes.** No specs and no jobs in the ledger: nothing to do.", ""]
    elif not changes:
        lines += ["**No changes.** Reality matches the specs.", ""]
    lines += [f"**{md_text(summary_line(plan))}**", ""]
    if changes:
        lines += [
            "| | action | name | provider | reason | estimate | budget |",
            "|:-:|---|---|---|---|--:|---|",
        ]
        for a in changes:
            refused = f"**refused:** {md_text(a.refused)}" if a.refused else ""
            cells = [
                md_code(SYMBOLS[a.kind][0], in_table=True),
                md_text(_md_label(a)),
                f"**{md_text(a.name)}**",
                md_text(a.provider),
                md_text(a.reason),
                md_text(_money(a.estimated_cost_usd)),
                refused,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for a in changes:
        if not a.changes:
            continue
        n = len(a.changes)
        fields = "field forces" if n == 1 else "fields force"
        lines += [
            f"<details open><summary><b>{html_text(a.name)}</b>: {n} {fields} a new job</summary>",
            "",
        ]
        lines += [
            f"- {md_code(c.path)}: {md_code(_md_value(c.old))} → {md_code(_md_value(c.new))}"
            for c in a.changes
        ]
        lines += ["", "</details>", ""]
    if others:
        lines += [
            f"<details><summary>Unchanged: {len(others)} "
            f"{'job' if len(others) == 1 else 'jobs'}</summary>",
            "",
            "| | state | name | provider | reason |",
            "|:-:|---|---|---|---|",
        ]
        for a in others:
            cells = [
                md_code(SYMBOLS[a.kind][0], in_table=True),
                md_text(a.kind.value),
                md_text(a.name),
                md_text(a.provider),
                md_text(a.reason),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def html_text(value: object) -> str:
    """Text inside an HTML element (a ``<summary>``): one line, entities escaped."""
    from html import escape

    return escape(" ".join(str(value).split()), quote=False).replace("@", "&#64;")
