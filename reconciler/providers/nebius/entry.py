"""Nebius Token Factory's catalog entry (providers-next.md §3): endpoint, data rules,
the dated price, and what the host lacks (DPO, pause, metadata, continuing from a job)."""

from __future__ import annotations

from ...catalog import Capabilities, Endpoint, Price, ProviderInfo
from ...datarules import SFT_ALL, DataFormat, ProviderRules
from .mapping import MAX_SUFFIX, PROVIDER, request_problems

# §3.2: conversational (the last message an assistant's, tool calls included),
# prompt/completion and text records; 5 GB a file (the older, lower of two figures)
DATA_RULES = ProviderRules(
    name=PROVIDER,
    formats={"sft": SFT_ALL},  # no dpo: refused at spec.method by the request rules
    refused={DataFormat.PREFERENCE: "nebius trains supervised only: no preference data"},
    min_training=1,
    min_validation=1,
    max_bytes=5 * 1000**3,
    advised_validation_bytes=None,
    roles=("system", "user", "assistant", "tool"),
    weights=False,  # not documented
    tools=True,
    functions=False,
    images=False,
    preference_images=False,
    bare_image_urls=False,
    max_images=None,
    labels=False,
    byte_order_mark="unknown",  # undocumented: refused until Nebius says
)

_SOURCE = (
    "nebius/token-factory-cookbook fine_tune_llama.ipynb (job run 2025-12-11): "
    "$0.40 per 1M trained tokens for models under 20B; larger brackets not seen"
)
PRICES = (Price(0.40, max_params_b=20, source=_SOURCE),)

DEPLOY_NOTE = (
    "a Nebius job's result is a set of checkpoints: serve one by registering it "
    '(POST https://api.tokenfactory.nebius.com/v0/models with "source": '
    '"<job id>:<checkpoint id>") and call the name it returns'
)

NEBIUS = ProviderInfo(
    name=PROVIDER,
    title="Nebius Token Factory",
    endpoint=Endpoint(
        "NEBIUS_API_KEY", "NEBIUS_BASE_URL", "https://api.tokenfactory.nebius.com/v1"
    ),
    driver="reconciler.providers.nebius.client:NebiusDriver",
    tag_field="suffix",
    data_rules=DATA_RULES,
    request_problems=request_problems,
    default_epochs=3,  # the docs' example; the server default is not documented
    prices=PRICES,
    prices_as_of="2025-12",
    # from_checkpoint names a Hugging Face repository, never another Nebius job
    capabilities=Capabilities(methods=("sft",)),
    limits={"suffix": MAX_SUFFIX},
    deploy_note=DEPLOY_NOTE,
)
