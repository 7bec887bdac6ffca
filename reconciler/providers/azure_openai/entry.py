"""Azure OpenAI's catalog entry (providers-next.md §2): its own endpoint and key header,
OpenAI's data rules within Azure's limits, dated prices, and what the host can do."""

from __future__ import annotations

from dataclasses import replace

from ...catalog import Capabilities, Endpoint, Price, ProviderInfo
from ...datarules import MB
from ..openai.entry import DATA_RULES as OPENAI_RULES
from ..openai.mapping import MAX_BETA
from .mapping import MAX_SUFFIX, PROVIDER, request_problems

# §2.6: chat data (prompt/completion only for the retired completion models), at least
# 10 examples, under 512 MB a file through the API, and UTF-8 *with* a byte-order mark
# is what Microsoft's docs ask for: accepted, never refused
DATA_RULES = replace(OPENAI_RULES, name=PROVIDER, max_bytes=512 * MB, byte_order_mark="accepted")

_SOURCE = (
    "learn.microsoft.com Foundry fine-tuning cost management (2026-03-19), worked example: "
    "gpt-4.1 Global training; Standard is quoted ~10-30 % higher, the rate table is not captured"
)
# the first row whose model is part of the spec's model wins: "gpt-4.1-2025" is the
# full gpt-4.1 only (not -mini or -nano, whose rates were not captured)
PRICES = (Price(2.00, model="gpt-4.1-2025", source=_SOURCE),)

DEPLOY_NOTE = (
    "an Azure fine-tuned model is not callable until deployed: create a deployment of it "
    "(ARM PUT …/accounts/<resource>/deployments/<name>, Entra token, not the api-key) and "
    "call it by the deployment name"
)


AZURE_OPENAI = ProviderInfo(
    name=PROVIDER,
    title="Azure OpenAI",
    endpoint=Endpoint(
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_BASE_URL",
        "",  # every resource has its own host: https://RESOURCE.openai.azure.com/openai/v1
        auth_header="api-key",
        auth_scheme="",
        version_var="AZURE_OPENAI_API_VERSION",
        root="/openai",
    ),
    driver="reconciler.providers.azure_openai.client:AzureOpenAIDriver",
    tag_field="suffix",
    data_rules=DATA_RULES,
    request_problems=request_problems,
    default_epochs=3,
    prices=PRICES,
    prices_as_of="2026-03",
    # §2.3–2.5: DPO yes (gpt-4o, gpt-4.1 family), pause/resume yes, a fine-tuned model id
    # as the base continues training; the list has no metadata filter
    capabilities=Capabilities(pausable=True, continues_from_job=True, filters_by_tag=False),
    limits={"suffix": MAX_SUFFIX, "dpo_beta": MAX_BETA},
    deploy_note=DEPLOY_NOTE,
)
