"""Cost estimates before anyone pays: tokens from the data files, times epochs, times a
price table kept here as data, with its date and source.

Offline and approximate by design: token counts are characters / 4, and the prices are
list prices that change. ``plan`` says so next to every figure. Where a provider can
price a job itself (Together's estimate-price, Mistral's validated job), apply and an
online plan use that instead. Pure module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .spec import JobSpec

PRICES_AS_OF = "2026-11"


@dataclass(frozen=True)
class Price:
    provider: str
    usd_per_million: float  # per training token (tokens × epochs)
    method: str = "sft"  # sft | dpo
    full: bool = False  # full fine-tune (True) or LoRA (False); ignored where not offered
    max_params_b: float | None = None  # Together prices by model size bracket
    model: str | None = None  # a model-name substring (OpenAI, Mistral)
    minimum_usd: float = 0.0
    source: str = ""


_TG = "together.ai/pricing, list prices per 1M training tokens (verify: they change)"
_OA = "openai.com/api/pricing, training tokens (unverified third-party figures for 4o)"
_MI = "mistral.ai pricing, per 1M training tokens, $4 minimum per job"

# Searched in order: the first matching row wins.
PRICES: tuple[Price, ...] = (
    # Together: model size brackets × LoRA/full × SFT/DPO
    Price("together", 0.48, "sft", False, 16, source=_TG),
    Price("together", 1.50, "sft", False, 69, source=_TG),
    Price("together", 2.90, "sft", False, 100, source=_TG),
    Price("together", 0.54, "sft", True, 16, source=_TG),
    Price("together", 1.65, "sft", True, 69, source=_TG),
    Price("together", 3.20, "sft", True, 100, source=_TG),
    Price("together", 1.20, "dpo", False, 16, source=_TG),
    Price("together", 3.75, "dpo", False, 69, source=_TG),
    Price("together", 7.25, "dpo", False, 100, source=_TG),
    Price("together", 1.35, "dpo", True, 16, source=_TG),
    Price("together", 4.12, "dpo", True, 69, source=_TG),
    Price("together", 8.00, "dpo", True, 100, source=_TG),
    # OpenAI: by base model
    Price("openai", 1.50, model="gpt-4.1-nano", source=_OA),
    Price("openai", 5.00, model="gpt-4.1-mini", source=_OA),
    Price("openai", 25.00, model="gpt-4.1", source=_OA),
    Price("openai", 3.00, model="gpt-4o-mini", source=_OA),
    Price("openai", 25.00, model="gpt-4o", source=_OA),
    Price("openai", 8.00, model="gpt-3.5-turbo", source=_OA),
    # Mistral: by base model, $4 minimum per job
    Price("mistral", 1.00, model="open-mistral-7b", minimum_usd=4.0, source=_MI),
    Price("mistral", 1.00, model="open-mistral-nemo", minimum_usd=4.0, source=_MI),
    Price("mistral", 1.00, model="ministral", minimum_usd=4.0, source=_MI),
    Price("mistral", 3.00, model="mistral-small", minimum_usd=4.0, source=_MI),
    Price("mistral", 3.00, model="codestral", minimum_usd=4.0, source=_MI),
    Price("mistral", 9.00, model="mistral-large", minimum_usd=4.0, source=_MI),
    Price("mistral", 2.00, model="pixtral-12b", minimum_usd=4.0, source=_MI),
)

# epochs a provider runs when the spec leaves them unset
DEFAULT_EPOCHS = {"together": 1, "openai": 3, "mistral": 1}

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])")


@dataclass(frozen=True)
class Estimate:
    usd: float
    tokens: int  # tokens billed: training tokens × epochs (+ evaluations)
    basis: str  # how the figure was reached, in one line


def model_size_b(model: str) -> float | None:
    """Parameters in billions read from a model name (``Meta-Llama-3.1-8B`` → 8)."""
    sizes = [float(m) for m in _SIZE.findall(model)]
    return max(sizes) if sizes else None


def _price_for(spec: JobSpec) -> Price | None:
    full = spec.lora is False
    size = model_size_b(spec.model)
    for price in PRICES:
        if price.provider != spec.provider:
            continue
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
    spec: JobSpec, training_tokens: int, validation_tokens: int | None = None
) -> Estimate | None:
    """An offline estimate for one job, or None when no price is known for its model."""
    price = _price_for(spec)
    if price is None:
        return None
    epochs = spec.hyperparameters.epochs or DEFAULT_EPOCHS.get(spec.provider, 1)
    tokens = training_tokens * epochs
    evals = spec.hyperparameters.n_evals or 0
    if validation_tokens and evals:
        tokens += validation_tokens * evals
    usd = max(price.minimum_usd, tokens / 1_000_000 * price.usd_per_million)
    minimum = f", ${price.minimum_usd:g} minimum" if price.minimum_usd else ""
    basis = (
        f"offline estimate: ~{tokens:,} tokens ({training_tokens:,} × {epochs} epochs"
        f"{' + evals' if validation_tokens and evals else ''}) at "
        f"${price.usd_per_million:g}/1M{minimum}; list prices of {PRICES_AS_OF}"
    )
    return Estimate(round(usd, 4), tokens, basis)
