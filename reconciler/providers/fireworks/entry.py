"""Fireworks AI's catalog entry: endpoint, data-file rules, prices, limits, capabilities."""

from __future__ import annotations

from ...catalog import Capabilities, Endpoint, Price, ProviderInfo
from ...datarules import CHAT, PREFERENCE_ONLY, DataFormat, ProviderRules
from .mapping import MAX_ID, MAX_LORA_RANK, SMALL_UPLOAD, request_problems

# the account every path carries (accounts/<id>/…): the SDK's variable (§1.1)
ACCOUNT_VAR = "FIREWORKS_ACCOUNT_ID"

# §1.2: chat rows (OpenAI-compatible, per-message weight 0|1, tools) for SFT, the
# OpenAI preference shape for DPO; 3 to 3,000,000 examples; .jsonl only; images only as
# base64 data URIs (a bare URL string is refused)
DATA_RULES = ProviderRules(
    name="fireworks",
    formats={"sft": frozenset({CHAT}), "dpo": PREFERENCE_ONLY},
    refused={
        DataFormat.INSTRUCTION: "fireworks SFT takes chat data: use messages",
        DataFormat.TEXT: "fireworks SFT takes chat data: use messages",
    },
    min_training=3,
    min_validation=3,
    # one dataset file through the signed-URL upload; the docs advise the UI below 500 MB
    max_bytes=50 * 1000 * 1000 * 1000,
    advised_validation_bytes=None,
    roles=("system", "user", "assistant", "tool"),
    weights=True,
    tools=True,
    functions=False,
    images=True,
    preference_images=False,
    bare_image_urls=False,
    max_images=None,
    labels=False,
    byte_order_mark="unknown",  # undocumented: refused before upload, not at the provider
)

_SOURCE = (
    "fireworks.ai/pricing, undated 2024-era snapshot per 1M training tokens (current rates "
    "not found: :estimateCost is asked per job)"
)

# model size brackets; DPO is billed per training token like SFT (no separate rate seen)
PRICES = (
    Price(0.50, "sft", False, 16, source=_SOURCE),
    Price(3.00, "sft", False, 80, source=_SOURCE),
    Price(0.50, "dpo", False, 16, source=_SOURCE + "; DPO assumed at the SFT rate"),
    Price(3.00, "dpo", False, 80, source=_SOURCE + "; DPO assumed at the SFT rate"),
)

FIREWORKS = ProviderInfo(
    driver_env=True,
    name="fireworks",
    title="Fireworks AI",
    endpoint=Endpoint("FIREWORKS_API_KEY", "FIREWORKS_BASE_URL", "https://api.fireworks.ai/v1"),
    driver="reconciler.providers.fireworks.client:FireworksDriver",
    tag_field="supervisedFineTuningJobId / dpoJobId (the job id) and outputModel",
    data_rules=DATA_RULES,
    request_problems=request_problems,
    default_epochs=1,
    prices=PRICES,
    prices_as_of="2024 (undated snapshot)",
    # `from: {job: X}` starts from X's LoRA model (warmStartFrom); :estimateCost prices a
    # create; :resume exists for failed jobs but there is no pause, so not `pausable`
    capabilities=Capabilities(estimates_price=True, continues_from_job=True),
    limits={"job_id": MAX_ID, "lora_r": MAX_LORA_RANK, "small_upload_bytes": SMALL_UPLOAD},
)
