"""Cost estimates before anyone pays: tokens from the data files, times epochs, times a
price table kept here as data, with its date and source.

Offline and approximate by design: token counts are characters / 4, and the prices are
list prices that change. ``plan`` says so next to every figure. Where a provider can
price a job itself (Together's estimate-price, Mistral's validated job), apply and an
online plan use that instead. Pure module.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Price, model_size_b
from .providers import CATALOG
from .spec import JobSpec

__all__ = ["Estimate", "estimate", "model_size_b"]


@dataclass(frozen=True)
class Estimate:
    usd: float
    tokens: int  # tokens billed: training tokens × epochs (+ evaluations)
    basis: str  # how the figure was reached, in one line


def _price_for(spec: JobSpec) -> Price | None:
    full = spec.lora is False
    size = model_size_b(spec.model)
    for price in CATALOG[spec.provider].prices:
        if price.model is not None:
            if price.model in spec.model:
                return price
            continue
        if price.method != spec.method or price.full != full:
            continue
        if size is not None and price.max_params_b is not None and size <= price.max_params_b:
            return price
    return None


def estimate(
    spec: JobSpec,
    training_tokens: int,
    validation_tokens: int | None = None,
    spec_file: str = "spec.yaml",
) -> Estimate | None:
    """An offline estimate for one job, or None when no price is known for its model."""
    own = CATALOG[spec.provider].estimator
    if own is not None:
        return Estimate(*own(spec, training_tokens, validation_tokens, spec_file))
    price = _price_for(spec)
    if price is None:
        return None
    info = CATALOG[spec.provider]
    epochs = spec.hyperparameters.epochs or info.default_epochs
    tokens = training_tokens * epochs
    evals = spec.hyperparameters.n_evals or 0
    if validation_tokens and evals:
        tokens += validation_tokens * evals
    usd = max(price.minimum_usd, tokens / 1_000_000 * price.usd_per_million)
    minimum = f", ${price.minimum_usd:g} minimum" if price.minimum_usd else ""
    basis = (
        f"offline estimate: ~{tokens:,} tokens ({training_tokens:,} × {epochs} "
        f"epoch{'' if epochs == 1 else 's'}"
        f"{' + evals' if validation_tokens and evals else ''}) at "
        f"${price.usd_per_million:g}/1M{minimum}; list prices of {info.prices_as_of}"
    )
    return Estimate(round(usd, 4), tokens, basis)
