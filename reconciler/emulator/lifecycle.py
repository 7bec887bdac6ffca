"""A job's life as a pure function of the clock.

A job stores only its *plan* (``life``): the provider's phases with their durations,
and the few things that happened to it (cancel time, pauses, a release from a parked
phase, a planned failure). ``snapshot(life, created_at, now)`` derives the status,
how far training got and when each phase began, so progress survives restarts and a
clock jump moves every job consistently. Times in ``life`` are either absolute
emulated seconds (``*_at``) or *effective* seconds: time the job was not paused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

INF = math.inf


@dataclass(frozen=True)
class JobKind:
    """What differs between providers in the shape of a life."""

    provider: str
    run_status: str  # the training phase
    failed: str  # status of an infrastructure failure (worth retrying)
    failed_permanent: str  # status of a failure caused by the inputs
    permanent_at: str  # input problems surface when this phase would begin
    cancelled: str
    cancelling: str | None = None  # transient status between cancel and cancelled
    cancel_delay: float = 0.0
    paused: str | None = None  # what a paused job reports (None: its phase's status)


@dataclass(frozen=True)
class Snapshot:
    """Where a job is at one instant."""

    status: str
    index: int  # the phase the job is in (or stopped in)
    t: float  # effective seconds of progress, frozen once stopped
    starts: tuple[float, ...]  # effective start of every phase (INF: not scheduled yet)
    terminal: bool
    stopped: str | None  # "cancelled", "failed" or None
    finished_at: float | None  # absolute emulated time it became terminal
    cancel_requested_at: float | None
    paused: bool
    created_at: float
    pauses: tuple[tuple[float, float | None], ...]

    def reached(self, k: int) -> bool:
        return k <= self.index and self.starts[k] <= self.t

    def end(self, k: int) -> float:
        return self.starts[k + 1] if k + 1 < len(self.starts) else INF

    def fraction(self, k: int) -> float:
        """Progress through phase ``k`` in [0, 1]."""
        if not self.reached(k):
            return 0.0
        if self.index > k and self.stopped is None:
            return 1.0
        span = self.end(k) - self.starts[k]
        if span <= 0:
            return 1.0
        if span == INF:
            return 0.0
        return max(0.0, min(1.0, (self.t - self.starts[k]) / span))

    def abs_at(self, t: float) -> float:
        """The absolute emulated time at which effective time ``t`` was (or will be) reached."""
        when = self.created_at + t
        for start, end in self.pauses:
            if start < when:
                when += (INF if end is None else end) - start
        return when


def new_life(phases: list[tuple[str, float]], *, park: int | None = None) -> dict[str, Any]:
    """A fresh plan; the last phase is the terminal success status."""
    return {
        "phases": [[status, float(seconds)] for status, seconds in phases],
        "park": park,
        "released": None,
        "cancel_at": None,
        "cancel_t": None,
        "fail": None,
        "pauses": [],
    }


def _effective(life: dict[str, Any], created_at: float, when: float) -> float:
    paused = 0.0
    for start, end in life["pauses"]:
        if start < when:
            paused += min(when, INF if end is None else end) - start
    return max(0.0, when - created_at - paused)


def _starts(life: dict[str, Any]) -> tuple[float, ...]:
    starts: list[float] = []
    t = 0.0
    for k, (_, seconds) in enumerate(life["phases"]):
        starts.append(t)
        if k == life.get("park"):
            released = life.get("released")
            t = INF if released is None else max(t + seconds, float(released))
        else:
            t += seconds
    return tuple(starts)


def snapshot(
    life: dict[str, Any],
    kind: JobKind,
    created_at: float,
    now: float,
    *,
    stuck: str | None = None,
) -> Snapshot:
    """The job at ``now``; ``stuck`` holds it in that status (a fault, read-time only)."""
    phases = [p[0] for p in life["phases"]]
    starts = _starts(life)
    cancel_at: float | None = life.get("cancel_at")
    cancelled = cancel_at is not None and cancel_at <= now
    if cancelled and life.get("cancel_t") is not None:
        t = float(life["cancel_t"])  # progress frozen where it was when cancel came
    else:
        t = _effective(life, created_at, min(now, cancel_at) if cancel_at is not None else now)
    pauses = tuple((float(s), None if e is None else float(e)) for s, e in life["pauses"])
    paused = bool(pauses) and pauses[-1][1] is None
    base = Snapshot(
        status="",
        index=0,
        t=t,
        starts=starts,
        terminal=False,
        stopped=None,
        finished_at=None,
        cancel_requested_at=cancel_at if cancelled else None,
        paused=paused,
        created_at=created_at,
        pauses=pauses,
    )

    index = max(k for k, s in enumerate(starts) if s <= t)
    last = len(phases) - 1
    if stuck in phases and phases.index(stuck) < index:
        index = phases.index(stuck)
        t = min(t, starts[index + 1] - 1e-6)

    fail = life.get("fail")
    ft = _fail_time(fail, phases, starts)
    if fail is not None and ft <= t:
        return replace(
            base,
            status=fail["status"],
            index=max(k for k, s in enumerate(starts) if s <= ft),
            t=ft,
            terminal=True,
            stopped="failed",
            finished_at=base.abs_at(ft),
            cancel_requested_at=None,
        )

    done = index == last
    snap = replace(
        base,
        status=phases[index],
        index=index,
        t=t,
        terminal=done,
        finished_at=base.abs_at(starts[last]) if done else None,
    )
    if cancelled and not done:
        assert cancel_at is not None
        if kind.cancelling is None or now >= cancel_at + kind.cancel_delay:
            delay = 0.0 if kind.cancelling is None else kind.cancel_delay
            return replace(
                snap,
                status=kind.cancelled,
                terminal=True,
                stopped="cancelled",
                finished_at=cancel_at + delay,
            )
        return replace(snap, status=kind.cancelling)
    if paused and not done and kind.paused is not None:
        return replace(snap, status=kind.paused)
    return snap


def request_cancel(life: dict[str, Any], snap: Snapshot, now: float) -> None:
    """Record a cancel (once): when it came and how far the job had got, so a job held by
    a fault that is later cleared does not jump past its cancel."""
    if life.get("cancel_at") is None:
        life["cancel_at"] = now
        life["cancel_t"] = snap.t


def _fail_time(fail: dict[str, Any] | None, phases: list[str], starts: tuple[float, ...]) -> float:
    """Effective time of a planned failure; INF while its phase is not scheduled (parked)."""
    if fail is None:
        return INF
    k = phases.index(fail["phase"])
    start = starts[k]
    span = (starts[k + 1] if k + 1 < len(starts) else start) - start
    at = start + (0.0 if span == INF else float(fail["progress"]) * span)
    return max(at, float(fail["min_t"])) if at != INF else INF


def plan_failure(
    life: dict[str, Any],
    kind: JobKind,
    *,
    retryable: bool,
    message: str,
    at_progress: float = 0.5,
    not_before: float = 0.0,
) -> None:
    """Schedule a failure: input problems when ``permanent_at`` would begin, others part-way
    through training (``at_progress``); never before effective time ``not_before``."""
    life["fail"] = {
        "phase": kind.run_status if retryable else kind.permanent_at,
        "progress": max(0.0, min(1.0, at_progress)) if retryable else 0.0,
        "min_t": not_before,
        "status": kind.failed if retryable else kind.failed_permanent,
        "message": message,
        "retryable": retryable,
    }
