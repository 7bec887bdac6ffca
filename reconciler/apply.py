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
from pathlib import Path

from .errors import ConfigError, ErrorKind, ProviderError, ReconcilerError
from .log import get as get_logger
from .ledger import Ledger
from .plan import Action, AttemptView, DesiredJob, Kind, Plan, SpecRecord
from .providers import DriverPool
from .providers.base import RemoteJob, create_request, upload_filename

log = get_logger("reconciler.apply")

DEFAULT_ADOPT_GRACE = 60.0  # LIST is eventually consistent (DESIGN §10)


@dataclass(frozen=True)
class Outcome:
    """What executing one action did."""

    name: str
    kind: Kind
    ok: bool
    message: str
    pending: bool = False  # not failed, not done: resolved on a later pass


# -- refresh -----------------------------------------------------------------------


def refresh(
    records: Mapping[str, SpecRecord], drivers: DriverPool, *, act: bool = False
) -> dict[int, RemoteJob]:
    """Ask each provider about every live, active attempt: one list per provider where
    the API allows, a get for any job the list did not show. Terminal jobs are never polled.

    With ``act`` (apply and watch only; never plan or status), a job the provider parked
    after validation (Mistral's ``auto_start: false``) is started.
    """
    wanted: dict[str, dict[str, AttemptView]] = {}
    for record in records.values():
        for a in record.attempts:
            if a.phase.active and a.remote_id:
                wanted.setdefault(a.provider, {})[a.remote_id] = a
    observed: dict[int, RemoteJob] = {}
    for provider, by_remote in sorted(wanted.items()):
        driver = drivers.get(provider)
        by_id = {a.id for a in by_remote.values()}
        missing = dict(by_remote)
        for job in driver.list_jobs():
            attempt = missing.pop(job.id, None)
            if attempt is not None:
                observed[attempt.id] = job
            if not missing:
                break
        for remote_id, attempt in missing.items():
            try:
                observed[attempt.id] = driver.get_job(remote_id)
            except ProviderError as exc:
                if exc.kind is not ErrorKind.NOT_FOUND:
                    raise
        start = getattr(driver, "start_if_parked", None) if act else None
        if start is not None:
            for attempt_id in [i for i in observed if i in by_id]:
                observed[attempt_id] = start(observed[attempt_id])
    return observed


def with_observations(
    records: Mapping[str, SpecRecord], observed: Mapping[int, RemoteJob]
) -> dict[str, SpecRecord]:
    """The ledger view as it would be with the observations recorded (for ``plan``)."""
    out: dict[str, SpecRecord] = {}
    for name, record in records.items():
        attempts = tuple(
            dataclasses.replace(
                a,
                phase=job.phase,
                status=job.status,
                progress=job.progress,
                error=job.error,
                error_retryable=job.error_retryable,
                fine_tuned_model=job.fine_tuned_model or a.fine_tuned_model,
            )
            if (job := observed.get(a.id)) is not None
            else a
            for a in record.attempts
        )
        out[name] = dataclasses.replace(record, attempts=attempts)
    return out


