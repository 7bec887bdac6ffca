"""The emulator's Together API: wire format against the official OpenAPI extract, the
signed-URL upload flow, job lifecycle on a stepped clock, request validation, and the
official SDK and our own driver talking to it."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import emulator_fixtures as fx
import httpx
import pytest
from emulator_fixtures import (
    CHAT_LINES,
    KEY,
    PREFERENCE_LINES,
    TG,
    TOGETHER_MODEL,
    conforms,
    conforms_to_path,
    jsonl,
    tg_create,
    tg_ready_file,
    tg_status,
    tg_upload,
)

from reconciler.emulator import EmulatorThread
from reconciler.model import CreateRequest, Phase
from reconciler.providers.pool import DriverPool

# the shared fixtures, bound here (tests/conftest.py belongs to the rest of the suite)
emulator_server, emulator, client, chat_file = (
    fx.emulator_server,
    fx.emulator,
    fx.client,
    fx.chat_file,
)


def test_health_and_auth(emulator: EmulatorThread) -> None:
    assert httpx.get(emulator.url).json() == {"status": "ok"}
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        answer = httpx.get(f"{emulator.url}{TG}/fine-tunes", headers=headers)
        assert answer.status_code == 401
        conforms("together", "ErrorData", answer.json())


def test_configured_keys_are_enforced(tmp_path: Path) -> None:
    with EmulatorThread(keys=["right"]) as emu:
        wrong = httpx.get(f"{emu.url}{TG}/files", headers={"Authorization": "Bearer wrong"})
        right = httpx.get(f"{emu.url}{TG}/files", headers={"Authorization": "Bearer right"})
    assert wrong.status_code == 401
    assert "wrong" not in wrong.text  # a key never comes back in an error
    assert right.status_code == 200


def test_signed_url_upload_with_checksum_dedupe(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    content = jsonl(CHAT_LINES)
    file_id = tg_upload(client, content)
    assert file_id.startswith("file-")
    preprocessed = client.post(f"{TG}/files/{file_id}/preprocess").json()
    conforms("together", "FileResponse", preprocessed)
    pending = client.get(f"{TG}/files/{file_id}").json()
    conforms_to_path("together", "GET", "/files/{id}", pending)
    assert pending["processing_status"] in ("QUEUED", "RUNNING") and pending["Processed"] is False

    emulator.advance(2.5)
    done = client.get(f"{TG}/files/{file_id}").json()
    assert done["processing_status"] == "COMPLETED" and done["Processed"] is True
    assert done["bytes"] == len(content)
    assert done["validation_report"]["nlines"] == len(CHAT_LINES)
    listing = client.get(f"{TG}/files").json()
    conforms_to_path("together", "GET", "/files", listing)
    assert [f["id"] for f in listing["data"]] == [file_id]
    assert client.get(f"{TG}/files/{file_id}/content").content == content

    # the same bytes again: 409 with the existing id, as the SDK expects
    again = client.post(
        f"{TG}/files",
        files={
            "purpose": (None, "fine-tune"),
            "file_name": (None, "other-name.jsonl"),
            "checksum": (None, hashlib.sha256(content).hexdigest()),
        },
    )
    assert again.status_code == 409
    assert again.json()["file_id"] == file_id
    conforms("together", "ErrorData", again.json())

    deleted = client.delete(f"{TG}/files/{file_id}")
    conforms_to_path("together", "DELETE", "/files/{id}", deleted.json())
    missing = client.get(f"{TG}/files/{file_id}")
    assert missing.status_code == 404
    conforms("together", "ErrorData", missing.json())


def test_documented_multipart_upload(emulator: EmulatorThread, client: httpx.Client) -> None:
    answer = client.post(
        f"{TG}/files/upload",
        data={"purpose": "fine-tune", "file_name": "data.jsonl", "file_type": "jsonl"},
        files={"file": ("data.jsonl", jsonl(CHAT_LINES), "application/jsonl")},
    )
    assert answer.status_code == 200, answer.text
    conforms_to_path("together", "POST", "/files/upload", answer.json())
    missing = client.post(f"{TG}/files/upload", data={"purpose": "fine-tune"})
    assert missing.status_code == 400
    conforms_to_path("together", "POST", "/files/upload", missing.json(), "400")


def test_storage_put_needs_a_known_token(emulator: EmulatorThread) -> None:
    assert httpx.put(f"{emulator.url}/_storage/nope", content=b"x").status_code == 404


def test_non_jsonl_content_is_invalid_format(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_upload(client, b"this is not json\n")
    emulator.advance(2.5)
    info = client.get(f"{TG}/files/{file_id}").json()
    assert info["processing_status"] == "INVALID_FORMAT"
    assert info["validation_report"]["valid"] is False
    assert info["validation_report"]["error_type"] == "INVALID_FORMAT"
    refused = client.post(
        f"{TG}/fine-tunes", json={"training_file": file_id, "model": TOGETHER_MODEL}
    )
    assert refused.status_code == 400
    assert "INVALID_FORMAT" in refused.json()["error"]["message"]


def test_a_byte_order_mark_is_invalid_format(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    """Together's reader trips on a leading BOM (validate says ``refused``); the report
    says why, not just "not JSON"."""
    file_id = tg_upload(client, b"\xef\xbb\xbf" + jsonl(CHAT_LINES))
    emulator.advance(2.5)
    info = client.get(f"{TG}/files/{file_id}").json()
    assert info["processing_status"] == "INVALID_FORMAT"
    assert "line 1: not valid JSON" in info["validation_report"]["error"]
    assert "byte-order mark" in info["validation_report"]["error"]


def test_job_moves_through_real_statuses(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = tg_ready_file(emulator, client)
    job = tg_create(client, file_id, n_epochs=2, batch_size=8, n_checkpoints=2)
    conforms_to_path("together", "POST", "/fine-tunes", job)
    assert job["id"].startswith("ft-") and job["status"] == "pending"
    assert job["suffix"] == "demo"
    assert job["model_output_name"].startswith(
        "emulator/Meta-Llama-3.1-8B-Instruct-Reference-demo-"
    )
    assert job["token_count"] == math.ceil(len(jsonl(CHAT_LINES)) / 4) * 2
    job_id = job["id"]

    seen = []
    for _ in range(70):  # one emulated second at a time, through the whole life
        full = client.get(f"{TG}/fine-tunes/{job_id}").json()
        if full["status"] not in seen:
            conforms_to_path("together", "GET", "/fine-tunes/{id}", full)
            seen.append(full["status"])
        emulator.advance(1)
    assert seen == ["pending", "queued", "running", "compressing", "uploading", "completed"]

    full = client.get(f"{TG}/fine-tunes/{job_id}").json()
    assert full["steps_completed"] == full["total_steps"] == 4  # 12 lines / batch 8 → 2 × 2
    assert full["epochs_completed"] == 2
    assert full["progress"] == {"estimate_available": False, "seconds_remaining": 0}

    listing = client.get(f"{TG}/fine-tunes").json()
    conforms_to_path("together", "GET", "/fine-tunes", listing)
    assert [j["id"] for j in listing["data"]] == [job_id]

    events = client.get(f"{TG}/fine-tunes/{job_id}/events").json()
    conforms_to_path("together", "GET", "/fine-tunes/{id}/events", events)
    kinds = [e["type"] for e in events["data"]]
    assert kinds[0] == "job_pending" and kinds[-1] == "job_complete"
    assert kinds.count("epoch_complete") == 2 and "checkpoint_save" in kinds

    checkpoints = client.get(f"{TG}/fine-tunes/{job_id}/checkpoints").json()
    conforms_to_path("together", "GET", "/fine-tunes/{id}/checkpoints", checkpoints)
    types = [c["checkpoint_type"] for c in checkpoints["data"]]
    assert "Final Adapter" in types and "Intermediate" in types

    metrics = client.get(f"{TG}/fine-tunes/{job_id}/metrics").json()
    conforms_to_path("together", "GET", "/fine-tunes/{id}/metrics", metrics)
    assert len(metrics["metrics"]) == 4


def test_progress_while_running(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = tg_ready_file(emulator, client)
    job_id = tg_create(client, file_id, n_epochs=4, batch_size=8)["id"]
    emulator.advance(7 + 25)  # pending + queued, then about half of ~41 s of training
    full = client.get(f"{TG}/fine-tunes/{job_id}").json()
    assert full["status"] == "running"
    assert 0 < full["steps_completed"] < full["total_steps"]
    assert full["progress"]["estimate_available"] is True
    assert full["progress"]["seconds_remaining"] > 0


def test_cancel_goes_through_cancel_requested(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    job_id = tg_create(client, file_id)["id"]
    emulator.advance(10)
    answer = client.post(f"{TG}/fine-tunes/{job_id}/cancel")
    conforms_to_path("together", "POST", "/fine-tunes/{id}/cancel", answer.json())
    assert answer.json()["status"] == "cancel_requested"
    assert client.post(f"{TG}/fine-tunes/{job_id}/cancel").status_code == 200  # idempotent
    emulator.advance(5)
    assert tg_status(client, job_id) == "cancelled"
    kinds = [e["type"] for e in client.get(f"{TG}/fine-tunes/{job_id}/events").json()["data"]]
    assert kinds[-2:] == ["cancel_requested", "job_stopped"]
    emulator.advance(600)
    assert tg_status(client, job_id) == "cancelled"  # a cancelled job stays cancelled
    again = client.post(f"{TG}/fine-tunes/{job_id}/cancel")
    assert again.status_code == 400
    conforms("together", "ErrorData", again.json())
    deleted = client.delete(f"{TG}/fine-tunes/{job_id}")
    conforms_to_path("together", "DELETE", "/fine-tunes/{id}", deleted.json())
    assert client.get(f"{TG}/fine-tunes/{job_id}").status_code == 404


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        ({"training_file": None}, ("training_file", "is required")),
        ({"n_epochs": "three"}, ("n_epochs", "expected integer")),
        ({"nonsense": 1}, ("nonsense", "is not a known field")),
        ({"training_method": {"method": "ppo"}}, ("training_method.method", "must be one of")),
        ({"training_type": {"type": "Lora"}}, ("training_type.lora_r", "is required")),
        (
            {"training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16.5}},
            ("training_type.lora_alpha", "expected integer"),
        ),
        ({"suffix": "x" * 41}, ("suffix", "at most 40 characters")),
        # the SDK refuses these pairs before sending; the service answers the same
        ({"from_checkpoint": "ft-anything"}, ("model", "not both")),
        (
            {"from_checkpoint": "ft-anything", "from_hf_model": "o/m", "model": None},
            ("from_hf_model", "not both"),
        ),
        (
            {"training_method": {"method": "dpo"}, "train_on_inputs": True},
            ("train_on_inputs", "only for SFT"),
        ),
    ],
)
def test_create_body_violations_are_a_422_listing_each(
    emulator: EmulatorThread,
    client: httpx.Client,
    change: dict[str, Any],
    violation: tuple[str, str],
) -> None:
    file_id = tg_ready_file(emulator, client)
    body: dict[str, Any] = {"training_file": file_id, "model": TOGETHER_MODEL}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    answer = client.post(f"{TG}/fine-tunes", json=body)
    assert answer.status_code == 422
    conforms("together", "ErrorData", answer.json())
    assert answer.json()["error"]["message"].startswith("Invalid request: ")
    listed = [(e["field"], e["message"]) for e in answer.json()["errors"]]
    assert any(f == violation[0] and violation[1] in m for f, m in listed), listed
    assert emulator.state()["jobs"] == []


def test_a_422_lists_every_violation(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = tg_ready_file(emulator, client)
    body = {"training_file": file_id, "model": TOGETHER_MODEL, "n_epochs": "x", "odd": 1}
    answer = client.post(f"{TG}/fine-tunes", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == "Invalid request: 2 validation errors"
    assert [e["field"] for e in answer.json()["errors"]] == ["n_epochs", "odd"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": "acme/unknown-model"}, "not available for fine-tuning"),
        ({"batch_size": 4096}, "batch_size: must be between"),
        ({"n_epochs": 500}, "n_epochs: must be between"),
        ({"n_evals": 2}, "validation_file"),
        ({"training_file": "file-missing"}, "not found"),
        ({"multimodal_params": {"train_vision": True}}, "is not a vision model"),
    ],
)
def test_create_is_validated(
    emulator: EmulatorThread, client: httpx.Client, change: dict[str, Any], words: str
) -> None:
    file_id = tg_ready_file(emulator, client)
    body: dict[str, Any] = {"training_file": file_id, "model": TOGETHER_MODEL}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    answer = client.post(f"{TG}/fine-tunes", json=body)
    assert answer.status_code == 400
    conforms("together", "ErrorData", answer.json())
    assert words in answer.json()["error"]["message"]
    assert emulator.state()["jobs"] == []


def test_model_catalogue_limits_and_price(emulator: EmulatorThread, client: httpx.Client) -> None:
    supported = client.get(f"{TG}/fine-tunes/models/supported").json()
    conforms_to_path("together", "GET", "/fine-tunes/models/supported", supported)
    assert TOGETHER_MODEL in supported["models"]
    limits = client.get(f"{TG}/fine-tunes/models/limits", params={"model_name": TOGETHER_MODEL})
    conforms_to_path("together", "GET", "/fine-tunes/models/limits", limits.json())
    unknown = client.get(f"{TG}/fine-tunes/models/limits", params={"model_name": "acme/x"})
    assert unknown.status_code == 404
    conforms_to_path("together", "GET", "/fine-tunes/models/limits", unknown.json(), "404")

    file_id = tg_ready_file(emulator, client)
    price = client.post(
        f"{TG}/fine-tunes/estimate-price",
        json={"training_file": file_id, "model": TOGETHER_MODEL, "n_epochs": 3},
    ).json()
    conforms_to_path("together", "POST", "/fine-tunes/estimate-price", price)
    tokens = math.ceil(len(jsonl(CHAT_LINES)) / 4) * 3
    assert price["estimated_train_token_count"] == tokens
    assert price["estimated_total_price"] == pytest.approx(tokens * 0.48 / 1e6)


def test_dpo_on_chat_data_fails_as_user_error(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    job_id = tg_create(client, file_id, training_method={"method": "dpo"}, batch_size=8)["id"]
    emulator.advance(8)
    full = client.get(f"{TG}/fine-tunes/{job_id}").json()
    assert full["status"] == "user_error"
    assert full["events"][-1]["type"] == "job_error"
    assert "preference" in full["events"][-1]["message"]


def test_dpo_on_preference_data_completes(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = tg_ready_file(emulator, client, jsonl(PREFERENCE_LINES))
    job = tg_create(
        client, file_id, training_method={"method": "dpo", "dpo_beta": 0.2}, batch_size=8
    )
    assert job["training_method"]["dpo_beta"] == 0.2
    emulator.advance(3600)
    assert tg_status(client, job["id"]) == "completed"


# ---------------------------------------------------------------- clients


def test_official_together_sdk(emulator: EmulatorThread, chat_file: Path) -> None:
    together = pytest.importorskip("together")
    emulator.emulator.file_processing_seconds = 0.0  # the SDK does not wait for processing
    sdk = together.Together(base_url=emulator.url + "/together", api_key=KEY, max_retries=0)
    uploaded = sdk.files.upload(file=chat_file, purpose="fine-tune")
    assert uploaded.id.startswith("file-")
    assert sdk.files.upload(file=chat_file, purpose="fine-tune").id == uploaded.id  # 409 path
    assert [f.id for f in sdk.files.list().data] == [uploaded.id]
    job = sdk.fine_tuning.create(
        training_file=uploaded.id, model=TOGETHER_MODEL, n_epochs=2, suffix="sdk", lora=True
    )
    assert job.status == "pending"
    emulator.advance(15)
    got = sdk.fine_tuning.retrieve(job.id)
    assert got.status == "running"
    assert [j.id for j in sdk.fine_tuning.list().data] == [job.id]
    assert sdk.fine_tuning.list_events(job.id).data[0].type == "job_pending"
    cancelled = sdk.fine_tuning.cancel(job.id)
    assert cancelled.status == "cancel_requested"
    assert sdk.fine_tuning.list_checkpoints(job.id).data == []
    limits = sdk.fine_tuning.model_limits(model_name=TOGETHER_MODEL)
    assert limits.lora_training.max_rank == 64


def test_our_driver_against_the_emulator(emulator: EmulatorThread, chat_file: Path) -> None:
    # the driver's waits move the emulator's clock instead of sleeping
    env = {"TOGETHER_API_KEY": KEY, "TOGETHER_BASE_URL": emulator.url + "/together/v1"}
    pool = DriverPool(env, sleep=emulator.advance)
    driver = pool.get("together")
    try:
        sha = hashlib.sha256(chat_file.read_bytes()).hexdigest()
        uploaded = driver.upload_file(chat_file, sha)
        assert driver.upload_file(chat_file, sha).id == uploaded.id
        assert driver.find_file(sha) is not None
        request = CreateRequest(
            name="support-bot",
            tag="rc-0123456789ab",
            model=TOGETHER_MODEL,
            method="sft",
            training_file_id=uploaded.id,
            lora={"r": 8, "alpha": 16},
            hyperparameters={"epochs": 2, "batch_size": 8, "learning_rate": 1e-5},
            suffix="support",
        )
        job = driver.create_job(request)
        assert job.phase is Phase.QUEUED and job.tag == "rc-0123456789ab"
        assert [j.id for j in driver.find_jobs_by_tag("rc-0123456789ab")] == [job.id]
        emulator.advance(20)
        running = driver.get_job(job.id)
        assert running.phase is Phase.RUNNING and running.progress
        assert any("Training started" in e.message for e in driver.job_events(job.id))
        assert driver.cancel_job(job.id).phase is Phase.CANCELLING
        emulator.advance(5)
        done = driver.get_job(job.id)
        assert done.phase is Phase.CANCELLED
        assert driver.cancel_job(job.id).phase is Phase.CANCELLED  # 400 → looked up
    finally:
        pool.close()


def test_a_job_from_a_checkpoint_takes_its_model_and_training_type(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    parent = tg_create(client, file_id, training_type={"type": "Full"})
    body = {"training_file": file_id, "from_checkpoint": f"{parent['id']}:1", "suffix": "next"}
    child = client.post(f"{TG}/fine-tunes", json=body)
    assert child.status_code == 200, child.text
    job = client.get(f"{TG}/fine-tunes/{child.json()['id']}").json()
    assert job["model"] == TOGETHER_MODEL and job["from_checkpoint"] == f"{parent['id']}:1"
    assert job["training_type"] == {"type": "Full"}
    priced = client.post(
        f"{TG}/fine-tunes/estimate-price",
        json={"training_file": file_id, "from_checkpoint": parent["id"]},
    )
    assert priced.json()["estimated_total_price"] > 0  # priced at the parent's model
    unknown = client.post(f"{TG}/fine-tunes", json={**body, "from_checkpoint": "ft-nope"})
    assert unknown.status_code == 400 and "ft-nope not found" in unknown.text
