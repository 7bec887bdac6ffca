"""Fireworks' driver at the transport (respx): ids derived from the tag, a 409 adopted,
a lost answer read back by id, page tokens, cancel's empty answer, the account variable,
and the pure mapping (states, payloads, refusals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from reconciler.errors import ConfigError, ProviderError
from reconciler.model import CreateRequest, Phase
from reconciler.providers import CATALOG
from reconciler.providers.fireworks import mapping
from reconciler.providers.fireworks.client import FireworksDriver
from reconciler.providers.http import ApiClient, make_http_client

BASE = "https://api.fireworks.test/v1/"
KEY = "fw-SENTINEL-5e4d3c2b1a-KEY"
TAG = "rc3f9a-0123456789a"
ACCT = "acme"
SFT = f"accounts/{ACCT}/supervisedFineTuningJobs"
DPO = f"accounts/{ACCT}/dpoJobs"
DATASET = f"accounts/{ACCT}/datasets/rc-0123"


def driver(router: respx.MockRouter, **options: Any) -> FireworksDriver:
    env = {"FIREWORKS_API_KEY": KEY, "FIREWORKS_BASE_URL": "https://api.fireworks.test"}
    http = make_http_client(
        CATALOG["fireworks"], env, transport=httpx.MockTransport(router.handler)
    )
    options.setdefault("account", ACCT)
    return FireworksDriver(
        ApiClient("fireworks", http, sleep=lambda s: None), sleep=lambda s: None, **options
    )


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(base_url=BASE, assert_all_called=False)


def request(**over: Any) -> CreateRequest:
    base: dict[str, Any] = {
        "name": "support-bot",
        "tag": TAG,
        "model": "qwen3-8b",
        "method": "sft",
        "training_file_id": DATASET,
    }
    return CreateRequest(**{**base, **over})


def job(name: str, state: str = "JOB_STATE_PENDING", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "dataset": DATASET,
        "createTime": "2026-12-01T10:00:00Z",
        **extra,
    }


def not_found(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        404, json={"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
    )


def test_job_ids_are_the_tag_then_numbered() -> None:
    assert mapping.job_id_for(TAG) == TAG
    assert mapping.job_id_for(TAG, 3) == f"{TAG}-3"
    assert mapping.tag_of_id(f"{SFT}/{TAG}-3") == (TAG, 3)
    assert mapping.tag_of_id(f"{SFT}/somebody-else") is None
    assert all(mapping.is_id(mapping.job_id_for(TAG, n)) for n in (1, 99))


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ("JOB_STATE_CREATING", Phase.QUEUED),
        ("JOB_STATE_VALIDATING", Phase.VALIDATING),
        ("JOB_STATE_WRITING_RESULTS", Phase.RUNNING),
        ("JOB_STATE_CANCELLING", Phase.CANCELLING),
        ("JOB_STATE_EARLY_STOPPED", Phase.SUCCEEDED),
        ("JOB_STATE_EXPIRED", Phase.FAILED),
        ("JOB_STATE_DELETED", Phase.CANCELLED),
        ("JOB_STATE_SOMETHING_NEW", Phase.UNKNOWN),
    ],
)
def test_states_map_to_phases(state: str, phase: Phase) -> None:
    assert mapping.phase_for(state) is phase


def test_a_finished_job_names_its_model_and_cost() -> None:
    cost = {"currencyCode": "USD", "units": "2", "nanos": 500_000_000}
    got = mapping.job_from_wire(
        job(f"{SFT}/{TAG}", "JOB_STATE_COMPLETED", outputModel=TAG, estimatedCost=cost)
    )
    assert (got.phase, got.tag, got.cost_usd) == (Phase.SUCCEEDED, TAG, 2.5)
    assert got.fine_tuned_model == f"accounts/{ACCT}/models/{TAG}"
    failed = mapping.job_from_wire(
        job(f"{SFT}/{TAG}", "JOB_STATE_FAILED", status={"code": "INTERNAL", "message": "boom"})
    )
    assert (failed.error, failed.error_retryable) == ("boom", True)


def test_payloads_and_refusals() -> None:
    body = mapping.create_payload(
        request(lora={"r": 16}, hyperparameters={"epochs": 2, "batch_size": 8}), TAG
    )
    assert body["baseModel"] == "accounts/fireworks/models/qwen3-8b"
    assert (body["outputModel"], body["epochs"], body["batchSizeSamples"], body["loraRank"]) == (
        TAG,
        2,
        8,
        16,
    )
    dpo = mapping.create_payload(
        request(method="dpo", dpo={"beta": 0.2}, lora={"r": 8, "alpha": 16}), TAG
    )
    assert dpo["lossConfig"] == {"method": "DPO", "dpo": {"beta": 0.2}}
    assert dpo["trainingConfig"]["loraAlpha"] == 16
    problems = mapping.request_problems(
        request(
            lora={"r": 12, "alpha": 8},
            hyperparameters={"warmup_ratio": 0.1},
            options={"outputModel": "x"},
        )
    )
    assert problems == [
        "hyperparameters.warmup_ratio: no equivalent at fireworks",
        "lora.alpha: no equivalent at fireworks for sft",
        "lora.r: a power of 2 up to 32 at fireworks",
        "options.outputModel: set by reconciler, use the spec field instead",
    ]
    assert mapping.request_problems(request(lora=False)) == [
        "lora: fireworks trains LoRA adapters only (no full fine-tune)"
    ]


def test_create_posts_once_with_the_tag_as_id(router: respx.MockRouter) -> None:
    router.get(path__regex=r".*/(supervisedFineTuningJobs|dpoJobs)/.*").mock(side_effect=not_found)
    post = router.post(SFT).mock(return_value=httpx.Response(200, json=job(f"{SFT}/{TAG}")))
    got = driver(router).create_job(request())
    assert post.call_count == 1
    sent = post.calls[0].request
    assert sent.url.params["supervisedFineTuningJobId"] == TAG
    assert json.loads(sent.content)["outputModel"] == TAG
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert (got.id, got.tag) == (f"{SFT}/{TAG}", TAG)


def test_a_second_attempt_takes_the_next_id(router: respx.MockRouter) -> None:
    router.get(f"{SFT}/{TAG}").mock(
        return_value=httpx.Response(200, json=job(f"{SFT}/{TAG}", "JOB_STATE_FAILED"))
    )
    router.get(path__regex=rf".*/{TAG}-2$").mock(side_effect=not_found)
    router.get(f"{DPO}/{TAG}").mock(side_effect=not_found)
    post = router.post(SFT).mock(return_value=httpx.Response(200, json=job(f"{SFT}/{TAG}-2")))
    drv = driver(router)
    assert [j.id for j in drv.find_jobs_by_tag(TAG)] == [f"{SFT}/{TAG}"]
    assert drv.create_job(request()).id == f"{SFT}/{TAG}-2"
    assert post.calls[0].request.url.params["supervisedFineTuningJobId"] == f"{TAG}-2"


def test_409_adopts_the_existing_job(router: respx.MockRouter) -> None:
    reads = iter(
        [not_found, lambda r: httpx.Response(200, json=job(f"{SFT}/{TAG}", "JOB_STATE_RUNNING"))]
    )
    router.get(f"{SFT}/{TAG}").mock(side_effect=lambda r: next(reads)(r))
    router.get(path__regex=r".*/dpoJobs/.*").mock(side_effect=not_found)
    conflict = {"error": {"code": 409, "message": "already exists", "status": "ALREADY_EXISTS"}}
    post = router.post(SFT).mock(return_value=httpx.Response(409, json=conflict))
    got = driver(router).create_job(request())
    assert post.call_count == 1 and got.phase is Phase.RUNNING


def test_a_lost_answer_is_read_back_by_id(router: respx.MockRouter) -> None:
    reads = iter([not_found, lambda r: httpx.Response(200, json=job(f"{SFT}/{TAG}"))])
    router.get(f"{SFT}/{TAG}").mock(side_effect=lambda r: next(reads)(r))
    router.get(path__regex=r".*/dpoJobs/.*").mock(side_effect=not_found)
    post = router.post(SFT).mock(side_effect=httpx.ReadTimeout("lost"))
    assert driver(router).create_job(request()).id == f"{SFT}/{TAG}"
    assert post.call_count == 1


def test_a_lost_answer_with_no_job_stays_ambiguous(router: respx.MockRouter) -> None:
    router.get(path__regex=r".*Jobs/.*").mock(side_effect=not_found)
    router.post(SFT).mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(ProviderError) as caught:
        driver(router).create_job(request())
    assert caught.value.ambiguous


def test_list_follows_page_tokens(router: respx.MockRouter) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("pageToken") == "t2":
            return httpx.Response(200, json={"supervisedFineTuningJobs": [job(f"{SFT}/b")]})
        return httpx.Response(
            200, json={"supervisedFineTuningJobs": [job(f"{SFT}/a")], "nextPageToken": "t2"}
        )

    router.get(SFT).mock(side_effect=page)
    router.get(DPO).mock(return_value=httpx.Response(200, json={}))
    assert [j.id for j in driver(router).list_jobs()] == [f"{SFT}/a", f"{SFT}/b"]


def test_cancel_answers_with_the_job(router: respx.MockRouter) -> None:
    router.post(f"{SFT}/{TAG}:cancel").mock(return_value=httpx.Response(200, json={}))
    router.get(f"{SFT}/{TAG}").mock(
        return_value=httpx.Response(200, json=job(f"{SFT}/{TAG}", "JOB_STATE_CANCELLING"))
    )
    assert driver(router).cancel_job(f"{SFT}/{TAG}").phase is Phase.CANCELLING


def test_upload_creates_the_dataset_then_uploads(router: respx.MockRouter, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n' * 3)
    sha = "ab" * 32
    name = f"accounts/{ACCT}/datasets/{mapping.dataset_id_for(sha)}"
    created = router.post(f"accounts/{ACCT}/datasets").mock(
        return_value=httpx.Response(200, json={"name": name, "state": "UPLOADING"})
    )
    upload = router.post(f"{name}:upload").mock(return_value=httpx.Response(200, json={"id": "x"}))
    router.get(name).mock(return_value=httpx.Response(200, json={"name": name, "state": "READY"}))
    got = driver(router).upload_file(path, sha)
    assert got.id == name and upload.call_count == 1
    body = json.loads(created.calls[0].request.content)
    assert body["dataset"]["exampleCount"] == "3" and body["dataset"]["format"] == "CHAT"


def test_a_missing_account_names_the_variable(router: respx.MockRouter) -> None:
    drv = driver(router, account=None, env={})
    with pytest.raises(ConfigError, match="FIREWORKS_ACCOUNT_ID is not set"):
        drv.get_job(TAG)


def test_wandb_is_wandb_config_and_together_only_keys_are_refused() -> None:
    req = request(wandb={"project": "support", "name": "run-3", "api_key": "wb-key"})
    body = mapping.create_payload(req, "rcseu1-0123456789a")
    assert body["wandbConfig"] == {
        "enabled": True,
        "project": "support",
        "runId": "run-3",
        "apiKey": "wb-key",
    }
    assert "wandbConfig" not in mapping.estimate_payload("ds-1", req)  # never priced or resent
    assert mapping.request_problems(req) == []
    refused = mapping.request_problems(
        request(
            wandb={"project": "p", "base_url": "https://wandb.example"},
            huggingface={"model": "acme/x"},
            from_step=40,
        )
    )
    assert "wandb.base_url: no equivalent at fireworks" in refused
    assert "huggingface: no equivalent at fireworks" in refused
    assert "from.step: no equivalent at fireworks" in refused
