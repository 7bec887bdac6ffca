"""Local training's catalog entry (providers-next.md §4, DESIGN §13): TRL + peft on the
machine reconciler runs on. No key and no HTTP: the endpoint is an opt-in switch.

The driver pool builds an HTTP client for every provider from its ``Endpoint`` (a key
variable and an http(s) URL); local training reaches no server, so its key variable is
the switch ``RECONCILER_LOCAL_ENABLE`` (any value: training uses this machine's CPU or
GPU, which a spec alone should not start) and the URL is never called. Pure.
"""

from __future__ import annotations

from ...catalog import Capabilities, Endpoint, ProviderInfo
from ...datarules import PREFERENCE_ONLY, SFT_ALL, ProviderRules
from .estimate import estimate
from .mapping import DEFAULT_EPOCHS, PROVIDER, request_problems

ENABLE_VAR = "RECONCILER_LOCAL_ENABLE"
RUNS_VAR = "RECONCILER_LOCAL_RUNS"  # the runs folder (default: beside the ledger)

# TRL reads all four formats (§4.4): messages, prompt/completion and text for sft, the
# preference records (as prompt/chosen/rejected) for dpo
DATA_RULES = ProviderRules(
    name=PROVIDER,
    formats={"sft": SFT_ALL, "dpo": PREFERENCE_ONLY},
    refused={},
    min_training=1,
    min_validation=1,
    max_bytes=50 * 1000**3,  # the disk's limit, not an API's: a sanity bound
    advised_validation_bytes=None,
    roles=("system", "user", "assistant", "tool"),
    weights=False,  # TRL has no per-message weight
    tools=True,  # passed to the chat template
    functions=False,
    images=False,  # text models only
    preference_images=False,
    bare_image_urls=False,
    max_images=None,
    labels=False,
    byte_order_mark="accepted",  # the trainer reads with utf-8-sig
)

LOCAL = ProviderInfo(
    driver_env=True,
    name=PROVIDER,
    title="Local training (TRL + peft)",
    endpoint=Endpoint(
        ENABLE_VAR,
        "RECONCILER_LOCAL_URL",
        "http://127.0.0.1/v1",
        missing="set it (to 1) on the machine that should train provider: local jobs "
        "(they use this machine's CPU or GPU)",
    ),
    driver="reconciler.providers.local.client:LocalDriver",
    tag_field="run folder name",
    data_rules=DATA_RULES,
    request_problems=request_problems,
    default_epochs=DEFAULT_EPOCHS,
    # no list price: the time on this machine, at reconciler.yaml's local.gpu_hour_usd
    estimator=estimate,
    prices_as_of="local training",
    # `from: {job: X}` trains on from X's adapter (or full model, or checkpoint-<step>)
    capabilities=Capabilities(methods=("sft", "dpo"), continues_from_job=True, models_on_disk=True),
)
