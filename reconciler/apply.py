"""The imperative shell: refresh the ledger from the providers, and execute plans.

The crash protocol (DESIGN §4) lives in ``Executor._create`` / ``_post`` / ``_adopt``:
an intent row is committed before every upload and create, the call goes out
outside any transaction, the result is recorded after; an intent left by a crash is
resolved by looking its tag up at the provider, never by posting blindly again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .envrefs import resolve_request
from .errors import ConfigError, ErrorKind, ProviderError, ReconcilerError
from .ledger import Ledger
from .log import get as get_logger
from .model import (
    AttemptView,
    DesiredJob,
    Phase,
    RemoteJob,
    create_request,
    model_on_disk,
)
from .plan import CHANGES, Action, Kind, Plan
from .pricing import provider_price
from .providers import CATALOG
from .providers.pool import DriverPool
from .redact import scrub
from .tags import DEFAULT_NAMESPACE
from .upkeep import absence_unproven
from .uploads import Uploads

log = get_logger("reconciler.apply")

DEFAULT_ADOPT_GRACE = 120.0  # LIST is eventually consistent (DESIGN §10); > HTTP timeout


@dataclass(frozen=True)
class Outcome:
    """What executing one action did."""

    name: str
    kind: Kind
    ok: bool
    message: str
    pending: bool = False  # not failed, not done: resolved on a later pass
    label: str | None = None  # what to call it when not the kind's name ("start")

    @property
    def what(self) -> str:
        return self.label or self.kind.value


# -- execution ---------------------------------------------------------------------


class Executor:
    """Carries out a plan's actions, one at a time, recording each step in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        drivers: DriverPool,
        desired: Iterable[DesiredJob],
        *,
        git_commit: Callable[[str], str | None] = lambda path: None,
        spec_path: Callable[[str], str] = lambda path: path,
        clock: Callable[[], float] = time.time,
        adopt_grace: float = DEFAULT_ADOPT_GRACE,
        on_outcome: Callable[[Outcome], None] | None = None,
        broken: Mapping[str, ReconcilerError] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self.ledger = ledger
        self.drivers = drivers
        self.desired = {d.name: d for d in desired}
        self.git_commit = git_commit
        self.spec_path = spec_path
        self.clock = clock
        self.adopt_grace = adopt_grace
        self.on_outcome = on_outcome
        self.namespace = namespace
        self.env: Mapping[str, str] = drivers.env  # what {env: NAME} options read
        # provider → the auth/config/refresh error that stops its actions this pass
        self.broken: dict[str, ReconcilerError] = dict(broken or {})

    def execute(self, plan: Plan, *, stop: Callable[[], bool] | None = None) -> list[Outcome]:
        """Run the plan's changes in order; ``stop`` is asked before each one (a signal
        ends a watch after the action in flight, never in the middle of one)."""
        outcomes = []
        for action in plan.changes:
            if stop is not None and stop():
                break
            outcome = self._run(action)
            outcomes.append(outcome)
            if self.on_outcome:
                self.on_outcome(outcome)
        return outcomes

    def _run(self, action: Action) -> Outcome:
        if action.refused:
            self.ledger.record_event("refused", action.refused, action.name)
            return Outcome(action.name, action.kind, False, f"refused: {action.refused}")
        broken = self.broken.get(action.provider)
        if broken is not None:
            return Outcome(action.name, action.kind, False, scrub(str(broken)))
        log.info("action", name=action.name, kind=action.kind.value, reason=action.reason)
        notes: list[str] = []
        try:
            message, pending = self._dispatch(action, notes)
        except ProviderError as exc:
            if exc.ambiguous:  # an upload whose answer was lost: looked up on the next pass
                message = f"{exc}; outcome unknown, looked up by content on the next pass"
                self.ledger.record_event("error", message, action.name, action=action.kind.value)
                return Outcome(action.name, action.kind, False, scrub(message), pending=True)
            log.warning("action failed", name=action.name, kind=action.kind.value, error=str(exc))
            if exc.kind is ErrorKind.AUTH:
                self.broken[action.provider] = exc
            self.ledger.record_event("error", str(exc), action.name, action=action.kind.value)
            return Outcome(action.name, action.kind, False, scrub("; ".join([*notes, str(exc)])))
        except ConfigError as exc:
            self.broken[action.provider] = exc
            return Outcome(action.name, action.kind, False, scrub("; ".join([*notes, str(exc)])))
        return Outcome(
            action.name, action.kind, not pending, scrub("; ".join([*notes, message])), pending
        )

    def _dispatch(self, action: Action, notes: list[str]) -> tuple[str, bool]:
        kind = action.kind
        if action.moved_from is not None:
            self.ledger.rename(action.moved_from, action.name, "metadata.previous_names")
            moved = f"moved from {action.moved_from}: its job is kept"
            if kind not in CHANGES:
                return moved, False
            notes.append(moved)
        if kind in (Kind.CREATE, Kind.RETRY):
            return self._create(action)
        if kind is Kind.REPLACE:
            return self._replace(action, notes)
        if kind is Kind.ADOPT:
            return self._adopt(action, notes)
        if kind is Kind.CANCEL:
            assert action.current is not None
            return self._cancel(action.current, "spec removed"), False
        if kind is Kind.FORGET:
            self.ledger.forget(action.name, action.reason)
            return "forgotten (the provider's job and model are left as they are)", False
        if kind in (Kind.PAUSE, Kind.RESUME):
            return self._pause(action, kind is Kind.PAUSE), False
        raise AssertionError(f"not an executable action: {kind}")  # pragma: no cover

    def _files(self, want: DesiredJob) -> tuple[str, str | None]:
        """The provider's ids of the training and validation files (uploaded at most once
        per content)."""
        provider = want.spec.provider
        uploads = Uploads(self.ledger, self.drivers.get(provider), provider)
        assert want.training_path is not None
        training_id = uploads.ensure(want.training_path, want.training_sha256)
        validation_id = None
        if want.validation_path is not None and want.validation_sha256 is not None:
            validation_id = uploads.ensure(want.validation_path, want.validation_sha256)
        return training_id, validation_id

    # -- create ----------------------------------------------------------------------
    def _want(self, action: Action) -> DesiredJob:
        want = self.desired.get(action.name)
        if want is None or want.training_path is None:
            raise ConfigError(f"{action.name}: no loaded spec to create from")
        return want

    def _create(self, action: Action) -> tuple[str, bool]:
        want = self._want(action)
        assert action.fingerprint and action.attempt and action.tag
        # a job with this tag may exist already (a lost ledger, an earlier run): look before
        # any upload, and never post what the provider has (DESIGN §10)
        found, orphans = self._with_tag(want.spec.provider, action.tag)
        if orphans:  # its spec is back: the orphaned job it left running is its job again
            row, job = orphans[0]
            self.ledger.restore(int(row["id"]), f"spec back: re-adopted orphaned {job.id}")
            self.ledger.record_job(int(row["id"]), job)
            return f"re-adopted orphaned {job.id} (attempt {row['attempt']}, {job.status})", False
        if found:
            attempt_id = self._intent(want, action, action.estimated_cost_usd)
            note = self._adopted(
                self.ledger.attempt(attempt_id), found, "found by tag before posting"
            )
            return note, False
        training_id, validation_id = self._files(want)
        cost = self._provider_estimate(want, action, training_id, validation_id)
        attempt_id = self._intent(want, action, cost)
        return self._post(attempt_id, want, action, training_id, validation_id)

    def _intent(self, want: DesiredJob, action: Action, cost: float | None) -> int:
        assert action.fingerprint and action.attempt and action.tag
        return self.ledger.insert_intent(
            name=want.name,
            attempt=action.attempt,
            fingerprint=action.fingerprint,
            tag=action.tag,
            provider=want.spec.provider,
            inputs=_inputs_of(want, action),
            on_delete=want.spec.policy.on_delete,
            spec_path=self.spec_path(want.file),
            git_commit=self.git_commit(want.file),
            cost_estimate_usd=cost,
            namespace=self.namespace,
        )

    def _unknown_with_tag(self, provider: str, tag: str) -> list[RemoteJob]:
        """The provider's jobs carrying ``tag`` that the ledger does not hold yet (the tag
        is shared by every attempt of a spec at one fingerprint)."""
        return self._with_tag(provider, tag)[0]

    def _with_tag(
        self, provider: str, tag: str
    ) -> tuple[list[RemoteJob], list[tuple[dict[str, Any], RemoteJob]]]:
        """The jobs carrying ``tag``: those the ledger does not hold, and the live ones it
        holds as orphans (``on_delete: orphan``), with their attempt rows."""
        known = self.ledger.known_remote_ids(provider)
        unknown, orphans = [], []
        for job in self.drivers.get(provider).find_jobs_by_tag(tag):
            if job.id not in known:
                unknown.append(job)
            elif job.phase.active and (row := self.ledger.orphan_of(provider, job.id)):
                orphans.append((row, job))
        return unknown, orphans

    def _provider_estimate(
        self, want: DesiredJob, action: Action, training_id: str, validation_id: str | None
    ) -> float | None:
        """The provider's own price for this create when it has one, checked against the
        spec's budget; else the offline estimate."""
        budget = want.spec.policy.budget_usd
        if budget is None:
            return action.estimated_cost_usd  # the provider's price matters only to a budget
        price = provider_price(
            self.drivers,
            want,
            training_file_id=training_id,
            validation_file_id=validation_id,
            tag=action.tag or "",
            from_output=action.from_output,
        )
        if price is not None and price > budget:
            raise ConfigError(
                f"refused: {want.spec.provider} estimates ${price:,.2f}, over "
                f"policy.budget_usd ${budget:,.2f}"
            )
        return price if price is not None else action.estimated_cost_usd

    def _post(
        self,
        attempt_id: int,
        want: DesiredJob,
        action: Action,
        training_id: str,
        validation_id: str | None,
    ) -> tuple[str, bool]:
        """Steps 2–3 of the crash protocol for an intent the caller looked up: post once,
        record."""
        spec = want.spec
        row = self.ledger.attempt(attempt_id)
        driver = self.drivers.get(spec.provider)
        request = create_request(
            want.name,
            spec,
            tag=row["tag"],
            training_file_id=training_id,
            validation_file_id=validation_id,
            from_output=action.from_output,
        )
        folder = model_on_disk(spec.model, want.file)
        if folder is not None and CATALOG[spec.provider].capabilities.models_on_disk:
            request = dataclasses.replace(request, model=str(folder))
        # secrets are references until this moment (never in the ledger)
        request = resolve_request(request, self.env)
        server_at = driver.api.server_time  # the provider's clock, from its last answer
        self.ledger.mark_posting(attempt_id, training_id, validation_id, server_at)
        try:
            job = driver.create_job(request)
        except ProviderError as exc:
            if exc.ambiguous:
                # the grace for list lag counts from now, the end of the POST
                server_at = driver.api.server_time
                self.ledger.mark_posting(attempt_id, training_id, validation_id, server_at)
                self.ledger.record_event(
                    "create_unknown", str(exc), want.name, attempt_id=attempt_id
                )
                return (
                    f"create outcome unknown ({exc.message}); the tag {row['tag']} is looked "
                    "up on the next pass",
                    True,
                )
            if exc.kind in (ErrorKind.PERMANENT, ErrorKind.NOT_FOUND) and Uploads(
                self.ledger, self.drivers.get(want.spec.provider), want.spec.provider
            ).stale(want, training_id, validation_id):
                why = f"create refused ({exc.message}): the provider no longer has its data file"
                self.ledger.mark_absent(attempt_id, why)
                return f"{why}; it is uploaded again on the next pass", True
            refused = f"{exc.message} (HTTP {exc.status})" if exc.status else exc.message
            if exc.kind in (ErrorKind.PERMANENT, ErrorKind.NOT_FOUND):
                self.ledger.record_create_failed(attempt_id, refused, retryable=False)
            elif exc.kind is ErrorKind.RATE_LIMITED:
                self.ledger.record_create_failed(attempt_id, refused, retryable=True)
            else:  # auth, or never reached the provider: nothing exists, nothing is used up
                self.ledger.mark_absent(attempt_id, f"create refused: {exc}")
            raise
        self.ledger.record_job(attempt_id, job, event="created")
        return f"created {job.id} (attempt {row['attempt']}, {job.status})", False

    def _adopted(self, row: dict[str, object], found: list[RemoteJob], how: str) -> str:
        """Record the job carrying an intent's tag: the oldest live one (else the newest
        finished one); a second live job for the same attempt is a duplicate, cancelled."""
        by_age = sorted(found, key=lambda j: j.created_at or 0.0)
        live = [j for j in by_age if not j.phase.terminal]
        done = [j for j in by_age if j.phase is Phase.SUCCEEDED] or by_age
        job = live[0] if live else done[-1]
        extra = live[1:]
        attempt_id = int(str(row["id"]))
        self.ledger.record_job(attempt_id, job, event="adopted")
        note = f"adopted {job.id} ({job.status}, {how})"
        if extra:
            driver = self.drivers.get(str(row["provider"]))
            for dup in extra:
                driver.cancel_job(dup.id)
            ids = ", ".join(j.id for j in extra)
            self.ledger.record_event(
                "duplicate", f"tag {row['tag']} also on {ids}: cancelled", str(row["spec_name"])
            )
            note += f"; cancelled duplicate(s) {ids}"
        return note

    # -- replace, cancel -------------------------------------------------------------
    def _cancel(self, current: AttemptView, why: str) -> str:
        assert current.remote_id
        driver = self.drivers.get(current.provider)
        try:
            job = driver.cancel_job(current.remote_id)
        except ProviderError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                self.ledger.forget(
                    current.name, f"{current.remote_id} no longer exists at the provider"
                )
                return f"{current.remote_id} no longer exists at the provider: forgotten"
            if exc.kind is not ErrorKind.PERMANENT:
                raise
            # a job that finished since the plan cannot be cancelled; that is fine
            job = driver.get_job(current.remote_id)
            if not job.phase.terminal:
                raise
            self.ledger.record_job(current.id, job)
            return f"{current.remote_id} already {job.status}"
        self.ledger.mark_cancel_requested(current.id, f"cancel {current.remote_id}: {why}")
        self.ledger.record_job(current.id, job)
        return f"cancel requested for {current.remote_id} ({job.status})"

    def _pause(self, action: Action, pause: bool) -> str:
        cur = action.current
        assert cur is not None and cur.remote_id
        driver = self.drivers.get(cur.provider)
        job = driver.pause_job(cur.remote_id) if pause else driver.resume_job(cur.remote_id)
        self.ledger.set_paused(cur.id, pause, action.reason)
        self.ledger.record_job(cur.id, job)
        return f"{'paused' if pause else 'resumed'} {cur.remote_id} ({job.status})"

    def _replace(self, action: Action, notes: list[str]) -> tuple[str, bool]:
        cur = action.current
        if cur is not None and cur.phase.active and cur.remote_id:
            notes.append(self._cancel(cur, f"replaced by attempt {action.attempt}"))
        return self._create(action)

    # -- adopt -----------------------------------------------------------------------
    def _adopt(self, action: Action, notes: list[str]) -> tuple[str, bool]:
        cur = action.current
        assert cur is not None
        row = self.ledger.attempt(cur.id)
        found = self._unknown_with_tag(cur.provider, cur.tag)
        if found:
            notes.append(self._adopted(row, found, "an interrupted create"))
            job = self.ledger.attempt(cur.id)
            adopted = dataclasses.replace(
                cur, remote_id=job["remote_id"], phase=Phase(job["status"])
            )
            if action.then is Kind.REPLACE:
                return self._replace(dataclasses.replace(action, current=adopted), notes)
            if action.then is Kind.CANCEL and adopted.phase.active:
                return self._cancel(adopted, "spec removed"), False
            if action.then is Kind.FORGET:
                self.ledger.forget(cur.name, action.reason)
                return "forgotten", False
            return "nothing more to do", False
        why = "never posted"
        if row["posted_at"] is not None:
            driver = self.drivers.get(cur.provider)
            waiting = absence_unproven(self.ledger, driver, cur, self.adopt_grace, self.clock)
            if waiting is not None:
                return waiting, True
            row = self.ledger.attempt(cur.id)
            why = f"not at the provider after {row['misses']} looks (lists are not lagging)"
        if action.then is Kind.CREATE:
            want = self._want(action)
            training_id, validation_id = self._files(want)
            notes.append(f"intent {cur.tag} {why}")
            return self._post(cur.id, want, action, training_id, validation_id)
        self.ledger.mark_absent(cur.id, f"intent {cur.tag} {why}")
        notes.append(f"intent {cur.tag} {why}")
        if action.then is Kind.REPLACE:
            return self._create(action)
        return "nothing to undo", False


def _inputs_of(want: DesiredJob, action: Action) -> dict[str, object]:
    from .fingerprint import training_inputs

    return training_inputs(
        want.spec, want.training_sha256, want.validation_sha256, action.from_output
    )
