"""Together AI's catalog entry: endpoint, data-file rules, prices, limits, capabilities."""

from __future__ import annotations

from ...catalog import Capabilities, Endpoint, Price, ProviderInfo
from ...datarules import PREFERENCE_ONLY, SFT_ALL, ProviderRules
from .payload import MAX_SUFFIX, MAX_USER_SUFFIX, request_problems

# §3.2–3.3: all four formats; the SDK's client-side minimum is 1 sample and its size
# limit 50.1 GB (the guide's 100 GB conflicts: the lower figure wins)
DATA_RULES = ProviderRules(
    name="together",
    formats={"sft": SFT_ALL, "dpo": PREFERENCE_ONLY},
    refused={},
    min_training=1,
    min_validation=1,
    max_bytes=50_100_000_000,
    advised_validation_bytes=None,
    roles=("system", "user", "assistant", "tool"),
    weights=True,  # its file report counts dataset_has_message_weights
    tools=True,
    functions=False,
    images=True,
    preference_images=True,
    bare_image_urls=True,
    max_images=10,
    labels=False,
    # the SDK's check (together/lib/utils/files.py) json.loads each line of the text: a
    # byte-order mark fails it, and the SDK checks before every upload
    byte_order_mark="refused",
)

_SOURCE = "together.ai/pricing, list prices per 1M training tokens (verify: they change)"

# model size brackets × LoRA/full × SFT/DPO
PRICES = (
    Price(0.48, "sft", False, 16, source=_SOURCE),
    Price(1.50, "sft", False, 69, source=_SOURCE),
    Price(2.90, "sft", False, 100, source=_SOURCE),
    Price(0.54, "sft", True, 16, source=_SOURCE),
    Price(1.65, "sft", True, 69, source=_SOURCE),
    Price(3.20, "sft", True, 100, source=_SOURCE),
    Price(1.20, "dpo", False, 16, source=_SOURCE),
    Price(3.75, "dpo", False, 69, source=_SOURCE),
    Price(7.25, "dpo", False, 100, source=_SOURCE),
    Price(1.35, "dpo", True, 16, source=_SOURCE),
    Price(4.12, "dpo", True, 69, source=_SOURCE),
    Price(8.00, "dpo", True, 100, source=_SOURCE),
)

TOGETHER = ProviderInfo(
    name="together",
    title="Together AI",
    endpoint=Endpoint("TOGETHER_API_KEY", "TOGETHER_BASE_URL", "https://api.together.ai/v1"),
    driver="reconciler.providers.together.client:TogetherDriver",
    tag_field="suffix",
    data_rules=DATA_RULES,
    request_problems=request_problems,
    default_epochs=1,
    prices=PRICES,
    prices_as_of="2026-11",
    capabilities=Capabilities(estimates_price=True, continues_from_job=True),
    limits={"suffix": MAX_SUFFIX, "user_suffix": MAX_USER_SUFFIX},
)
