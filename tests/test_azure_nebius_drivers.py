"""What the Azure OpenAI and Nebius hosts of the OpenAI driver do differently, at the
transport (``httpx.MockTransport``): the key header, the v1 and dated URL shapes, the tag
in the suffix and the tag lookup by listing, Nebius' own fields, what each host lacks
(refused by the catalog's request rules, or by the driver). No network."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.errors import ConfigError
from reconciler.model import CreateRequest, Phase
from reconciler.providers import CATALOG
from reconciler.providers.azure_openai.client import AzureOpenAIDriver
from reconciler.providers.http import ApiClient, make_http_client
from reconciler.providers.nebius.client import NebiusDriver

TAG = "rc3f9a-0123456789a"
KEY = "azure-SENTINEL-5e4d3c2b1a-KEY"
Handler = Callable[[httpx.Request], httpx.Response]


def driver(provider: str, env: dict[str, str], handler: Handler) -> Any:
    info = CATALOG[provider]
    http = make_http_client(info, env, transport=httpx.MockTransport(handler))
    cls = AzureOpenAIDriver if provider == "azure-openai" else NebiusDriver
    return cls(ApiClient(provider, http, sleep=lambda _: None), sleep=lambda _: None)


def job(status: str = "running", **over: Any) -> dict[str, Any]:
    body = {"object": "fine_tuning.job", "id": "ftjob-1", "status": status, "created_at": 1}
    return {**body, **over}


def request(**over: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "name": "bot",
        "tag": TAG,
        "model": "gpt-4o-mini-2024-07-18",
        "method": "sft",
        "training_file_id": "file-1",
    }
    return CreateRequest(**{**fields, **over})


AZ_V1 = {
    "AZURE_OPENAI_API_KEY": KEY,
    "AZURE_OPENAI_BASE_URL": "https://res.openai.azure.com/openai/v1",
}


# ---------------------------------------------------------------- Azure


@pytest.mark.parametrize(
    ("url", "version", "expected"),
    [
        (
            "https://res.openai.azure.com/openai/v1",
            None,
            "https://res.openai.azure.com/openai/v1/fine_tuning/jobs/ftjob-1",
        ),
        (
            "https://res.openai.azure.com/",
            None,
            "https://res.openai.azure.com/openai/v1/fine_tuning/jobs/ftjob-1",
        ),
        (
            "https://res.openai.azure.com/openai/v1",
            "2025-04-01-preview",
            "https://res.openai.azure.com/openai/fine_tuning/jobs/ftjob-1?api-version=2025-04-01-preview",
        ),
    ],
)
def test_azure_sends_the_api_key_header_on_the_url_shape_asked_for(
    url: str, version: str | None, expected: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=job())

    env = {"AZURE_OPENAI_API_KEY": KEY, "AZURE_OPENAI_BASE_URL": url}
    if version:
        env["AZURE_OPENAI_API_VERSION"] = version
    assert driver("azure-openai", env, handler).get_job("ftjob-1").phase is Phase.RUNNING
    assert str(seen[0].url) == expected
    assert seen[0].headers["api-key"] == KEY and "authorization" not in seen[0].headers


def test_azure_without_a_base_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AZURE_OPENAI_BASE_URL is not set"):
        driver("azure-openai", {"AZURE_OPENAI_API_KEY": KEY}, lambda r: httpx.Response(200))


def test_azure_tag_rides_in_the_suffix_and_is_found_by_listing() -> None:
    posted: list[dict[str, Any]] = []
    pages = {
        None: {"data": [job(id="ftjob-3"), job(id="ftjob-2")], "has_more": True},
        "ftjob-2": {
            "data": [job(id="ftjob-1", user_provided_suffix=f"bot-{TAG}")],
            "has_more": False,
        },
    }

    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            posted.append(json.loads(req.content))
            return httpx.Response(
                200, json=job("pending", user_provided_suffix=posted[-1]["suffix"])
            )
        assert not any(k.startswith("metadata") for k in req.url.params)  # no filter at Azure
        return httpx.Response(200, json=pages[req.url.params.get("after")])

    az = driver("azure-openai", AZ_V1, handler)
    created = az.create_job(request(suffix="bot"))
    assert posted[0]["suffix"] == f"bot-{TAG}" and created.tag == TAG
    assert created.phase is Phase.QUEUED  # Azure's "pending"
    assert [j.id for j in az.find_jobs_by_tag(TAG)] == ["ftjob-1"]


def test_azure_training_type_create_goes_to_the_preview_url() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(201, json=job("pending"))

    az = driver("azure-openai", AZ_V1, handler)
    az.create_job(request(options={"trainingType": "globalstandard"}))
    assert str(seen[0].url) == (
        "https://res.openai.azure.com/openai/fine_tuning/jobs?api-version=2025-04-01-preview"
    )
    assert json.loads(seen[0].content)["trainingType"] == "globalstandard"
    az.create_job(request())
    assert str(seen[1].url) == "https://res.openai.azure.com/openai/v1/fine_tuning/jobs"


def test_azure_pauses_and_its_rules_refuse_what_it_cannot_take() -> None:
    az = driver("azure-openai", AZ_V1, lambda r: httpx.Response(200, json=job("paused")))
    assert az.pause_job("ftjob-1").status == "paused"
    problems = CATALOG["azure-openai"].request_problems(
        request(suffix="a" * 22, lora={"r": 8}, options={"trainingType": "premium"})
    )
    assert any(p.startswith("suffix: at most 21 characters") for p in problems)
    assert any(p.startswith("lora:") for p in problems)
    assert any(p.startswith("options.trainingType:") for p in problems)
    assert CATALOG["azure-openai"].request_problems(request(method="dpo", dpo={"beta": 0.1})) == []
    info = CATALOG["azure-openai"]
    assert info.capabilities.pausable and not info.capabilities.filters_by_tag
    assert info.deploy_note and "deploy" in info.deploy_note
    assert info.data_rules.byte_order_mark == "accepted"


# ---------------------------------------------------------------- Nebius

NB_ENV = {"NEBIUS_API_KEY": "nb-SENTINEL-KEY"}


def test_nebius_sends_its_own_fields_with_a_bearer_key() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=job("validating_files", suffix=f"v3-{TAG}"))

    nb = driver("nebius", NB_ENV, handler)
    created = nb.create_job(
        request(
            model="meta-llama/Llama-3.1-8B-Instruct",
            suffix="v3",
            lora={"r": 16, "alpha": 32.0, "dropout": 0.05},
            hyperparameters={"epochs": 2, "learning_rate": 1e-5, "max_seq_length": 4096},
            options={"packing": True},
        )
    )
    assert str(seen[0].url) == "https://api.tokenfactory.nebius.com/v1/fine_tuning/jobs"
    assert seen[0].headers["authorization"] == "Bearer nb-SENTINEL-KEY"
    body = json.loads(seen[0].content)
    assert "metadata" not in body and "packing" not in body
    assert body["suffix"] == f"v3-{TAG}"
    assert body["method"] == {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {
                "n_epochs": 2,
                "learning_rate": 1e-5,
                "context_length": 4096,
                "lora": True,
                "lora_r": 16,
                "lora_alpha": 32,
                "lora_dropout": 0.05,
                "packing": True,
            }
        },
    }
    assert created.tag == TAG and created.phase is Phase.VALIDATING


def test_nebius_progress_from_step_counts_and_full_fine_tune() -> None:
    nb = driver(
        "nebius", NB_ENV, lambda r: httpx.Response(200, json=job(trained_steps=3, total_steps=9))
    )
    assert nb.get_job("ftjob-1").progress == "step 3/9"
    problems = CATALOG["nebius"].request_problems(request(lora=False))
    assert problems == []


def test_nebius_lacks_dpo_pause_and_the_multiplier() -> None:
    problems = CATALOG["nebius"].request_problems(
        request(
            method="dpo",
            hyperparameters={"learning_rate_multiplier": 2.0},
            suffix="s" * 46,
            options={"packing": "yes", "metadata": {"a": "b"}},
        )
    )
    assert any(p.startswith("method: nebius supports sft") for p in problems)
    assert any("use hyperparameters.learning_rate" in p for p in problems)
    assert any(p.startswith("suffix: at most 45 characters") for p in problems)
    assert "options.packing: bool at nebius" in problems
    assert "options.metadata: nebius jobs have no metadata" in problems
    nb = driver("nebius", NB_ENV, lambda r: httpx.Response(500))
    with pytest.raises(ConfigError, match="nebius cannot pause jobs"):
        nb.pause_job("ftjob-1")
    info = CATALOG["nebius"]
    assert info.capabilities.methods == ("sft",) and not info.capabilities.pausable
