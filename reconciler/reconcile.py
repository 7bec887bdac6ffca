"""The reconcile core: observe → plan → execute, one pass for every trigger.

``apply``, ``apply --wait``, ``watch`` and ``import`` all go through ``Reconciler``;
only the trigger differs (as controller-runtime's ``Reconciler`` is called alike by
events, timers and requeues). A pass reads the ledger view once; the plan it shows,
confirms or was handed (a saved plan) is the object it executes. ``plan`` and
``status`` use the same ``observe`` and ``plan_for`` without writing anything.
Time and sleep arrive as arguments, so the loops are tested without a wall clock.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .apply import DEFAULT_ADOPT_GRACE, Executor, Outcome
from .clock import steady_sleep
from .errors import ConfigError, ErrorKind, ProviderError, ReconcilerError
from .fingerprint import fingerprint, training_inputs
from .ledger import Ledger
from .model import AttemptView, DesiredJob, LedgerView, RemoteJob, SpecRecord
from .observe import (
    Refresh,
    Sweep,
    classify_unknown,
    persist_observations,
    refresh,
    with_observations,
    with_progress,
)
from .plan import Action, Kind, Plan, make_plan, upstream_output
from .planfile import SavedPlan
from .pricing import repriced
from .providers.pool import DriverPool
from .removals import mass_removal as mass_removal_of
from .removals import removals
from .tags import DEFAULT_NAMESPACE
from .upkeep import cancel_duplicate, start_parked

Clock = Callable[[], float]


class Provenance(Protocol):
    """Where a spec file comes from in git (``source.SpecSource``)."""

    def commit_of(self, spec_file: str) -> str | None: ...

    def spec_path_of(self, spec_file: str) -> str: ...


class NoProvenance:
    """Specs outside git: no commit, paths as given."""

    def commit_of(self, spec_file: str) -> str | None:
        return None

    def spec_path_of(self, spec_file: str) -> str:
        return spec_file


@dataclass(frozen=True)
class Observation:
    """The ledger as read at the start of a pass, and what the providers said of it."""

    view: LedgerView
    records: Mapping[str, SpecRecord]  # the view with the observations applied, in memory
    refresh: Refresh
    now: float

    @property
    def errors(self) -> Mapping[str, ReconcilerError]:
        return self.refresh.errors


def observe(
    view: LedgerView,
    drivers: DriverPool | None,
    now: float,
    *,
    select: Callable[[AttemptView], bool] | None = None,
    sweep: Sweep | None = None,
) -> Observation:
    """Refresh the view's active attempts (none without ``drivers``: offline), sweeping
    the lists for unknown jobs of the namespace when ``sweep`` says so."""
    if drivers is None:
        fresh = Refresh()
    else:
        fresh = refresh(view.records, drivers, select, now=now, sweep=sweep)
    return Observation(view, with_observations(view.records, fresh.observed, now), fresh, now)


def plan_for(
    desired: Sequence[DesiredJob],
    obs: Observation,
    *,
    max_cost: float | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    force: frozenset[str] = frozenset(),
    only: Callable[[str], bool] | None = None,
) -> Plan:
    """The plan for an observation, on its basis (the view's lineage and serial); with
    ``only``, the actions of the names it picks (``--target``, ``--exclude``)."""
    plan = make_plan(
        desired,
        obs.records,
        obs.now,
        max_cost=max_cost,
        lineage=obs.view.lineage,
        serial=obs.view.serial,
        namespace=namespace,
        force=force,
    )
    return plan if only is None else plan.only(a for a in plan.actions if only(a.name))


def hold_removals(plan: Plan, hold: Callable[[str], bool]) -> tuple[Plan, tuple[Action, ...]]:
    """The plan without the removals (cancel, forget, adopt-then-remove) of the names
    ``hold`` picks, and what it holds back."""
    held = tuple(a for a in removals(plan) if hold(a.name))
    return plan.only(a for a in plan.actions if a not in held), held


MassRemoval = Literal["refuse", "hold", "allow"]


@dataclass(frozen=True)
class PassResult:
    """One pass: its plan, what executing it did, and the records as the pass left them
    (the observations applied in memory, and the specs acted on read back: the view is
    read once)."""

    plan: Plan
    observation: Observation
    outcomes: tuple[Outcome, ...] = ()
    records: Mapping[str, SpecRecord] = field(default_factory=dict)
    held: tuple[Action, ...] = ()  # removals held back (broken or missing specs, too many)
    declined: bool = False  # nothing was executed or written: not confirmed, or refused
    refused: str | None = None  # a mass removal: why it was refused (declined) or held

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and not o.pending]

    def finished(self) -> list[AttemptView]:
        """Attempts that reached a terminal phase during this pass."""
        before = {a.id: a.phase for a in self.observation.view.attempts()}
        return [
            a
            for r in self.records.values()
            for a in r.attempts
            if a.phase.terminal and a.id in before and not before[a.id].terminal
        ]


Confirm = Callable[[Plan, Observation], bool]


class Reconciler:
    """Observe, plan and execute against one ledger and the providers' drivers."""

    def __init__(
        self,
        ledger: Ledger,
        drivers: DriverPool,
        *,
        clock: Clock = time.time,
        provenance: Provenance | None = None,
        adopt_grace: float = DEFAULT_ADOPT_GRACE,
        max_cost: float | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        price_online: bool = False,
    ) -> None:
        self._upkeep: list[Outcome] = []
        self.price_online = price_online  # creates priced by their provider, as ``plan`` does
        self.namespace = namespace  # the project's (reconciler.yaml); a daemon updates it
        self.ledger = ledger
        self.drivers = drivers
        self.clock = clock
        self.provenance: Provenance = provenance or NoProvenance()
        self.adopt_grace = adopt_grace
        self.max_cost = max_cost
        self.on_outcome = on_outcome

    def pass_once(
        self,
        desired: Sequence[DesiredJob],
        *,
        confirm: Confirm | None = None,
        saved: SavedPlan | None = None,
        execute: bool = True,
        select: Callable[[AttemptView], bool] | None = None,
        broken: Mapping[str, ReconcilerError] | None = None,
        hold: Callable[[str], bool] = lambda name: False,
        mass_removal: MassRemoval = "refuse",
        stop: Callable[[], bool] | None = None,
        only: Callable[[str], bool] | None = None,
        force: frozenset[str] = frozenset(),
    ) -> PassResult:
        """Observe, plan, confirm (when asked), record what was observed, execute.

        ``confirm`` sees the plan (to show it) and says whether to go on. ``saved``: a
        reviewed plan, executed instead of the fresh one once it is found current.
        ``execute=False`` observes, records and plans, and acts on nothing. ``hold``:
        picks the names whose removal waits (a spec that failed to load, or went missing
        a moment ago). A plan removing all or most tracked jobs is refused (nothing is written, the
        result says why), held, or allowed, by ``mass_removal``. ``only`` picks the names
        acted on (``--target``); ``force`` names the specs given a new attempt anyway.
        """
        self._upkeep = []  # parked jobs started while recording (Mistral)
        sweep = Sweep(self.namespace, self.ledger.known_remote_ids)
        obs = observe(self.ledger.view(), self.drivers, self.clock(), select=select, sweep=sweep)
        executor = Executor(
            self.ledger,
            self.drivers,
            desired,
            git_commit=self.provenance.commit_of,
            spec_path=self.provenance.spec_path_of,
            clock=self.clock,
            adopt_grace=self.adopt_grace,
            on_outcome=self.on_outcome,
            broken={**obs.errors, **(broken or {})},
            namespace=self.namespace,
        )
        if confirm is None:  # unattended: the plan sees parked jobs already started
            obs = self._record(executor, desired, obs)

        def planned(jobs: Sequence[DesiredJob]) -> Plan:
            return plan_for(
                jobs, obs, max_cost=self.max_cost, namespace=self.namespace, force=force, only=only
            )

        plan = planned(desired)
        if self.price_online and (
            priced := repriced(desired, plan, self.ledger.file_row, self.drivers)
        ):
            plan = planned(priced)
        plan, held = hold_removals(plan, hold)
        tracked = sum(1 for r in obs.records.values() if r.current is not None)
        too_much = None
        if mass_removal != "allow":
            too_much = mass_removal_of(plan, tracked, len(desired))
        if too_much is not None and mass_removal == "refuse":
            return PassResult(plan, obs, records=obs.records, declined=True, refused=too_much)
        if too_much is not None:
            plan, more = hold_removals(plan, lambda name: True)
            held += more
        if saved is not None:
            saved.check(plan)
            plan = saved.plan
        if confirm is not None:  # nothing is written, nothing started, before a yes
            if not confirm(plan, obs):
                return PassResult(plan, obs, records=obs.records, held=held, declined=True)
            obs = self._record(executor, desired, obs)
        outcomes = self._upkeep + (executor.execute(plan, stop=stop) if execute else [])
        touched = {o.name for o in outcomes}
        records = {**obs.records, **(self.ledger.records(touched) if touched else {})}
        return PassResult(plan, obs, tuple(outcomes), records, held, refused=too_much)

    def _record(
        self, executor: Executor, desired: Sequence[DesiredJob], obs: Observation
    ) -> Observation:
        """Start (or refuse) parked jobs, write what was observed and the specs' current
        policies; returns the observation as it now stands."""
        observed = dict(obs.refresh.observed)
        for name, ok, message in start_parked(
            self.ledger, self.drivers, executor.desired, obs.records, observed
        ):
            started = Outcome(name, Kind.RESUME, ok, message, label="start")
            self._upkeep.append(started)
            if self.on_outcome:
                self.on_outcome(started)
        persist_observations(self.ledger, observed)
        for attempt_id, why in obs.refresh.missed.items():
            self.ledger.record_miss(attempt_id, why)
        duplicates, _strays = classify_unknown(obs.refresh.unknown, obs.records)
        for provider, job, holder in duplicates:
            cancel_duplicate(self.ledger, self.drivers, provider, job, holder)
        self.ledger.sync_policies({j.name: j.spec.policy.on_delete for j in desired})
        fresh = dataclasses.replace(obs.refresh, observed=observed)
        return Observation(
            obs.view, with_observations(obs.view.records, observed, obs.now), fresh, obs.now
        )

    def refresh_only(self, desired: Sequence[DesiredJob]) -> PassResult:
        """Observe, and save what the providers say (Terraform's refresh-only): progress
        included, nothing created, cancelled, started or adopted."""
        sweep = Sweep(self.namespace, self.ledger.known_remote_ids)
        obs = observe(self.ledger.view(), self.drivers, self.clock(), sweep=sweep)
        observed = with_progress(obs.view.records, obs.refresh.observed, self.drivers)
        persist_observations(self.ledger, observed)
        for attempt_id, why in obs.refresh.missed.items():
            self.ledger.record_miss(attempt_id, why)
        fresh = dataclasses.replace(obs.refresh, observed=observed)
        records = with_observations(obs.view.records, observed, obs.now)
        obs = Observation(obs.view, records, fresh, obs.now)
        return PassResult(plan_for(desired, obs, namespace=self.namespace), obs, records=records)

    def until_settled(
        self,
        desired: Sequence[DesiredJob],
        first: PassResult,
        *,
        timeout: float,
        interval: float,
        sleep: Callable[[float], None] = steady_sleep,
        monotonic: Clock = time.monotonic,
        execute: bool = True,
        on_pass: Callable[[PassResult], None] | None = None,
        only: Callable[[str], bool] | None = None,
    ) -> Settled:
        """Pass after pass until every job settles, an action fails, or ``timeout``.

        ``execute=False`` (a saved plan): nothing new is executed, running jobs are
        waited for.
        """
        deadline = monotonic() + timeout
        result, failed = first, list(first.failed)
        while True:
            plan = result.plan
            waiting = any(a.kind is Kind.WAIT for a in plan.actions)
            if failed or (not waiting if not execute else _settled(result)):
                return Settled(result, failed, timed_out=False)
            if monotonic() >= deadline:
                return Settled(result, failed, timed_out=True)
            sleep(interval)
            result = self.pass_once(desired, execute=execute, only=only)  # --replace: once
            failed += result.failed
            if on_pass is not None:
                on_pass(result)

    def import_job(self, want: DesiredJob, job_id: str) -> tuple[RemoteJob, int]:
        """Adopt an existing provider job as ``want``'s current job (Terraform's import);
        returns the job and the attempt number it was recorded as."""
        provider = want.spec.provider
        upstream = [want.spec.from_.job] if want.spec.from_ is not None else []
        records = self.ledger.records([want.name, *upstream])
        record = records.get(want.name)
        if record is not None and record.current is not None:
            cur = record.current
            raise ConfigError(
                f"{want.name!r} already tracks {cur.remote_id or cur.tag} "
                f"({cur.phase.value}); remove or rename the spec first"
            )
        orphan = self.ledger.orphan_of(provider, job_id)
        if orphan is not None and orphan["spec_name"] != want.name:
            raise ConfigError(
                f"{provider}:{job_id} was {orphan['spec_name']!r}'s job (orphaned): import it "
                f"with --name {orphan['spec_name']}"
            )
        if orphan is None and job_id in self.ledger.known_remote_ids(provider):
            raise ConfigError(f"{provider}:{job_id} is already in the ledger")
        try:
            job = self.drivers.get(provider).get_job(job_id)
        except ProviderError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                raise ConfigError(f"{provider} has no job {job_id}") from exc
            raise
        if orphan is not None:  # the ledger knew it: re-attach that attempt
            self.ledger.restore(int(orphan["id"]), f"imported {provider}:{job_id} again")
            self.ledger.record_job(int(orphan["id"]), job, event="imported")
            return job, int(orphan["attempt"])
        from_output = None
        if want.spec.from_ is not None:
            from_output = upstream_output(records.get(want.spec.from_.job))
        inputs = training_inputs(
            want.spec, want.training_sha256, want.validation_sha256, from_output
        )
        attempt = record.next_attempt if record is not None else 1
        attempt_id = self.ledger.insert_intent(
            name=want.name,
            attempt=attempt,
            fingerprint=fingerprint(inputs),
            tag=job.tag or f"import-{job_id}",
            provider=provider,
            inputs=inputs,
            on_delete=want.spec.policy.on_delete,
            spec_path=self.provenance.spec_path_of(want.file),
            git_commit=self.provenance.commit_of(want.file),
            namespace=self.namespace,
        )
        self.ledger.record_job(attempt_id, job, event="imported")
        return job, attempt


@dataclass(frozen=True)
class Settled:
    """How ``until_settled`` ended: the last pass, every failed action, and a timeout."""

    last: PassResult
    failed: list[Outcome]
    timed_out: bool


def _settled(result: PassResult) -> bool:
    """Nothing left to do or wait for; a pass that acted is looked at once more."""
    return not result.outcomes and result.plan.settled
