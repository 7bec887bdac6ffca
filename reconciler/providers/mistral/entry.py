"""Mistral's catalog entry: endpoint, data-file rules, prices, limits, capabilities."""

from __future__ import annotations

from ...catalog import Capabilities, Endpoint, Price, ProviderInfo
from ...datarules import CHAT, MB, DataFormat, ProviderRules
from .mapping import MAX_SUFFIX, request_problems

# §4.2–4.3: messages (OpenAI format accepted), or classifier records with labels;
# no documented minimum; 512 MB a file; a validation file should stay within 1 MB
DATA_RULES = ProviderRules(
    name="mistral",
    formats={"sft": frozenset({CHAT, DataFormat.TEXT})},
    refused={
        DataFormat.INSTRUCTION: "mistral does not accept instruction (prompt/completion)"
        " data: use messages",
        DataFormat.PREFERENCE: "mistral does not accept preference data (it has no DPO):"
        " use messages with method sft",
    },
    min_training=1,
    min_validation=1,
    max_bytes=512 * MB,
    advised_validation_bytes=1 * MB,
    roles=("system", "user", "assistant", "tool"),
    weights=True,  # OpenAI-format data is accepted, weights included
    tools=True,
    functions=False,
    images=True,  # pixtral
    preference_images=False,
    bare_image_urls=True,  # its documented shape: "image_url": "data:image/…"
    max_images=None,
    labels=True,
    # undocumented: refused until Mistral says (a re-save beats a failed upload)
    byte_order_mark="unknown",
)

_SOURCE = "mistral.ai pricing, per 1M training tokens, $4 minimum per job"

# by base model: the first row whose name is part of the spec's model wins
PRICES = (
    Price(1.00, model="open-mistral-7b", minimum_usd=4.0, source=_SOURCE),
    Price(1.00, model="open-mistral-nemo", minimum_usd=4.0, source=_SOURCE),
    Price(1.00, model="ministral", minimum_usd=4.0, source=_SOURCE),
    Price(3.00, model="mistral-small", minimum_usd=4.0, source=_SOURCE),
    Price(3.00, model="codestral", minimum_usd=4.0, source=_SOURCE),
    Price(9.00, model="mistral-large", minimum_usd=4.0, source=_SOURCE),
    Price(2.00, model="pixtral-12b", minimum_usd=4.0, source=_SOURCE),
)

MISTRAL = ProviderInfo(
    name="mistral",
    title="Mistral",
    endpoint=Endpoint("MISTRAL_API_KEY", "MISTRAL_BASE_URL", "https://api.mistral.ai/v1"),
    driver="reconciler.providers.mistral.client:MistralDriver",
    tag_field="suffix",
    data_rules=DATA_RULES,
    request_problems=request_problems,
    default_epochs=1,
    prices=PRICES,
    prices_as_of="2026-11",
    # providers.md §1.2, §4.4: no from_checkpoint, the create takes a base model only
    capabilities=Capabilities(
        parks_after_validation=True, continues_from_job=False, methods=("sft",)
    ),
    limits={"suffix": MAX_SUFFIX},
)
