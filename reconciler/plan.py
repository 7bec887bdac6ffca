"""The planner: a pure function from (desired specs, ledger view, now) to a ``Plan``.

Every cell of DESIGN §3 is one branch of ``_plan_one``. The planner never touches
HTTP, SQLite, the clock or the filesystem; what it needs arrives as values.
Actions come out sorted by spec name, each with a one-line reason.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .fingerprint import FieldChange, diff, fingerprint, training_inputs
from .model import AttemptView, DesiredJob, Phase, SpecRecord
from .moves import moved_records, moves
from .providers import CATALOG
from .retry import attempt_retry_delay
from .tags import DEFAULT_NAMESPACE, tag_for


class Kind(enum.StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    RETRY = "retry"
    ADOPT = "adopt"
    CANCEL = "cancel"
    FORGET = "forget"
    WAIT = "wait"
    NOOP = "no-op"
    BLOCKED = "blocked"
    SUSPENDED = "suspended"
    DEGRADED = "degraded"
    DRIFT = "drift"
    PAUSE = "pause"
    RESUME = "resume"


CHANGES = frozenset(
    {
        Kind.CREATE,
        Kind.REPLACE,
        Kind.RETRY,
        Kind.ADOPT,
        Kind.CANCEL,
        Kind.FORGET,
        Kind.PAUSE,
        Kind.RESUME,
    }
)
CREATES = frozenset({Kind.CREATE, Kind.REPLACE, Kind.RETRY})


@dataclass(frozen=True)
class Action:
    kind: Kind
    name: str
    provider: str
    reason: str
    changes: tuple[FieldChange, ...] = ()
    fingerprint: str | None = None  # the desired fingerprint, for actions that create
    attempt: int | None = None  # the attempt number a create would use
    tag: str | None = None
    then: Kind | None = None  # for ADOPT: what follows once the intent is resolved
    current: AttemptView | None = None
    from_output: str | None = None
    blocked_on: str | None = None
    estimated_cost_usd: float | None = None
    estimate_basis: str | None = None
    refused: str | None = None  # why apply will not do this (a budget), when it will not
    moved_from: str | None = None  # a rename: the old name whose job this spec keeps
    timed: bool = False  # decided by the clock (a retry's due time): never replayed

    @property
    def is_change(self) -> bool:
        return self.kind in CHANGES or self.moved_from is not None


@dataclass(frozen=True)
class Plan:
    """The actions that would make reality match the specs, and what they were planned
    against: the ledger's ``lineage`` and ``serial`` (a saved plan is stale once they move)."""

    actions: tuple[Action, ...]
    fingerprints: Mapping[str, str | None] = field(default_factory=dict)
    lineage: str = ""
    serial: int = 0

    def only(self, keep: Iterable[Action]) -> Plan:
        """The same plan, on the same basis, with only the actions in ``keep``."""
        return replace(self, actions=tuple(keep))

    @property
    def timeless(self) -> bool:
        """No action was decided by the clock: the same inputs plan the same, later too."""
        return not any(a.timed for a in self.actions)

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.is_change]

    def counts(self) -> dict[Kind, int]:
        out: dict[Kind, int] = {}
        for a in self.actions:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out

    @property
    def settled(self) -> bool:
        """Nothing left to do or wait for: every job is done, degraded or left alone."""
        by_name = {a.name: a for a in self.actions}

        def pending(a: Action, seen: frozenset[str]) -> bool:
            if a.is_change or a.kind is Kind.WAIT:
                return True
            if a.kind is Kind.BLOCKED and a.blocked_on and a.blocked_on not in seen:
                up = by_name.get(a.blocked_on)
                return up is not None and pending(up, seen | {a.name})
            return False

        return not any(pending(a, frozenset()) for a in self.actions)

    def action(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)


def make_plan(
    desired: Iterable[DesiredJob],
    records: Mapping[str, SpecRecord],
    now: float,
    *,
    max_cost: float | None = None,
    lineage: str = "",
    serial: int = 0,
    namespace: str = DEFAULT_NAMESPACE,
    force: frozenset[str] = frozenset(),
) -> Plan:
    """Compare desired state with the ledger view; return what would make them match.

    ``max_cost`` caps the estimated new spend of the whole plan: creates are admitted in
    name order until the next one would pass it; the rest are marked refused. ``force``:
    names whose finished or running job is replaced anyway (``--replace``). A spec naming
    an old name in ``previous_names`` takes that name's job over (``moved_from``).
    """
    wanted = {d.name: d for d in desired}
    moved = moves(wanted, records)
    records = moved_records(records, moved) if moved else records
    actions: list[Action] = []
    fingerprints: dict[str, str | None] = {}
    spent = 0.0
    for name in sorted(set(wanted) | {n for n, r in records.items() if r.current}):
        record = records.get(name) or SpecRecord(name, (), 1)
        want = wanted.get(name)
        action = _plan_one(want, record, records, now, namespace, name in force)
        if name in moved:
            action = replace(action, moved_from=moved[name])
        if want is not None and action.kind in CREATES:
            action, spent = _budget(action, want, max_cost, spent)
        fingerprints[name] = action.fingerprint if name in wanted else None
        actions.append(action)
    return Plan(tuple(actions), fingerprints, lineage, serial)


