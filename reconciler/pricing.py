"""The provider's own price for a create, where its catalog entry says it has one
(Together's estimate-price); the offline estimate (``cost.py``) stands otherwise.

An estimate is advice: a provider that cannot answer leaves the offline figure in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .errors import ReconcilerError
from .log import get as get_logger
from .model import PLACEHOLDER_TAG, DesiredJob, create_request
from .plan import CREATES, Plan
from .providers import CATALOG
from .providers.pool import DriverPool

log = get_logger("reconciler.pricing")


def provider_price(
    drivers: DriverPool,
    want: DesiredJob,
    *,
    training_file_id: str,
    validation_file_id: str | None = None,
    tag: str = PLACEHOLDER_TAG,
    from_output: str | None = None,
) -> float | None:
    """What the provider says this create costs in US dollars; None when it cannot say."""
    provider = want.spec.provider
    if not CATALOG[provider].capabilities.estimates_price:
        return None
    request = create_request(
        want.name,
        want.spec,
        tag=tag,
        training_file_id=training_file_id,
        validation_file_id=validation_file_id,
        from_output=from_output,
    )
    try:
        return drivers.get(provider).estimate_price(training_file_id, request)
    except ReconcilerError as exc:
        log.info("no provider estimate", name=want.name, error=str(exc))
        return None


def priced_online(
    jobs: Iterable[DesiredJob],
    creating: set[str],
    uploaded: Callable[[str, str], str | None],
    drivers: DriverPool,
) -> list[DesiredJob]:
    """The jobs, each create priced by its provider when the provider already holds its
    data (``uploaded(provider, sha256)`` gives the file id; a plan uploads nothing)."""
    out = []
    for job in jobs:
        file_id = uploaded(job.spec.provider, job.training_sha256) if job.name in creating else None
        price = provider_price(drivers, job, training_file_id=file_id) if file_id else None
        if price is None:
            out.append(job)
            continue
        basis = f"{job.spec.provider} estimate-price (online)"
        out.append(dataclasses.replace(job, estimated_cost_usd=price, estimate_basis=basis))
    return out


def repriced(
    jobs: Sequence[DesiredJob],
    plan: Plan,
    file_row: Callable[[str, str], Mapping[str, Any] | None],
    drivers: DriverPool,
) -> list[DesiredJob] | None:
    """The jobs with the plan's creates priced by their provider (where it holds the data:
    ``file_row`` is the ledger's); None when no price changed. ``plan`` and ``apply`` both
    show a create priced this way, so the figure confirmed is the figure planned."""
    creating = {a.name for a in plan.actions if a.kind in CREATES}
    if not creating:
        return None

    def uploaded(provider: str, sha256: str) -> str | None:
        row = file_row(provider, sha256)
        return str(row["remote_id"]) if row and row["remote_id"] else None

    priced = priced_online(jobs, creating, uploaded, drivers)
    return priced if priced != list(jobs) else None
