"""``reconciler watch``: the daemon that keeps reality matching the specs.

One loop: a pass runs when a spec file changes (watchfiles, debounced), when the
watched git ref moves, and on a timer. Each pass refreshes the active jobs that are
due (by phase: terminal jobs never), starts parked jobs, plans and applies. A provider
that fails is backed off (with jitter) while the others carry on; a bad spec is
reported and the rest are still reconciled (with removals held, so a typo never
cancels a job). SIGTERM and SIGINT stop the loop after the action in flight.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .apply import Outcome
from .errors import LedgerError, ReconcilerError
from .ledger import Ledger
from .log import get as get_logger
from .model import AttemptView, Phase
from .providers import CATALOG
from .providers.pool import DriverPool
from .reconcile import PassResult, Reconciler
from .retry import Backoff
from .source import SpecSource
from .validation import DesiredState

log = get_logger("reconciler.watch")

# how often an active job is looked at, as a multiple of --interval
POLL_FACTOR: dict[Phase, float] = {
    Phase.PENDING: 1.0,
    Phase.QUEUED: 1.0,
    Phase.VALIDATING: 1.0,
    Phase.CANCELLING: 1.0,
    Phase.RUNNING: 2.0,
    Phase.UNKNOWN: 2.0,
}
PROVIDER_BACKOFF = Backoff(attempts=1_000_000, base=2.0, factor=2.0, cap=300.0)


@dataclass
class ProviderHealth:
    failures: int = 0
    next_try: float = 0.0
    error: ReconcilerError | None = None


@dataclass
class Watcher:
    """The state of one watch daemon between passes."""

    ledger: Ledger
    drivers: DriverPool
    source: SpecSource
    interval: float
    adopt_grace: float
    max_cost: float | None = None
    removal_settle: float = 30.0  # a spec gone for less than this is not acted on yet
    allow_mass_removal: bool = False
    clock: Callable[[], float] = time.time  # wall time: what the ledger records
    monotonic: Callable[[], float] = time.monotonic  # what every wait is measured on
    on_pass: Callable[[float, PassResult | None], None] | None = None
    on_finished: Callable[[AttemptView], None] | None = None
    # whether the ledger file this daemon holds is still the one at its path
    still_ours: Callable[[], bool] = lambda: True
    stop: threading.Event = field(default_factory=threading.Event)
    health: dict[str, ProviderHealth] = field(default_factory=dict)
    last_polled: dict[int, float] = field(default_factory=dict)
    problems: set[str] = field(default_factory=set)  # spec problems already reported
    missing_since: dict[str, float] = field(default_factory=dict)  # name → monotonic time
    passes: int = 0
    # the last pass: what failed in it (None: nothing), and whether nothing it tried worked
    trouble: str | None = None
    stalled: bool = False
    # several replicas on one PostgreSQL ledger: the accounts this one holds (leases.py)
    replica: Any = None
    renewer: Any = None  # leases.Renewer: the replica's leases kept alive between balances
    last_state: Any = None  # the specs the last pass loaded
    last_balance: float = 0.0
    accounts: set[str] = field(default_factory=set)  # every account the last pass saw
    local_warned: bool = False
    core: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.core = Reconciler(
            self.ledger,
            self.drivers,
            clock=self.clock,
            provenance=self.source,
            adopt_grace=self.adopt_grace,
            max_cost=self.max_cost,
            on_outcome=_log_outcome,
        )

    def _due(self, now: float) -> Callable[[AttemptView], bool]:
        """Whether an attempt's phase says it is time to look again, its provider willing."""

        def due(a: AttemptView) -> bool:
            waited = now - self.last_polled.get(a.id, 0.0)
            return (
                waited >= self.interval * POLL_FACTOR.get(a.phase, 1.0) - 1e-6
                and now >= self.health.get(a.provider, ProviderHealth()).next_try
            )

        return due

    def reconcile(self, reuse: bool = False) -> list[Outcome]:
        """One pass. Never raises for provider or spec trouble: it logs and carries on.
        A ledger deleted or replaced under the daemon stops it (``LedgerError``).
        ``reuse``: on the specs the last pass loaded (nothing changed since, and an
        account was just taken over: it is acted on without loading the tree again)."""
        if not self.still_ours():
            if isinstance(self.ledger.path, str):  # a database: its lock's connection was cut
                raise LedgerError(
                    f"watch lost its writer lock on the ledger {self.ledger.path} (the "
                    "connection was cut); stopping without writing (start watch again)"
                )
            raise LedgerError(
                f"ledger {self.ledger.path} was deleted or replaced while watch ran; stopping "
                "without writing to it (restore it, or start watch again for a new ledger)"
            )
        started = time.monotonic()
        result = None
        try:
            result = self._pass(self.last_state if reuse else None)
            if self.renewer is not None and self.renewer.gained.is_set():
                # a dead replica's account claimed while this pass ran: act on it now, on
                # the specs just loaded, not a whole load later
                self.renewer.gained.clear()
                result = self._pass(self.last_state)
            return list(result.outcomes)
        except ReconcilerError as exc:
            log.error("pass failed", error=str(exc))
            self.trouble, self.stalled = str(exc), True
            return []
        finally:
            self.passes += 1
            seconds = time.monotonic() - started
            specs = len(result.plan.actions) if result is not None else None
            log.debug("pass", n=self.passes, seconds=round(seconds, 3), specs=specs)
            if self.on_pass:
                try:
                    self.on_pass(seconds, result)
                except Exception as exc:  # metrics are never worth stopping the daemon for
                    log.error("metrics update failed", error=repr(exc))

    def _pass(self, state: DesiredState | None = None) -> PassResult:
        """One pass over the specs (loaded again, unless ``state`` is given)."""
        if state is None:
            gc.unfreeze()  # the last load's objects may be garbage now (loader.paused_gc)
            # no other thread while the specs load: parsing forks (fanout)
            with self.renewer.paused() if self.renewer is not None else contextlib.nullcontext():
                state = self.source.load(again=True)
        self.last_state = state
        now_problems = {err.render() for err in state.errors}
        for problem in sorted(now_problems - self.problems):  # each once, not every pass
            log.error("spec problem", problem=problem)
        if self.problems and not now_problems:
            log.info("spec problems fixed")
        self.problems = now_problems
        now = self.monotonic()
        polled: list[AttemptView] = []
        due = self._due(now)
        valid = {j.name for j in state.jobs}
        for name in valid & set(self.missing_since):
            del self.missing_since[name]  # back (a save, a move away and back): never acted on

        def hold(name: str) -> bool:
            """A removal waits while specs are broken and until it has settled."""
            gone_for = now - self.missing_since.setdefault(name, now)
            return bool(state.errors) or gone_for < self.removal_settle

        held = self._balance(state.jobs)

        def select(a: AttemptView) -> bool:
            if held is not None and a.provider not in held:
                return False  # another replica's account
            if due(a):
                polled.append(a)
                return True
            return False

        broken = {p: h.error for p, h in self.health.items() if h.error is not None}
        self.core.namespace = state.namespace
        result = self.core.pass_once(
            state.jobs,
            select=select,
            broken=broken,
            hold=hold,
            mass_removal="allow" if self.allow_mass_removal else "hold",
            stop=self.stop.is_set,
            only=None if held is None else self._owned(state.jobs, held),
        )
        errors = result.observation.errors
        for a in polled:
            if a.provider not in errors:
                self.last_polled[a.id] = now
        self._track_health(errors, {a.provider for a in polled}, now)
        self._judge(result, {a.provider for a in polled})
        for record in result.records.values():
            for a in record.attempts:  # a job just created is first looked at one interval on
                self.last_polled.setdefault(a.id, now)
        self._announce(result)
        if result.held:
            log.warning(
                "removals held while specs have errors", names=[a.name for a in result.held]
            )
        acted = {o.name for o in result.outcomes}
        for action in result.plan.changes:
            if action.name not in acted:
                log.info("held", name=action.name, kind=action.kind.value, reason=action.reason)
        return result

    def _balance(self, jobs: Any) -> set[str] | None:
        """As a replica: renew, give back and claim leases; the accounts held now (None:
        the only writer, every account is ours)."""
        if self.replica is None:
            return None
        records = self.ledger.records()
        accounts = {j.spec.provider for j in jobs} | {
            r.current.provider for r in records.values() if r.current is not None
        }
        # a local job lives on one machine (its process, its run folder): a lease that
        # moved to another host would find no job there and train it a second time
        on_this_host = {a for a in accounts if a in CATALOG and CATALOG[a].base == "local"}
        if on_this_host and not self.local_warned:
            log.warning(
                "local specs are not reconciled by watch replicas: run them with a watch "
                "on a SQLite ledger on the training machine",
                providers=sorted(on_this_host),
            )
            self.local_warned = True
        self.accounts = accounts - on_this_host
        return self.renew()

    def renew(self) -> set[str]:
        """One balancing step of the replica's leases (each pass, and between passes
        every third of the lease's TTL)."""
        before = set(self.replica.held)
        held: set[str] = self.replica.balance(self.accounts)
        self.last_balance = self.monotonic()
        if held != before:
            log.info("leases", replica=self.replica.name, holds=sorted(held))
        return held

    def renew_due(self) -> bool:
        return (
            self.replica is not None
            and self.monotonic() - self.last_balance >= self.replica.ttl / 3
        )

    def _owned(self, jobs: Any, held: set[str]) -> Callable[[str], bool]:
        """The spec names of the held accounts: a spec's provider, or for a removed spec
        its ledger job's."""
        provider = {j.name: j.spec.provider for j in jobs}
        for name, record in self.ledger.records().items():
            if name not in provider and record.current is not None:
                provider[name] = record.current.provider
        return lambda name: provider.get(name) in held

    def _track_health(
        self, errors: Mapping[str, ReconcilerError], polled: set[str], now: float
    ) -> None:
        for provider in polled:
            health = self.health.setdefault(provider, ProviderHealth())
            err = errors.get(provider)
            if err is None:
                if health.failures:
                    log.info("provider back", provider=provider, after_failures=health.failures)
                self.health[provider] = ProviderHealth()
                continue
            health.failures += 1
            health.error = err
            wait = PROVIDER_BACKOFF.wait_for(health.failures, getattr(err, "retry_after", None))
            health.next_try = now + wait
            log.warning(
                "provider failing", provider=provider, error=str(err), retry_in_s=round(wait, 1)
            )

    def _judge(self, result: PassResult, polled: set[str]) -> None:
        """What failed in this pass (``trouble``), and whether nothing it tried worked
        (``stalled``: every provider it needs is failing and every action failed). An action
        refused by policy (``--max-cost``) is the spec's doing, not a failure."""
        needed = {a.provider for a in result.plan.changes} | {
            a.provider
            for r in result.records.values()
            for a in r.attempts
            if a.phase.active or a.phase is Phase.PENDING
        }  # a provider down with nothing to do for this project stops nothing
        down = {p: h.error for p, h in self.health.items() if h.error and p in needed}
        failed = [o for o in result.failed if not o.message.startswith("refused:")]
        worked = bool(polled - set(result.observation.errors)) or any(
            o.ok or o.pending for o in result.outcomes
        )
        parts = [f"{p}: {e}" for p, e in sorted(down.items())]
        parts += [f"{o.name}: {o.kind.value} failed: {o.message}" for o in failed]
        self.trouble = "; ".join(parts)[:500] or None
        self.stalled = self.trouble is not None and not worked

    def _announce(self, result: PassResult) -> None:
        """Report each attempt that reached a terminal phase during this pass, once: those
        the pass left in the ledger, and those seen ending then forgotten in the same pass
        (a removed spec's job seen cancelled is forgotten at once)."""
        before = {a.id: a.phase for a in result.observation.view.attempts()}
        seen = {
            a.id: a
            for r in result.observation.records.values()
            for a in r.attempts
            if a.phase.terminal and a.id in before and not before[a.id].terminal
        }
        seen.update({a.id: a for a in result.finished()})
        for a in seen.values():
            log.info(
                "job finished",
                name=a.name,
                phase=a.phase.value,
                job=a.remote_id,
                model=a.fine_tuned_model,
                error=a.error,
            )
            if self.on_finished:
                try:
                    self.on_finished(a)
                except Exception as exc:  # a notification never stops the daemon
                    log.error("notification failed", name=a.name, error=repr(exc))