def new_spend(plan: Plan) -> float | None:
    """What the creates apply would make are estimated to cost (refused ones excluded)."""
    costs = [
        a.estimated_cost_usd
        for a in plan.actions
        if a.kind in (Kind.CREATE, Kind.RETRY, Kind.REPLACE) and not a.refused
    ]
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


def usd(value: float) -> str:
    """Dollars with the precision the amount needs: ``$12.50``, ``$0.0042``, ``$0.00``."""
    import math

    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(abs(value))))  # two significant digits
    text = f"{value:.{decimals}f}"
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents[:2] + cents[2:].rstrip('0')}"


def _budget(
    action: Action, want: DesiredJob, max_cost: float | None, spent: float
) -> tuple[Action, float]:
    """Mark a create whose estimate breaks the spec's budget or the plan's cap."""
    cost = want.estimated_cost_usd
    limit = want.spec.policy.budget_usd
    refused = None
    if limit is not None and cost is None:
        refused = "no cost estimate for this model, and policy.budget_usd is set"
    elif limit is not None and cost is not None and cost > limit:
        refused = f"estimate {usd(cost)} exceeds policy.budget_usd {usd(limit)}"
    elif max_cost is not None and cost is None:
        refused = "no cost estimate for this model, and --max-cost is set"
    elif max_cost is not None and cost is not None and spent + cost > max_cost:
        refused = (
            f"estimate {usd(cost)} would take new spend to {usd(spent + cost)}, "
            f"over --max-cost {usd(max_cost)}"
        )
    if refused is None:
        spent += cost or 0.0
        if action.refused is None and action.estimate_basis == want.estimate_basis:
            return action, spent  # nothing to change (most actions: no copy)
    return replace(action, refused=refused, estimate_basis=want.estimate_basis), spent


def upstream_output(record: SpecRecord | None) -> str | None:
    """What a downstream ``from`` starts from: the upstream's succeeded result."""
    cur = record.current if record else None
    if cur is None or cur.phase is not Phase.SUCCEEDED:
        return None
    return cur.fine_tuned_model or cur.remote_id


