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

log = get_logger("reconciler.observe")


@dataclasses.dataclass
class Refresh:
    """What the providers said about the active attempts, and which providers failed."""

    observed: dict[int, RemoteJob] = dataclasses.field(default_factory=dict)
    errors: dict[str, ReconcilerError] = dataclasses.field(default_factory=dict)


MISSING_STATUS = "missing"  # our word for a job the provider answers 404 about


def refresh(
    records: Mapping[str, SpecRecord],
    drivers: DriverPool,
    select: Callable[[AttemptView], bool] | None = None,
) -> Refresh:
    """Ask each provider about every live, active attempt (those ``select`` picks, when
    given): one list per provider where the API allows, a get for any job the list did
    not show. Terminal jobs are never polled.

    A provider that fails is reported in ``errors``; the others are still refreshed.
    """
    wanted: dict[str, dict[str, AttemptView]] = {}
    for record in records.values():
        for a in record.attempts:
            if a.phase.active and a.remote_id and (select is None or select(a)):
                wanted.setdefault(a.provider, {})[a.remote_id] = a
    result = Refresh()
    for provider, by_remote in sorted(wanted.items()):
        try:
            result.observed.update(_refresh_provider(drivers, provider, by_remote))
        except (ProviderError, ConfigError) as exc:
            log.warning("refresh failed", provider=provider, error=str(exc))
            result.errors[provider] = exc
    return result


def _refresh_provider(
    drivers: DriverPool, provider: str, by_remote: dict[str, AttemptView]
) -> dict[int, RemoteJob]:
    driver = drivers.get(provider)
    observed: dict[int, RemoteJob] = {}
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
            # gone at the provider (deleted, another account or endpoint): never wait on it
            observed[attempt.id] = RemoteJob(
                remote_id,
                Phase.CANCELLED,
                MISSING_STATUS,
                tag=attempt.tag,
                error=f"{remote_id} no longer exists at {provider}",
            )
    return observed


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


def persist_observations(ledger: Ledger, observed: Mapping[int, RemoteJob]) -> int:
    """Write what the providers said; returns how many attempts changed."""
    return sum(ledger.record_job(attempt_id, job) for attempt_id, job in observed.items())
