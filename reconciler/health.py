"""Health and sync of each spec, reported apart (Argo CD's two columns).

*Sync* says whether reality is what the spec asks for: ``Synced`` when the spec's
current job was made from the spec as it is now and nothing is left for ``apply`` to do
or to wait for, ``OutOfSync`` otherwise. *Health* says how that job is doing:
``Healthy`` (succeeded), ``Progressing`` (queued, validating, running, or an interrupted
create being resolved), ``Suspended`` (``spec.suspend``), ``Degraded`` (failed),
``Missing`` (no job makes the model: none yet, or cancelled) and ``Unknown`` (a status
reconciler does not know, or a job the provider no longer finds). A job can be Synced
and Degraded at once: the spec was applied and its job failed for good.

Pure: computed from a plan's actions, like the plan itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .model import Phase
from .plan import Action, Kind


class Health(enum.StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    SUSPENDED = "Suspended"
    DEGRADED = "Degraded"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


class Sync(enum.StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"


# the actions that leave a spec in sync: nothing to do, or only waiting on its own job
_IN_SYNC = frozenset({Kind.NOOP, Kind.DEGRADED, Kind.SUSPENDED})


def health(action: Action) -> Health:
    cur = action.current
    if action.kind is Kind.SUSPENDED or (cur is not None and cur.paused):
        return Health.SUSPENDED
    if cur is None:
        return Health.MISSING
    if cur.phase is Phase.PENDING:
        return Health.PROGRESSING
    if cur.phase is Phase.UNKNOWN or cur.misses:
        return Health.UNKNOWN
    if cur.phase.active:
        return Health.PROGRESSING
    if cur.phase is Phase.SUCCEEDED:
        return Health.HEALTHY
    if cur.phase is Phase.FAILED:
        return Health.DEGRADED
    return Health.MISSING  # cancelled: no job is making the model


def sync(action: Action) -> Sync:
    if action.moved_from is not None:
        return Sync.OUT_OF_SYNC  # the ledger still files the job under the old name
    if action.kind in _IN_SYNC:
        return Sync.SYNCED
    cur = action.current
    # the spec's own job is running (a removed spec's job has no desired fingerprint)
    if action.kind is Kind.WAIT and action.fingerprint and cur is not None and cur.phase.active:
        return Sync.SYNCED
    return Sync.OUT_OF_SYNC


@dataclass(frozen=True)
class Verdict:
    """What a whole plan says about reality, for the summary line and the exit code."""

    changes: int  # actions apply would take
    drifted: tuple[str, ...]  # out of sync, and apply will not fix it (cancelled outside)
    degraded: tuple[str, ...]  # failed for good (or waiting out a retry after a failure)

    @property
    def matches(self) -> bool:
        return not (self.changes or self.drifted or self.degraded)


def verdict(actions: Iterable[Action]) -> Verdict:
    changes = 0
    drifted: list[str] = []
    degraded: list[str] = []
    for a in actions:
        if a.is_change:
            changes += 1
        elif a.kind is Kind.DRIFT:
            drifted.append(a.name)
        elif health(a) is Health.DEGRADED:
            degraded.append(a.name)
    return Verdict(changes, tuple(drifted), tuple(degraded))


# `plan --detailed-exitcode`
EXIT_NO_CHANGES = 0
EXIT_CHANGES = 2
EXIT_ATTENTION = 3  # nothing for apply to do, but drifted or degraded jobs need a person


def detailed_exit(v: Verdict) -> int:
    if v.changes:
        return EXIT_CHANGES
    if v.drifted or v.degraded:
        return EXIT_ATTENTION
    return EXIT_NO_CHANGES


def attention_line(v: Verdict) -> str | None:
    """The summary's warning when nothing is to be done but reality does not match."""
    parts = []
    if v.drifted:
        parts.append(
            f"{len(v.drifted)} drifted ({', '.join(v.drifted[:3])}"
            f"{', …' if len(v.drifted) > 3 else ''})"
        )
    if v.degraded:
        parts.append(
            f"{len(v.degraded)} degraded ({', '.join(v.degraded[:3])}"
            f"{', …' if len(v.degraded) > 3 else ''})"
        )
    if not parts:
        return None
    return "Reality does not match the specs: " + " and ".join(parts) + "."