def _plan_one(
    want: DesiredJob | None,
    record: SpecRecord,
    records: Mapping[str, SpecRecord],
    now: float,
    namespace: str,
    force: bool = False,
) -> Action:
    cur = record.current
    if want is None:
        assert cur is not None
        return _plan_removed(record.name, cur)

    spec = want.spec
    base: dict[str, Any] = {"name": want.name, "provider": spec.provider, "current": cur}
    if spec.suspend:
        if cur is not None and cur.phase is Phase.PENDING:
            # even a suspended spec must not leave an interrupted create unresolved
            return Action(
                Kind.ADOPT,
                reason=f"spec suspended; resolve the interrupted create of attempt "
                f"{cur.attempt} (tag {cur.tag}) without creating anything",
                tag=cur.tag,
                **base,
            )
        if (
            cur is not None
            and cur.phase.active
            and cur.phase is not Phase.CANCELLING
            and CATALOG[spec.provider].capabilities.pausable
            and not cur.paused
        ):
            return Action(
                Kind.PAUSE,
                reason=f"spec.suspend is true: pause the {cur.phase.value} job "
                f"({spec.provider} can resume it later)",
                **base,
            )
        paused = " (paused)" if cur is not None and cur.paused else ""
        return Action(Kind.SUSPENDED, reason=f"spec.suspend is true: left alone{paused}", **base)

    from_output = None
    if spec.from_ is not None:
        upstream = records.get(spec.from_.job)
        from_output = upstream_output(upstream)
        if from_output is None:
            up = upstream.current if upstream else None
            state = up.phase.value if up else "not created yet"
            if cur is not None and cur.phase is Phase.PENDING:
                return Action(
                    Kind.ADOPT,
                    reason=f"resolve the interrupted create of attempt {cur.attempt} "
                    f"(tag {cur.tag}); then wait for from.job {spec.from_.job}",
                    tag=cur.tag,
                    blocked_on=spec.from_.job,
                    **base,
                )
            return Action(
                Kind.BLOCKED,
                reason=f"waiting for from.job {spec.from_.job} to succeed ({state})",
                blocked_on=spec.from_.job,
                **base,
            )

    inputs = training_inputs(spec, want.training_sha256, want.validation_sha256, from_output)
    fp = fingerprint(inputs)
    nxt = record.next_attempt
    create: dict[str, Any] = {
        "fingerprint": fp,
        "attempt": nxt,
        "tag": tag_for(namespace, want.name, fp),
        "from_output": from_output,
        "estimated_cost_usd": want.estimated_cost_usd,
        "estimate_basis": want.estimate_basis,
        **base,
    }

    if cur is None:
        why = "new spec" if not record.attempts and nxt == 1 else "no live job for this spec"
        return Action(Kind.CREATE, reason=why, **create)

    changes = diff(cur.inputs, inputs) if cur.fingerprint != fp else ()
    if cur.fingerprint != fp and not changes:
        changes = (FieldChange("(inputs)", cur.fingerprint[:12], fp[:12]),)
    if cur.phase is Phase.PENDING:
        if not changes:
            return Action(
                Kind.ADOPT,
                reason=f"resolve the interrupted create of attempt {cur.attempt} (tag {cur.tag}): "
                "adopt the provider's job if it has one, else create it",
                then=Kind.CREATE,
                fingerprint=fp,
                attempt=cur.attempt,
                tag=cur.tag,
                from_output=from_output,
                estimated_cost_usd=want.estimated_cost_usd,
                estimate_basis=want.estimate_basis,
                **base,
            )
        return Action(
            Kind.ADOPT,
            reason=f"resolve the interrupted create of attempt {cur.attempt} (tag {cur.tag}), "
            f"then replace it: {_fields(changes)}",
            then=Kind.REPLACE,
            changes=changes,
            **create,
        )

    if changes or force:
        what = "cancel the running job, create" if cur.phase.active else "create"
        why = f"{_fields(changes)} changed" if changes else f"--replace asked (job {cur.phase})"
        return Action(
            Kind.REPLACE, reason=f"{why}: {what} attempt {nxt}", changes=changes, **create
        )

    if cur.phase.active and cur.paused:
        return Action(
            Kind.RESUME,
            reason="spec.suspend is no longer true: resume the paused job",
            fingerprint=fp,
            **base,
        )

    if cur.phase.active:
        progress = f", {cur.progress}" if cur.progress else ""
        return Action(Kind.WAIT, reason=f"{cur.phase.value}{progress}", fingerprint=fp, **base)

    if cur.phase is Phase.SUCCEEDED:
        model = f": {cur.fine_tuned_model}" if cur.fine_tuned_model else ""
        return Action(Kind.NOOP, reason=f"succeeded{model}", fingerprint=fp, **base)

    if cur.phase is Phase.FAILED:
        failed = sum(1 for a in record.attempts if a.fingerprint == fp and a.phase is Phase.FAILED)
        limit = spec.policy.max_attempts
        error = cur.error or "failed"
        if not cur.error_retryable:
            return Action(
                Kind.DEGRADED, reason=f"failed, not retryable: {error}", fingerprint=fp, **base
            )
        if failed >= limit:
            return Action(
                Kind.DEGRADED,
                reason=f"failed {failed} of policy.max_attempts={limit}: {error}",
                fingerprint=fp,
                **base,
            )
        due = (cur.finished_at or cur.created_at) + attempt_retry_delay(failed)
        if now < due:
            return Action(
                Kind.WAIT,
                reason=f"retry {failed + 1} of {limit} in {int(due - now) + 1}s after: {error}",
                fingerprint=fp,
                timed=True,
                **base,
            )
        return Action(
            Kind.RETRY,
            reason=f"attempt {cur.attempt} failed with a retryable cause ({error}): "
            f"try {failed + 1} of {limit}",
            timed=True,
            **create,
        )

    if cur.phase is Phase.CANCELLED:
        if cur.cancel_requested:
            return Action(Kind.CREATE, reason="the last job was cancelled by reconciler", **create)
        if spec.policy.self_heal:
            return Action(
                Kind.CREATE,
                reason="cancelled outside reconciler; policy.self_heal re-creates it",
                **create,
            )
        return Action(
            Kind.DRIFT,
            reason="cancelled outside reconciler (policy.self_heal: true would re-create it)",
            fingerprint=fp,
            **base,
        )
    raise AssertionError(f"unhandled phase {cur.phase}")  # pragma: no cover


def _plan_removed(name: str, cur: AttemptView) -> Action:
    base: dict[str, Any] = {"name": name, "provider": cur.provider, "current": cur}
    orphan = cur.on_delete == "orphan"
    if cur.phase is Phase.PENDING:
        then = Kind.FORGET if orphan else Kind.CANCEL
        return Action(
            Kind.ADOPT,
            reason=f"spec removed; resolve the interrupted create (tag {cur.tag}), "
            f"then {then.value}",
            then=then,
            tag=cur.tag,
            **base,
        )
    if cur.phase.active:
        if orphan:
            return Action(
                Kind.FORGET,
                reason="spec removed; policy.on_delete: orphan leaves the job running",
                **base,
            )
        if cur.phase is Phase.CANCELLING:
            return Action(Kind.WAIT, reason="spec removed; cancellation in progress", **base)
        return Action(Kind.CANCEL, reason=f"spec removed; the job is {cur.phase.value}", **base)
    kept = f", model {cur.fine_tuned_model} is kept" if cur.fine_tuned_model else ""
    return Action(Kind.FORGET, reason=f"spec removed; job {cur.phase.value}{kept}", **base)


def _fields(changes: tuple[FieldChange, ...]) -> str:
    names = [c.path for c in changes]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
