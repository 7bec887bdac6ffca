"""``status`` for people: a table that fits the terminal, and one spec in detail.

On a terminal the table fits its width: the columns that matter least (commit, provider,
phase) go first, then long cells are cut with an ellipsis. Off a terminal (a pipe, a CI
log) nothing is cut or dropped: every value stays whole for grep. Colour follows the
console (never with ``NO_COLOR`` or ``--no-color``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Style = Callable[[str, str], str]

SYNC_COLOURS = {"Synced": "green", "OutOfSync": "yellow"}
HEALTH_COLOURS = {
    "Healthy": "green",
    "Progressing": "cyan",
    "Suspended": "dim",
    "Degraded": "red",
    "Missing": "yellow",
    "Unknown": "magenta",
}
DETAIL_MIN = 14  # the last column never gets narrower than this on a terminal


@dataclass(frozen=True)
class Column:
    title: str
    key: str
    drop: int  # 0 never dropped; higher numbers are dropped first when space runs out
    cap: int  # widest the column gets on a terminal (0: no cap)


COLUMNS = (
    Column("NAME", "name", 0, 32),
    Column("SYNC", "sync", 0, 0),
    Column("HEALTH", "health", 0, 0),
    Column("PHASE", "phase", 2, 0),
    Column("PROVIDER", "provider", 3, 0),
    Column("JOB", "remote_id", 1, 20),
    Column("COMMIT", "commit", 4, 0),
    Column("DETAIL", "detail", 0, 0),
)


def short_commit(commit: str | None) -> str:
    """``abc1234`` for a clean commit; the ``-dirty`` mark, when recorded, is kept."""
    if not commit:
        return "-"
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:7] + ("-dirty" if dirty else "")


def detail(row: Mapping[str, Any]) -> str:
    """What a person wants to read about a spec, in one cell."""
    if row["error"]:
        text = str(row["error"])
    elif row["fine_tuned_model"]:
        text = str(row["fine_tuned_model"])
    elif row["progress"]:
        text = str(row["progress"])
    else:
        text = ""
    if row["sync"] != "Synced":
        todo = f"{row['next_action']}: {row['reason']}"
        text = f"{text} → {todo}" if text and row["error"] is None else (text or todo)
    return " ".join(text.split())


def cells(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "name": str(row["name"]),
        "sync": str(row["sync"]),
        "health": str(row["health"]),
        "phase": str(row["phase"]),
        "provider": str(row["provider"]),
        "remote_id": str(row["remote_id"] or "-"),
        "commit": short_commit(row["git_commit"]),
        "detail": detail(row),
    }


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def layout(rows: Sequence[Mapping[str, str]], width: int | None) -> list[tuple[Column, int]]:
    """The columns shown and their widths, for a terminal ``width`` (None: unlimited).
    Everything whole when it fits; else long ids are capped, then the columns that matter
    least are dropped, and the last column takes what is left."""

    def natural(col: Column, capped: bool) -> int:
        widest = max([len(col.title)] + [len(r[col.key]) for r in rows])
        return min(widest, col.cap) if capped and col.cap else widest

    shown = list(COLUMNS)

    def fixed(capped: bool) -> int:
        return sum(natural(c, capped) + 2 for c in shown if c.key != "detail")

    if width is None:
        return [(c, natural(c, False)) for c in shown]
    capped = fixed(False) + natural(COLUMNS[-1], False) > width
    while capped and fixed(True) + DETAIL_MIN > width and any(c.drop for c in shown):
        shown.remove(max((c for c in shown if c.drop), key=lambda c: c.drop))
    rest = max(width - fixed(capped), DETAIL_MIN)
    return [(c, rest if c.key == "detail" else natural(c, capped)) for c in shown]


def table_lines(rows: Sequence[Mapping[str, Any]], style: Style, width: int | None) -> list[str]:
    """The status table, one string per line; ``width`` None off a terminal."""
    data = [cells(r) for r in rows]
    columns = layout(data, width)
    head = "  ".join(f"{c.title:<{w}}" for c, w in columns).rstrip()
    lines = [style(head, "bold")]
    for r in data:
        parts = []
        for i, (c, w) in enumerate(columns):
            text = _cut(r[c.key], w) if width is not None else r[c.key]
            pad = "" if i == len(columns) - 1 else " " * (w - len(text))
            colour = {"sync": SYNC_COLOURS, "health": HEALTH_COLOURS}.get(c.key, {}).get(text)
            parts.append((style(text, colour) if colour else text) + pad)
        lines.append("  ".join(parts).rstrip())
    return lines


def summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """``5 specs: 3 Synced, 2 OutOfSync; 2 Healthy, 1 Progressing, 1 Degraded, 1 Missing``."""

    def count(key: str) -> str:
        seen: dict[str, int] = {}
        for r in rows:
            seen[str(r[key])] = seen.get(str(r[key]), 0) + 1
        return ", ".join(f"{n} {k}" for k, n in sorted(seen.items(), key=lambda kv: -kv[1]))

    noun = "spec" if len(rows) == 1 else "specs"
    return f"{len(rows)} {noun}: {count('sync')}; {count('health')}"


def detail_lines(
    row: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]], style: Style
) -> list[str]:
    """One spec in full (``argocd app get``): where it came from, how it is, what is next."""
    sync, health = str(row["sync"]), str(row["health"])
    where = row["spec_path"] or "-"
    if row["git_commit"]:
        where = f"{where} @ {row['git_commit']}"
    fields: list[tuple[str, str]] = [
        ("Name", str(row["name"])),
        ("Provider", str(row["provider"])),
        ("Spec", str(where)),
        ("Sync", style(sync, SYNC_COLOURS.get(sync, ""))),
        ("Health", style(health, HEALTH_COLOURS.get(health, ""))),
        ("Phase", _phase(row)),
        ("Job", str(row["remote_id"] or "-")),
        ("Attempt", str(row["attempt"] or "-")),
        ("Tag", str(row.get("tag") or "-")),
    ]
    optional = [
        ("Progress", row["progress"]),
        ("Model", row["fine_tuned_model"]),
        ("Error", row["error"]),
        ("Estimate", row.get("estimate")),
    ]
    fields += [(k, str(v)) for k, v in optional if v]
    fields.append(("Next", f"{row['next_action']}: {row['reason']}"))
    width = max(len(k) for k, _ in fields) + 1
    lines = [f"{style((k + ':').ljust(width), 'bold')} {v}" for k, v in fields]
    if attempts:
        job = max(len("JOB / TAG"), *(len(str(a["job"])) for a in attempts))
        head = f"{'ATTEMPT':<7}  {'PHASE':<10}  {'JOB / TAG':<{job}}  CREATED"
        lines += ["", style(head, "bold")]
        for a in attempts:
            lines.append(
                f"{a['attempt']:<7}  {a['phase']:<10}  {a['job']:<{job}}  {a['created']}"
                + (f"  {a['note']}" if a["note"] else "")
            )
    return lines


def _phase(row: Mapping[str, Any]) -> str:
    status = row["provider_status"]
    if status and status != row["phase"]:
        return f"{row['phase']} (provider: {status})"
    return str(row["phase"])