def _log_outcome(o: Outcome) -> None:
    """Each action as it ends; a failed one is a warning."""
    failed = not o.ok and not o.pending
    (log.warning if failed else log.info)(
        "action", name=o.name, kind=o.kind.value, ok=o.ok, pending=o.pending, message=o.message
    )


def run(watcher: Watcher, *, debounce_ms: int = 50) -> int:
    """Run passes until SIGTERM/SIGINT; returns the exit code (0 on a signal)."""
    import watchfiles

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        watcher.stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    ref_watch = None
    if watcher.source.git_ref is not None:
        from .gitref import RefWatcher

        ref_watch = RefWatcher(watcher.source.specs, watcher.source.git_ref)
    try:
        log.info(
            "watching",
            specs=str(watcher.source.specs),
            git_ref=watcher.source.git_ref,
            interval_s=watcher.interval,
        )
        watcher.reconcile()
        next_pass = time.monotonic() + watcher.interval
        tick = max(50, min(1000, int(watcher.interval * 1000)))
        for changes in watchfiles.watch(
            watcher.source.specs,
            debounce=debounce_ms,
            step=25,
            rust_timeout=tick,
            yield_on_timeout=True,
            stop_event=watcher.stop,
            raise_interrupt=False,
        ):
            if watcher.stop.is_set():
                break
            moved = ref_watch.moved() if ref_watch is not None else None
            if changes:
                log.info("specs changed", files=sorted({Path(p).name for _, p in changes}))
            if moved:
                log.info("ref moved", git_ref=watcher.source.git_ref, commit=moved)
            gained = False
            if watcher.renew_due():  # a replica keeps its leases between passes
                before = set(watcher.replica.held)
                try:
                    gained = bool(watcher.renew() - before)  # another replica's accounts
                except ReconcilerError as exc:
                    log.error("lease renewal failed", error=str(exc))
            if watcher.renewer is not None and watcher.renewer.gained.is_set():
                watcher.renewer.gained.clear()  # claimed a dead replica's account: act now
                gained = True
            due = time.monotonic() >= next_pass
            if (changes and ref_watch is None) or moved or due:
                watcher.reconcile()
                next_pass = time.monotonic() + watcher.interval
            elif gained:  # another replica's accounts, nothing else new: act on them now
                watcher.reconcile(reuse=watcher.last_state is not None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        watcher.source.close()
    log.info("stopped", passes=watcher.passes)
    return 0
