"""What a pass does with what the providers reported, before it plans: start the jobs a
provider parked after validation (Mistral), and cancel the duplicates a sweep found."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .errors import ProviderError
from .ledger import Ledger
from .log import get as get_logger
from .model import AttemptView, DesiredJob, Phase, RemoteJob, SpecRecord
from .providers import CATALOG
from .providers.pool import DriverPool

log = get_logger("reconciler.upkeep")


def start_parked(
    ledger: Ledger,
    drivers: DriverPool,
    desired: Mapping[str, DesiredJob],
    records: Mapping[str, SpecRecord],
    observed: dict[int, RemoteJob],
) -> None:
    """Start the jobs a provider parked after validation (Mistral's ``auto_start:
    false``): only the current job of a spec that is present and not suspended, once
    its validated cost is within the spec's budget; one over budget is cancelled. A
    parked job of a removed or suspended spec stays parked: the plan decides on it.

    Updates ``observed`` in place with what the provider answered.
    """
    current = {r.current.id for r in records.values() if r.current is not None}
    attempts = {a.id: a for r in records.values() for a in r.attempts}
    for attempt_id, job in list(observed.items()):
        attempt = attempts.get(attempt_id)
        if attempt is None or job.status.strip().upper() != "VALIDATED":
            continue
        if not CATALOG[attempt.provider].capabilities.parks_after_validation:
            continue
        want = desired.get(attempt.name)
        if want is None or want.spec.suspend or attempt_id not in current:
            continue
        driver = drivers.get(attempt.provider)
        budget = want.spec.policy.budget_usd
        if budget is not None and (job.cost_usd is None or job.cost_usd > budget):
            cost = "unknown" if job.cost_usd is None else f"${job.cost_usd:,.2f}"
            why = f"validated cost {cost} exceeds policy.budget_usd ${budget:,.2f}"
            driver.cancel_job(job.id)
            ledger.mark_cancel_requested(attempt_id, f"not started: {why}")
            observed[attempt_id] = dataclasses.replace(
                job, phase=Phase.FAILED, error=f"refused: {why}", error_retryable=False
            )
            continue
        try:
            observed[attempt_id] = driver.start_if_parked(job)
        except ProviderError as exc:
            log.warning("start failed", name=attempt.name, job=job.id, error=str(exc))


def cancel_duplicate(
    ledger: Ledger, drivers: DriverPool, provider: str, job: RemoteJob, holder: AttemptView
) -> None:
    """A second live job for an attempt that has one (the sweep found it): cancel it,
    and say so in the ledger's audit log."""
    why = f"tag {job.tag} of attempt {holder.attempt} also on {job.id}"
    try:
        drivers.get(provider).cancel_job(job.id)
    except ProviderError as exc:
        log.warning("duplicate not cancelled", name=holder.name, job=job.id, error=str(exc))
        ledger.record_event("duplicate", f"{why}: cancel failed ({exc})", holder.name)
        return
    log.warning("duplicate cancelled", name=holder.name, job=job.id, tag=job.tag)
    ledger.record_event("duplicate", f"{why}: cancelled", holder.name)