def persist_observations(ledger: Ledger, observed: Mapping[int, RemoteJob]) -> int:
    """Write what the providers said; returns how many attempts changed."""
    return sum(ledger.record_job(attempt_id, job) for attempt_id, job in observed.items())


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
        clock: Callable[[], float] = time.time,
        adopt_grace: float = DEFAULT_ADOPT_GRACE,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.drivers = drivers
        self.desired = {d.name: d for d in desired}
        self.git_commit = git_commit
        self.clock = clock
        self.adopt_grace = adopt_grace
        self.on_outcome = on_outcome
        self._broken: dict[str, ReconcilerError] = {}  # provider → the auth/config error seen

    def execute(self, plan: Plan) -> list[Outcome]:
        outcomes = []
        for action in plan.changes:
            outcome = self._run(action)
            outcomes.append(outcome)
            if self.on_outcome:
                self.on_outcome(outcome)
        return outcomes

    def _run(self, action: Action) -> Outcome:
        broken = self._broken.get(action.provider)
        if broken is not None:
            return Outcome(action.name, action.kind, False, str(broken))
        log.info("action", name=action.name, kind=action.kind.value, reason=action.reason)
        try:
            message, pending = self._dispatch(action)
        except ProviderError as exc:
            log.warning("action failed", name=action.name, kind=action.kind.value, error=str(exc))
            if exc.kind is ErrorKind.AUTH:
                self._broken[action.provider] = exc
            self.ledger.record_event("error", str(exc), action.name, action=action.kind.value)
            return Outcome(action.name, action.kind, False, str(exc))
        except ConfigError as exc:
            self._broken[action.provider] = exc
            return Outcome(action.name, action.kind, False, str(exc))
        return Outcome(action.name, action.kind, not pending, message, pending)

    def _dispatch(self, action: Action) -> tuple[str, bool]:
        kind = action.kind
        if kind in (Kind.CREATE, Kind.RETRY):
            return self._create(action)
        if kind is Kind.REPLACE:
            return self._replace(action)
        if kind is Kind.ADOPT:
            return self._adopt(action)
        if kind is Kind.CANCEL:
            assert action.current is not None
            return self._cancel(action.current, "spec removed"), False
        if kind is Kind.FORGET:
            self.ledger.forget(action.name, action.reason)
            return "forgotten (the provider's job and model are left as they are)", False
        raise AssertionError(f"not an executable action: {kind}")  # pragma: no cover

    # -- files ---------------------------------------------------------------------
    def _ensure_file(self, provider: str, path: Path, sha256: str) -> str:
        """The provider's id for a data file, uploading it at most once per content hash."""
        row = self.ledger.file_row(provider, sha256)
        if row and row["status"] == "uploaded" and row["remote_id"]:
            return str(row["remote_id"])
        driver = self.drivers.get(provider)
        name = upload_filename(sha256, path)
        if row is not None:  # an upload intent from an interrupted run: look before uploading
            found = driver.find_file(sha256)
            if found is not None:
                self.ledger.file_uploaded(provider, sha256, found.id, found.filename)
                return found.id
        else:
            self.ledger.file_intent(provider, sha256, name, path.stat().st_size)
        remote = driver.upload_file(path, sha256)
        self.ledger.file_uploaded(provider, sha256, remote.id, remote.filename)
        return remote.id

    # -- create ----------------------------------------------------------------------
    def _want(self, action: Action) -> DesiredJob:
        want = self.desired.get(action.name)
        if want is None or want.training_path is None:
            raise ConfigError(f"{action.name}: no loaded spec to create from")
        return want

    def _files(self, want: DesiredJob) -> tuple[str, str | None]:
        """Upload (at most once per content) the training and validation files."""
        assert want.training_path is not None
        training_id = self._ensure_file(
            want.spec.provider, want.training_path, want.training_sha256
        )
        validation_id = None
        if want.validation_path is not None and want.validation_sha256 is not None:
            validation_id = self._ensure_file(
                want.spec.provider, want.validation_path, want.validation_sha256
            )
        return training_id, validation_id

    def _create(self, action: Action) -> tuple[str, bool]:
        want = self._want(action)
        assert action.fingerprint and action.attempt and action.tag
        training_id, validation_id = self._files(want)
        attempt_id = self.ledger.insert_intent(
            name=want.name,
            attempt=action.attempt,
            fingerprint=action.fingerprint,
            tag=action.tag,
            provider=want.spec.provider,
            inputs=_inputs_of(want, action),
            on_delete=want.spec.policy.on_delete,
            spec_path=want.file,
            git_commit=self.git_commit(want.file),
            cost_estimate_usd=action.estimated_cost_usd,
        )
        return self._post(attempt_id, want, action, training_id, validation_id)

    def _post(
        self,
        attempt_id: int,
        want: DesiredJob,
        action: Action,
        training_id: str,
        validation_id: str | None,
    ) -> tuple[str, bool]:
        spec = want.spec
        row = self.ledger.attempt(attempt_id)
        request = create_request(
            want.name,
            spec,
            tag=row["tag"],
            training_file_id=training_id,
            validation_file_id=validation_id,
            from_output=action.from_output,
        )
        driver = self.drivers.get(spec.provider)
        self.ledger.mark_posting(attempt_id, training_id, validation_id)
        try:
            job = driver.create_job(request)
        except ProviderError as exc:
            if exc.ambiguous:
                self.ledger.record_event(
                    "create_unknown", str(exc), want.name, attempt_id=attempt_id
                )
                return (
                    f"create outcome unknown ({exc.message}); the tag {row['tag']} is looked "
                    "up on the next pass",
                    True,
                )
            if exc.kind is ErrorKind.PERMANENT:
                self.ledger.record_create_failed(attempt_id, exc.message, retryable=False)
            else:  # refused before anything was created (auth, rate limit, not found)
                self.ledger.mark_absent(attempt_id, f"create refused: {exc}")
            raise
        start = getattr(driver, "start_if_parked", None)
        if start is not None:
            job = start(job)
        self.ledger.record_job(attempt_id, job, event="created")
        return f"created {job.id} (attempt {row['attempt']}, {job.status})", False

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

    def _replace(self, action: Action) -> tuple[str, bool]:
        cur = action.current
        notes = []
        if cur is not None and cur.phase.active and cur.remote_id:
            notes.append(self._cancel(cur, f"replaced by attempt {action.attempt}"))
        message, pending = self._create(action)
        return "; ".join([*notes, message]), pending

    # -- adopt -----------------------------------------------------------------------
    def _adopt(self, action: Action) -> tuple[str, bool]:
        cur = action.current
        assert cur is not None
        row = self.ledger.attempt(cur.id)
        found: list[RemoteJob] = []
        if row["posted_at"] is not None:
            found = self.drivers.get(cur.provider).find_jobs_by_tag(cur.tag)
        if found:
            job = min(found, key=lambda j: j.created_at or 0.0)
            if len(found) > 1:
                self.ledger.record_event(
                    "duplicate",
                    f"{len(found)} jobs carry tag {cur.tag}: " + ", ".join(j.id for j in found),
                    cur.name,
                )
            self.ledger.record_job(cur.id, job, event="adopted")
            adopted = dataclasses.replace(cur, remote_id=job.id, phase=job.phase)
            note = f"adopted {job.id} ({job.status})"
            if action.then is Kind.REPLACE:
                message, pending = self._replace(dataclasses.replace(action, current=adopted))
                return f"{note}; {message}", pending
            if action.then is Kind.CANCEL and job.phase.active:
                return f"{note}; {self._cancel(adopted, 'spec removed')}", False
            if action.then is Kind.FORGET:
                self.ledger.forget(cur.name, action.reason)
                return f"{note}; forgotten", False
            return note, False
        age = self.clock() - (row["posted_at"] or 0.0)
        if row["posted_at"] is not None and age < self.adopt_grace:
            return (
                f"tag {cur.tag} not listed yet; the intent is {age:.0f}s old and lists may lag, "
                f"looking again after {self.adopt_grace:.0f}s",
                True,
            )
        why = (
            "never posted" if row["posted_at"] is None else f"not at the provider after {age:.0f}s"
        )
        if action.then is Kind.CREATE:
            want = self._want(action)
            training_id, validation_id = self._files(want)
            self.ledger.reset_intent(cur.id)
            message, pending = self._post(cur.id, want, action, training_id, validation_id)
            return f"intent {cur.tag} {why}; {message}", pending
        self.ledger.mark_absent(cur.id, f"intent {cur.tag} {why}")
        if action.then is Kind.REPLACE:
            message, pending = self._create(action)
            return f"intent {cur.tag} {why}; {message}", pending
        return f"intent {cur.tag} {why}: nothing to undo", False


def _inputs_of(want: DesiredJob, action: Action) -> dict[str, object]:
    from .fingerprint import training_inputs

    return training_inputs(
        want.spec, want.training_sha256, want.validation_sha256, action.from_output
    )
