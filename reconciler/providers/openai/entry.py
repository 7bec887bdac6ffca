"""OpenAI's catalog entry: endpoint, data-file rules, prices, limits, capabilities."""

from __future__ import annotations

from ...catalog import Capabilities, Endpoint, Price, ProviderInfo
from ...datarules import CHAT, MB, PREFERENCE_ONLY, DataFormat, ProviderRules
from .mapping import MAX_BETA, MAX_SUFFIX, request_problems

# §2.2–2.3: chat (and legacy prompt/completion, which only babbage-002/davinci-002
# train on: the model check lives with the provider rules), preference for DPO;
# at least 10 examples; 512 MB a file; DPO is text-only
DATA_RULES = ProviderRules(
    name="openai",
    formats={"sft": frozenset({CHAT, DataFormat.INSTRUCTION}), "dpo": PREFERENCE_ONLY},
    refused={
        DataFormat.TEXT: "openai does not accept text data: use messages"
        " (or prompt+completion for babbage-002 and davinci-002)",
    },
    min_training=10,
    min_validation=1,
    max_bytes=8 * 1024 * MB,  # the Uploads API takes up to 8 GB (files API: 512 MB)
    advised_validation_bytes=None,
    roles=("system", "user", "assistant", "tool", "function"),
    weights=True,
    tools=True,
    functions=True,
    images=True,
    preference_images=False,
    bare_image_urls=False,
    max_images=None,
    labels=False,
    # undocumented at OpenAI; Azure OpenAI, the same fine-tuning service, documents its
    # JSONL as UTF-8 with a byte-order mark (providers-next.md §2.6)
    byte_order_mark="accepted",
)

_SOURCE = "openai.com/api/pricing, training tokens (unverified third-party figures for 4o)"

# by base model: the first row whose name is part of the spec's model wins
PRICES = (
    Price(1.50, model="gpt-4.1-nano", source=_SOURCE),
    Price(5.00, model="gpt-4.1-mini", source=_SOURCE),
    Price(25.00, model="gpt-4.1", source=_SOURCE),
    Price(3.00, model="gpt-4o-mini", source=_SOURCE),
    Price(25.00, model="gpt-4o", source=_SOURCE),
    Price(8.00, model="gpt-3.5-turbo", source=_SOURCE),
)

OPENAI = ProviderInfo(
    name="openai",
    title="OpenAI",
    endpoint=Endpoint("OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
    driver="reconciler.providers.openai.client:OpenAIDriver",
    tag_field="metadata.reconciler_tag",
    data_rules=DATA_RULES,
    request_problems=request_problems,
    default_epochs=3,
    prices=PRICES,
    prices_as_of="2026-11",
    capabilities=Capabilities(pausable=True, continues_from_job=True, filters_by_tag=True),
    limits={"suffix": MAX_SUFFIX, "dpo_beta": MAX_BETA},
)
