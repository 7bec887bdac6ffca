"""``reconciler watch``: the daemon that keeps reality matching the specs.

One loop: a pass runs when a spec file changes (watchfiles, debounced), when the
watched git ref moves, and on a timer. Each pass refreshes the active jobs that are
due (by phase: terminal jobs never), starts parked jobs, plans and applies. A provider
that fails is backed off (with jitter) while the others carry on; a bad spec is
reported and the rest are still reconciled (with removals held, so a typo never
cancels a job). SIGTERM and SIGINT stop the loop after the action in flight.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .apply import Executor, Outcome, persist_observations, refresh
from .errors import ReconcilerError
from .ledger import Ledger
from .loader import load_tree
from .log import get as get_logger
from .model import AttemptView, Phase, SpecRecord
from .plan import Plan, make_plan
from .providers.pool import DriverPool
from .retry import Backoff
from .validation import DesiredState, desired_state

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
class Source:
    """Where a pass reads specs from: the working tree, or a git ref's commit."""

    specs: Path
    git_ref: str | None = None
    commit: str | None = None
    _snapshot: Any = None
    # unchanged spec files are not re-parsed, unchanged data files not re-checked
    _files: dict[Any, Any] = field(default_factory=dict)
    _data: dict[Any, Any] = field(default_factory=dict)

    def load(self) -> tuple[DesiredState, Path]:
        root = self.specs
        if self.git_ref is not None:
            from .gitref import export

            if self._snapshot is not None:
                self._snapshot.close()
            self._snapshot = export(self.specs, self.git_ref)
            self.commit = self._snapshot.commit
            root = self._snapshot.specs_dir
        specs = load_tree([root], cache=self._files)
        return desired_state(specs, root, cache=self._data), root

    def commit_of(self, spec_file: str) -> str | None:
        """Provenance: the commit being reconciled, or the working tree's (``-dirty``)."""
        if self._snapshot is not None:
            return str(self._snapshot.commit)
        from .commands import git_commit

        return git_commit(spec_file)

    def spec_path_of(self, spec_file: str) -> str:
        if self._snapshot is None:
            return spec_file
        from .gitref import commit_of

        return commit_of(Path(spec_file), self._snapshot)[1]

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None


@dataclass
class Watcher:
    """The state of one watch daemon between passes."""

    ledger: Ledger
    drivers: DriverPool
    source: Source
    interval: float
    adopt_grace: float
    max_cost: float | None = None
    git_commit: Callable[[str], str | None] = lambda path: None
    spec_path: Callable[[str], str] = lambda path: path
    clock: Callable[[], float] = time.time
    on_pass: Callable[[float, bool], None] | None = None
    on_finished: Callable[[AttemptView], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    health: dict[str, ProviderHealth] = field(default_factory=dict)
    last_polled: dict[int, float] = field(default_factory=dict)
    problems: set[str] = field(default_factory=set)  # spec problems already reported
    passes: int = 0

    def _due(self, records: Mapping[str, SpecRecord], now: float) -> dict[str, SpecRecord]:
        """Only the attempts whose phase says it is time to look again."""
        out = {}
        for name, record in records.items():
            keep = tuple(
                a
                for a in record.attempts
                if a.phase.active
                and now - self.last_polled.get(a.id, 0.0)
                >= self.interval * POLL_FACTOR.get(a.phase, 1.0) - 1e-6
                and now >= self.health.get(a.provider, ProviderHealth()).next_try
            )
            out[name] = dataclasses.replace(record, attempts=keep)
        return out

    def reconcile(self) -> list[Outcome]:
        """One pass. Never raises for provider or spec trouble: it logs and carries on."""
        started = time.monotonic()
        ok = True
        try:
            return self._pass()
        except ReconcilerError as exc:
            ok = False
            log.error("pass failed", error=str(exc))
            return []
        finally:
            self.passes += 1
            if self.on_pass:
                try:
                    self.on_pass(time.monotonic() - started, ok)
                except Exception as exc:  # metrics are never worth stopping the daemon for
                    log.error("metrics update failed", error=repr(exc))

    def _pass(self) -> list[Outcome]:
        state, _ = self.source.load()
        now_problems = {err.render() for err in state.errors}
        for problem in sorted(now_problems - self.problems):  # each once, not every pass
            log.error("spec problem", problem=problem)
        if self.problems and not now_problems:
            log.info("spec problems fixed")
        self.problems = now_problems
        now = self.clock()
        before = {a.id: a.phase for r in self.ledger.records().values() for a in r.attempts}
        due = self._due(self.ledger.records(), now)
        fresh = refresh(due, self.drivers)
        for record in due.values():
            for a in record.attempts:
                if a.provider not in fresh.errors:
                    self.last_polled[a.id] = now
        self._track_health(
            fresh.errors, {a.provider for r in due.values() for a in r.attempts}, now
        )
        broken: dict[str, ReconcilerError] = {}
        for provider, health in self.health.items():
            if health.error is not None:
                broken[provider] = health.error
        executor = Executor(
            self.ledger,
            self.drivers,
            state.jobs,
            git_commit=self.git_commit,
            spec_path=self.spec_path,
            clock=self.clock,
            adopt_grace=self.adopt_grace,
            broken=broken,
            on_outcome=lambda o: log.info(
                "action",
                name=o.name,
                kind=o.kind.value,
                ok=o.ok,
                pending=o.pending,
                message=o.message,
            ),
        )
        executor.start_parked(self.ledger.records(), fresh.observed)
        persist_observations(self.ledger, fresh.observed)
        self.ledger.sync_policies({j.name: j.spec.policy.on_delete for j in state.jobs})
        plan = make_plan(state.jobs, self.ledger.records(), now, max_cost=self.max_cost)
        if state.errors:
            plan = _hold_removals(plan, {j.name for j in state.jobs})
        outcomes = executor.execute(plan, stop=self.stop.is_set)
        for record in self.ledger.records().values():
            for a in record.attempts:  # a job just created is first looked at one interval on
                self.last_polled.setdefault(a.id, now)
        self._announce(before)
        for action in plan.changes:
            if action.name in {o.name for o in outcomes}:
                continue
            log.info("held", name=action.name, kind=action.kind.value, reason=action.reason)
        return outcomes

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

    def _announce(self, before: Mapping[int, Phase]) -> None:
        """Report each attempt that reached a terminal phase during this pass, once."""
        for record in self.ledger.records().values():
            for a in record.attempts:
                was = before.get(a.id)
                if a.phase.terminal and was is not None and not was.terminal:
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


def _hold_removals(plan: Plan, valid: set[str]) -> Plan:
    """With spec errors, a name missing from the valid set may just be a broken file:
    never cancel or forget it until the specs parse again."""
    kept = tuple(a for a in plan.actions if a.name in valid or not a.is_change)
    held = [a.name for a in plan.actions if a not in kept]
    if held:
        log.warning("removals held while specs have errors", names=held)
    return Plan(kept, plan.fingerprints)


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
            if (changes and ref_watch is None) or moved or time.monotonic() >= next_pass:
                watcher.reconcile()
                next_pass = time.monotonic() + watcher.interval
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        watcher.source.close()
    log.info("stopped", passes=watcher.passes)
    return 0
