"""What a pass does with what the providers reported: start the jobs a provider parked
after validation (Mistral), cancel the duplicates a sweep found, and weigh the evidence
before an intent's tag, not listed, is taken as absent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from .errors import ProviderError
from .ledger import Ledger
from .log import get as get_logger
from .model import AttemptView, DesiredJob, Phase, RemoteJob, SpecRecord
from .providers import CATALOG
from .providers.base import Driver
from .providers.pool import DriverPool

log = get_logger("reconciler.upkeep")

MIN_MISSES = 3  # looks in a row that must miss a posted intent's tag before it is absent


def start_parked(
    ledger: Ledger,
    drivers: DriverPool,
    desired: Mapping[str, DesiredJob],
    records: Mapping[str, SpecRecord],
    observed: dict[int, RemoteJob],
) -> list[tuple[str, bool, str]]:
    """Start the jobs a provider parked after validation (Mistral's ``auto_start:
    false``): only the current job of a spec that is present and not suspended, once
    its validated cost is within the spec's budget; one over budget is cancelled. A
    parked job of a removed or suspended spec stays parked: the plan decides on it.

    Updates ``observed`` in place with what the provider answered; returns what was done,
    as (spec name, ok, message), for the command to show.
    """
    done: list[tuple[str, bool, str]] = []
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
            done.append((attempt.name, False, f"{job.id} not started and cancelled: {why}"))
            continue
        try:
            observed[attempt_id] = driver.start_if_parked(job)
        except ProviderError as exc:
            log.warning("start failed", name=attempt.name, job=job.id, error=str(exc))
            done.append((attempt.name, False, f"cannot start validated job {job.id}: {exc}"))
            continue
        cost = f", validated cost ${job.cost_usd:,.2f}" if job.cost_usd is not None else ""
        done.append((attempt.name, True, f"started {job.id}, parked after validation{cost}"))
    return done


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


def absence_unproven(
    ledger: Ledger, driver: Driver, cur: AttemptView, grace: float, clock: Callable[[], float]
) -> str | None:
    """Why a posted intent's tag, not listed this time, is not yet taken as absent; None
    once the evidence is in: ``MIN_MISSES`` looks in a row, the first of them and the
    create both at least the grace ago, all on the provider's clock (its ``Date``)."""
    server_now = driver.api.server_time
    misses = ledger.record_miss(cur.id, f"tag {cur.tag} not listed", at=server_now)
    row = ledger.attempt(cur.id)
    if server_now is not None and row["posted_server_at"] is not None:
        since_post = server_now - row["posted_server_at"]
    else:  # a provider that sends no Date: our wall clock, the only one there is
        since_post = clock() - row["posted_at"]
    since_first = (server_now if server_now is not None else clock()) - (
        row["first_miss_at"] or 0.0
    )
    needed = MIN_MISSES if grace > 0 else 1
    if misses >= needed and since_post >= grace and since_first >= grace:
        return None
    return (
        f"tag {cur.tag} not listed yet (look {misses}, {since_post:.0f}s after the create "
        f"by the provider's clock); lists may lag: it is taken as absent after "
        f"{needed} looks over {grace:.0f}s"
    )
