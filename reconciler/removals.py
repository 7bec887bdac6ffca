"""Removals: the actions that cancel or forget a job because its spec is gone, and the
guard against a plan that removes too much to run unattended. Pure module."""

from __future__ import annotations

from .plan import Action, Kind, Plan

REMOVALS = frozenset({Kind.CANCEL, Kind.FORGET})
MASS_REMOVAL_SHARE = 0.5  # a plan removing more than this share of the tracked jobs,
MASS_REMOVAL_MIN = 3  # and at least this many, needs --allow-mass-removal


def removals(plan: Plan) -> list[Action]:
    """The actions that cancel or forget a job because its spec is gone."""
    return [
        a
        for a in plan.actions
        if a.kind in REMOVALS or (a.kind is Kind.ADOPT and a.then in REMOVALS)
        if a.fingerprint is None  # a removed spec has no desired fingerprint
    ]


def mass_removal(plan: Plan, tracked: int, desired: int) -> str | None:
    """Why a plan removes too much to run unattended (Argo CD's prune protection): every
    tracked job while no spec is left (an empty or mistyped specs folder), or more than
    half of them and at least three; None when it does not."""
    gone = len(removals(plan))
    if not gone or tracked == 0:
        return None
    if desired == 0:
        return f"no spec is left: the plan would cancel or forget all {tracked} tracked job(s)"
    if gone >= MASS_REMOVAL_MIN and gone > MASS_REMOVAL_SHARE * tracked:
        return f"the plan would cancel or forget {gone} of {tracked} tracked jobs"
    return None
