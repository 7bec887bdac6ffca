"""The emulator's OpenAI-shaped hosts: Azure OpenAI (``/azure/openai/v1`` and the dated
``/azure/openai/…?api-version=``) and Nebius (``/nebius/v1``), each OpenAI's routes with
its own rules — key header, statuses, fields, metadata filter, pause — and Azure's wire
format against the official extract (``azure-openai.yaml``)."""

from __future__ import annotations

from typing import Any

import emulator_fixtures as fx
import httpx
import pytest
from emulator_fixtures import CHAT_LINES, KEY, PREFERENCE_LINES, conforms, jsonl

from reconciler.emulator import EmulatorThread

emulator_server, emulator = fx.emulator_server, fx.emulator

AZ = "/azure/openai/v1"
AZ_DATED = "/azure/openai"
NB = "/nebius/v1"
AZ_MODEL = "gpt-4o-mini-2024-07-18"
NB_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def azure(emulator: EmulatorThread) -> Any:
    with httpx.Client(base_url=emulator.url, headers={"api-key": KEY}, timeout=10) as http:
        yield http


@pytest.fixture
def nebius(emulator: EmulatorThread) -> Any:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emulator.url, headers=headers, timeout=10) as http:
        yield http


def upload(http: httpx.Client, prefix: str, content: bytes | None = None, **params: str) -> str:
    answer = http.post(
        f"{prefix}/files",
        params=params,
        data={"purpose": "fine-tune"},
        files={"file": ("train.jsonl", content or jsonl(CHAT_LINES), "application/jsonl")},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def create(http: httpx.Client, prefix: str, status: int = 200, **body: Any) -> dict[str, Any]:
    params = body.pop("params", {})
    answer = http.post(f"{prefix}/fine_tuning/jobs", json=body, params=params)
    assert answer.status_code == status, answer.text
    job: dict[str, Any] = answer.json()
    return job


# ---------------------------------------------------------------- Azure


def test_azure_wants_the_api_key_header_not_a_bearer(emulator: EmulatorThread) -> None:
    bearer = httpx.get(
        f"{emulator.url}{AZ}/fine_tuning/jobs", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert bearer.status_code == 401
    assert "Access denied" in bearer.json()["error"]["message"]
    keyed = httpx.get(f"{emulator.url}{AZ}/fine_tuning/jobs", headers={"api-key": KEY})
    assert keyed.status_code == 200, keyed.text


def test_azure_job_lifecycle_conforms_and_lists_without_a_metadata_filter(
    emulator: EmulatorThread, azure: httpx.Client
) -> None:
    file_id = upload(azure, AZ)
    conforms("azure-openai", "AzureOpenAIFile", azure.get(f"{AZ}/files/{file_id}").json())
    job = create(
        azure,
        AZ,
        model=AZ_MODEL,
        training_file=file_id,
        suffix="bot-rc3f9a-0123456789a",
        metadata={"reconciler_tag": "rc3f9a-0123456789a"},
    )
    assert job["status"] == "pending" and job["user_provided_suffix"] == "bot-rc3f9a-0123456789a"
    other = create(azure, AZ, model=AZ_MODEL, training_file=file_id)
    # the v1 list has no metadata filter: both jobs come back, newest first
    listed = azure.get(f"{AZ}/fine_tuning/jobs", params={"metadata[reconciler_tag]": "x"}).json()
    assert [j["id"] for j in listed["data"]] == [other["id"], job["id"]]
    emulator.advance(6)
    queued = azure.get(f"{AZ}/fine_tuning/jobs/{job['id']}").json()
    assert queued["status"] == "queued"
    conforms("azure-openai", "OpenAI.FineTuningJob", queued)
    emulator.advance(4000)
    done = azure.get(f"{AZ}/fine_tuning/jobs/{job['id']}").json()
    assert done["status"] == "succeeded"
    assert done["fine_tuned_model"].startswith(f"{AZ_MODEL}.ft-")
    assert done["fine_tuned_model"].endswith("-bot-rc3f9a-0123456789a")
    conforms("azure-openai", "OpenAI.FineTuningJob", done)
    checkpoints = azure.get(f"{AZ}/fine_tuning/jobs/{job['id']}/checkpoints").json()
    conforms("azure-openai", "OpenAI.ListFineTuningJobCheckpointsResponse", checkpoints)
    events = azure.get(f"{AZ}/fine_tuning/jobs/{job['id']}/events").json()
    conforms("azure-openai", "OpenAI.ListFineTuningJobEventsResponse", events)


def test_azure_pause_and_resume(emulator: EmulatorThread, azure: httpx.Client) -> None:
    job = create(azure, AZ, model=AZ_MODEL, training_file=upload(azure, AZ))
    emulator.advance(11)
    paused = azure.post(f"{AZ}/fine_tuning/jobs/{job['id']}/pause").json()
    assert paused["status"] == "paused"
    assert azure.post(f"{AZ}/fine_tuning/jobs/{job['id']}/resume").json()["status"] == "running"


def test_azure_suffix_is_40_characters_and_uploads_api_is_absent(azure: httpx.Client) -> None:
    file_id = upload(azure, AZ)
    answer = azure.post(
        f"{AZ}/fine_tuning/jobs",
        json={"model": AZ_MODEL, "training_file": file_id, "suffix": "x" * 41},
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "suffix"
    assert azure.post(f"{AZ}/uploads", json={}).status_code == 404


def test_azure_training_type_only_on_the_dated_preview_surface(
    emulator: EmulatorThread, azure: httpx.Client
) -> None:
    file_id = upload(azure, AZ)
    refused = azure.post(
        f"{AZ}/fine_tuning/jobs",
        json={"model": AZ_MODEL, "training_file": file_id, "trainingType": "globalstandard"},
    )
    assert refused.status_code == 400 and "trainingType" in refused.text
    missing = azure.get(f"{AZ_DATED}/fine_tuning/jobs")
    assert missing.status_code == 400 and "api-version" in missing.text
    preview = {"api-version": "2025-04-01-preview"}
    job = create(
        azure,
        AZ_DATED,
        201,
        model=AZ_MODEL,
        training_file=file_id,
        trainingType="globalstandard",
        params=preview,
    )
    assert job["trainingType"] == "globalstandard"
    # one resource: the job is the same on both surfaces
    assert azure.get(f"{AZ}/fine_tuning/jobs/{job['id']}").json()["id"] == job["id"]
    dated = azure.get(
        f"{AZ_DATED}/fine_tuning/jobs/{job['id']}", params={"api-version": "2024-10-21"}
    )
    assert dated.status_code == 200


def test_azure_reads_past_a_byte_order_mark(emulator: EmulatorThread, azure: httpx.Client) -> None:
    file_id = upload(azure, AZ, BOM + jsonl(CHAT_LINES))
    job = create(azure, AZ, model=AZ_MODEL, training_file=file_id)
    emulator.advance(4000)
    assert azure.get(f"{AZ}/fine_tuning/jobs/{job['id']}").json()["status"] == "succeeded"


def test_azure_dpo(emulator: EmulatorThread, azure: httpx.Client) -> None:
    file_id = upload(azure, AZ, jsonl(PREFERENCE_LINES))
    job = create(
        azure,
        AZ,
        model="gpt-4o-2024-08-06",
        training_file=file_id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
    )
    emulator.advance(4000)
    assert azure.get(f"{AZ}/fine_tuning/jobs/{job['id']}").json()["status"] == "succeeded"


# ---------------------------------------------------------------- Nebius


def test_nebius_job_with_its_own_hyperparameters(
    emulator: EmulatorThread, nebius: httpx.Client
) -> None:
    file_id = upload(nebius, NB)
    hp = {"n_epochs": 2, "learning_rate": 1e-5, "lora": True, "lora_r": 8, "packing": True}
    job = create(
        nebius,
        NB,
        model=NB_MODEL,
        training_file=file_id,
        suffix="rc3f9a-0123456789a",
        method={"type": "supervised", "supervised": {"hyperparameters": hp}},
    )
    assert job["status"] == "validating_files" and job["suffix"] == "rc3f9a-0123456789a"
    assert "metadata" not in job and "fine_tuned_model" not in job
    emulator.advance(10 + 20)
    running = nebius.get(f"{NB}/fine_tuning/jobs/{job['id']}").json()
    assert running["status"] == "running" and 0 < running["trained_steps"] <= running["total_steps"]
    emulator.advance(4000)
    done = nebius.get(f"{NB}/fine_tuning/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["trained_steps"] == done["total_steps"]
    checkpoints = nebius.get(f"{NB}/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    assert checkpoints and checkpoints[0]["fine_tuned_model_checkpoint"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"metadata": {"a": "b"}}, "metadata"),
        ({"method": {"type": "dpo", "dpo": {}}}, "method"),
        ({"suffix": "x" * 65}, "suffix"),
    ],
)
def test_nebius_refuses_what_it_lacks_with_a_422(
    nebius: httpx.Client, body: dict[str, Any], loc: str
) -> None:
    file_id = upload(nebius, NB)
    answer = nebius.post(
        f"{NB}/fine_tuning/jobs", json={"model": NB_MODEL, "training_file": file_id, **body}
    )
    assert answer.status_code == 422, answer.text
    assert loc in answer.json()["detail"][0]["loc"]


def test_nebius_has_no_pause_and_accepts_instruction_data(
    emulator: EmulatorThread, nebius: httpx.Client
) -> None:
    lines = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(12)]
    job = create(nebius, NB, model=NB_MODEL, training_file=upload(nebius, NB, jsonl(lines)))
    assert nebius.post(f"{NB}/fine_tuning/jobs/{job['id']}/pause").status_code == 404
    emulator.advance(4000)
    assert nebius.get(f"{NB}/fine_tuning/jobs/{job['id']}").json()["status"] == "succeeded"
    assert nebius.post(f"{NB}/fine_tuning/jobs/{job['id']}/cancel").status_code == 400


def test_hosts_keep_their_objects_apart(nebius: httpx.Client, azure: httpx.Client) -> None:
    file_id = upload(nebius, NB)
    assert azure.get(f"{AZ}/files/{file_id}").status_code == 404
    assert (
        azure.get("/openai/v1/files", headers={"Authorization": f"Bearer {KEY}"}).json()["data"]
        == []
    )
