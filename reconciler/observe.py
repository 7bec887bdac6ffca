"""Observe: what the providers say about the ledger's active attempts.

One list per provider where the API allows, a get for any job the list did not show;
terminal jobs are never polled. Reads only: what is observed is applied to a ledger
view in memory (``with_observations``) and written by the reconcile core once a pass
goes ahead (``persist_observations``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from .errors import ConfigError, ErrorKind, ProviderError, ReconcilerError
from .ledger import Ledger
from .log import get as get_logger
from .model import AttemptView, Phase, RemoteJob, SpecRecord
from .providers.pool import DriverPool
from .tags import is_ours

log = get_logger("reconciler.observe")


@dataclasses.dataclass
class Refresh:
    """What the providers said about the active attempts, and which providers failed."""

    observed: dict[int, RemoteJob] = dataclasses.field(default_factory=dict)
    errors: dict[str, ReconcilerError] = dataclasses.field(default_factory=dict)
    # attempt id → why it was not found this time (a 404 not yet taken as evidence)
    missed: dict[int, str] = dataclasses.field(default_factory=dict)
    # jobs of our namespace that the ledger does not know, seen by the lists (the sweep)
    unknown: list[tuple[str, RemoteJob]] = dataclasses.field(default_factory=list)


MISSING_STATUS = "missing"  # our word for a job the provider answers 404 about
# a known job answered 404 this many looks in a row, over at least this long, is gone;
# before that it is a proxy hiccup, a lagging replica or a wrong endpoint, and kept
MISSING_AFTER_LOOKS = 3
MISSING_AFTER_SECONDS = 60.0


def refresh(
    records: Mapping[str, SpecRecord],
    drivers: DriverPool,
    select: Callable[[AttemptView], bool] | None = None,
    *,
    now: float = 0.0,
    sweep: Sweep | None = None,
) -> Refresh:
    """Ask each provider about every live, active attempt (those ``select`` picks, when
    given): one list per provider where the API allows, a get for any job the list did
    not show. Terminal jobs are never polled.

    A provider that fails is reported in ``errors``; the others are still refreshed.
    With ``sweep``, every job a list shows that carries the project's namespace and that
    the ledger does not hold is reported in ``unknown``.
    """
    wanted: dict[str, dict[str, AttemptView]] = {}
    for record in records.values():
        for a in record.attempts:
            if a.phase.active and a.remote_id and (select is None or select(a)):
                wanted.setdefault(a.provider, {})[a.remote_id] = a
    result = Refresh()
    for provider, by_remote in sorted(wanted.items()):
        try:
            _refresh_provider(drivers, provider, by_remote, result, now, sweep)
        except (ProviderError, ConfigError) as exc:
            log.warning("refresh failed", provider=provider, error=str(exc))
            result.errors[provider] = exc
    return result


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What the lists are swept for: this namespace's jobs the ledger does not know."""

    namespace: str
    known: Callable[[str], set[str]]  # provider → every job id the ledger holds


def _refresh_provider(
    drivers: DriverPool,
    provider: str,
    by_remote: dict[str, AttemptView],
    result: Refresh,
    now: float,
    sweep: Sweep | None,
) -> None:
    driver = drivers.get(provider)
    known = sweep.known(provider) if sweep is not None else set()
    missing = dict(by_remote)
    for job in driver.list_jobs():
        attempt = missing.pop(job.id, None)
        if attempt is not None:
            result.observed[attempt.id] = job
        elif sweep is not None and job.id not in known and is_ours(job.tag, sweep.namespace):
            result.unknown.append((provider, job))
        if not missing:
            break  # the pages already fetched are swept; older history is not fetched for it
    for remote_id, attempt in missing.items():
        try:
            job = driver.get_job(remote_id)
        except ProviderError as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                raise
            looks = attempt.misses + 1
            waited = now - (attempt.first_miss_at or now)
            if looks < MISSING_AFTER_LOOKS or waited < MISSING_AFTER_SECONDS:
                result.missed[attempt.id] = f"{remote_id} not found at {provider} (look {looks})"
                continue
            # gone at the provider (deleted, another account or endpoint): never wait on it
            job = RemoteJob(
                remote_id,
                Phase.CANCELLED,
                MISSING_STATUS,
                tag=attempt.tag,
                error=f"{remote_id} no longer exists at {provider} ({looks} looks over "
                f"{waited:.0f}s)",
            )
        if job.id != remote_id:  # an answer about another job is not about this one
            raise ProviderError(
                provider,
                f"asked for job {remote_id}, the answer is about {job.id or 'no job'}",
                kind=ErrorKind.RETRYABLE,
            )
        result.observed[attempt.id] = job


def with_observations(
    records: Mapping[str, SpecRecord], observed: Mapping[int, RemoteJob], now: float
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
                finished_at=a.finished_at or (now if job.phase.terminal else None),
            )
            if (job := observed.get(a.id)) is not None
            else a
            for a in record.attempts
        )
        out[name] = dataclasses.replace(record, attempts=attempts)
    return out


def with_progress(
    records: Mapping[str, SpecRecord], observed: Mapping[int, RemoteJob], drivers: DriverPool
) -> dict[int, RemoteJob]:
    """The observed running jobs with their progress from one detailed read each (a list
    carries none); a read that fails leaves the job as the list showed it."""
    by_id = {a.id: a for r in records.values() for a in r.attempts}
    out = dict(observed)
    for attempt_id, job in observed.items():
        cur = by_id.get(attempt_id)
        if cur is None or job.phase not in (Phase.RUNNING, Phase.UNKNOWN) or job.progress:
            continue
        try:
            progress = drivers.get(cur.provider).job_progress(job.id)
        except ReconcilerError:
            continue  # progress is a nicety: the phase is already known
        if progress:
            out[attempt_id] = dataclasses.replace(job, progress=progress)
    return out


def persist_observations(ledger: Ledger, observed: Mapping[int, RemoteJob]) -> int:
    """Write what the providers said; returns how many attempts changed."""
    return sum(ledger.record_job(attempt_id, job) for attempt_id, job in observed.items())


def classify_unknown(
    unknown: list[tuple[str, RemoteJob]], records: Mapping[str, SpecRecord]
) -> tuple[list[tuple[str, RemoteJob, AttemptView]], list[tuple[str, RemoteJob]]]:
    """The sweep's finds: (duplicates, strays). A live job whose tag belongs to an attempt
    that already has a live job is a duplicate (a create that lag or a lost answer made
    twice); one whose attempt is still an intent is left for that intent to adopt; any
    other is a stray, reported and left alone. Only attempts of the provider (profile)
    whose list showed the job count: two profiles that reach one account see each other's
    jobs, and a job the ledger holds under any profile is nobody's duplicate."""
    by_tag: dict[tuple[str, str], list[AttemptView]] = {}
    held: set[str] = set()
    for record in records.values():
        for a in record.attempts:
            by_tag.setdefault((a.provider, a.tag), []).append(a)
            if a.remote_id:
                held.add(a.remote_id)
    duplicates, strays = [], []
    for provider, job in unknown:
        if job.id in held:
            continue
        attempts = by_tag.get((provider, job.tag or ""), [])
        if any(a.phase is Phase.PENDING for a in attempts):
            continue  # the intent's adopt finds it
        holder = next((a for a in attempts if a.phase.active and a.remote_id), None)
        if holder is not None and job.phase.active:
            duplicates.append((provider, job, holder))
        elif job.phase.active:
            strays.append((provider, job))
    return duplicates, strays
