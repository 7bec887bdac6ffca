"""The sweep's finds, for people: duplicates (cancelled by the next apply or watch
pass) and strays (jobs of this project the ledger does not know, left alone)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .observe import classify_unknown

if TYPE_CHECKING:
    from .reconcile import Observation


def unknown_jobs(obs: Observation) -> list[dict[str, str | None]]:
    """The sweep's finds, for people: duplicates (cancelled by the next apply or watch
    pass) and strays (jobs of this project the ledger does not know, left alone)."""
    duplicates, strays = classify_unknown(obs.refresh.unknown, obs.records)
    out: list[dict[str, str | None]] = [
        {
            "kind": "duplicate",
            "provider": p,
            "remote_id": j.id,
            "status": j.status,
            "tag": j.tag,
            "of": h.name,
        }
        for p, j, h in duplicates
    ]
    out += [
        {
            "kind": "stray",
            "provider": p,
            "remote_id": j.id,
            "status": j.status,
            "tag": j.tag,
            "of": None,
        }
        for p, j in strays
    ]
    return out


def unknown_lines(found: list[dict[str, str | None]]) -> list[str]:
    """One line each, for plan, apply and status."""
    lines = []
    for u in found:
        job = f"{u['provider']}:{u['remote_id']} ({u['status']}, tag {u['tag']})"
        if u["kind"] == "duplicate":
            lines.append(f"! duplicate {job}: a second job for {u['of']}; apply cancels it")
        else:
            lines.append(
                f"! unknown   {job}: a job of this project the ledger does not know "
                "(`reconciler import` adopts it as a spec's job)"
            )
    return lines
