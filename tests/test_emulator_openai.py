"""The emulator's OpenAI API: wire format against the official OpenAPI extract, files
and the Uploads API, the job lifecycle with cursor pagination and metadata filters,
pause/resume, request validation, and the official ``openai`` SDK against it."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import emulator_fixtures as fx
import httpx
import pytest
from emulator_fixtures import (
    CHAT_LINES,
    KEY,
    OPENAI_MODEL,
    PREFERENCE_LINES,
    conforms,
    conforms_to_path,
    jsonl,
)

from reconciler.emulator import EmulatorThread

# the shared fixtures, bound here (tests/conftest.py belongs to the rest of the suite)
emulator_server, emulator, client = fx.emulator_server, fx.emulator, fx.client

OA = "/openai/v1"
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark
JOBS = f"{OA}/fine_tuning/jobs"


def is_error(answer: httpx.Response, status: int, words: str = "") -> dict[str, Any]:
    """OpenAI's error body (the extract has no schema for it): assert and return it."""
    assert answer.status_code == status, answer.text
    body = answer.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert words in body["message"]
    return dict(body)


def upload(http: httpx.Client, content: bytes | None = None, name: str = "train.jsonl") -> str:
    answer = http.post(
        f"{OA}/files",
        data={"purpose": "fine-tune"},
        files={"file": (name, content or jsonl(CHAT_LINES), "application/jsonl")},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def create(http: httpx.Client, file_id: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": OPENAI_MODEL, "training_file": file_id}
    body.update(over)
    answer = http.post(JOBS, json=body)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def get(http: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = http.get(f"{JOBS}/{job_id}").json()
    return job


def test_files(emulator: EmulatorThread, client: httpx.Client) -> None:
    content = jsonl(CHAT_LINES)
    answer = client.post(
        f"{OA}/files",
        data={"purpose": "fine-tune"},
        files={"file": ("train.jsonl", content, "application/jsonl")},
    )
    conforms_to_path("openai", "POST", "/files", answer.json())
    file_id = answer.json()["id"]
    assert file_id.startswith("file-") and answer.json()["bytes"] == len(content)
    second = upload(client, name="second.jsonl")
    listing = client.get(f"{OA}/files").json()
    conforms_to_path("openai", "GET", "/files", listing)
    assert [f["id"] for f in listing["data"]] == [second, file_id]  # newest first
    one = client.get(f"{OA}/files", params={"limit": 1, "order": "asc"}).json()
    assert [f["id"] for f in one["data"]] == [file_id] and one["has_more"] is True
    rest = client.get(f"{OA}/files", params={"limit": 1, "order": "asc", "after": file_id}).json()
    assert [f["id"] for f in rest["data"]] == [second] and rest["has_more"] is False
    conforms_to_path(
        "openai", "GET", "/files/{file_id}", client.get(f"{OA}/files/{file_id}").json()
    )
    assert client.get(f"{OA}/files/{file_id}/content").content == content
    deleted = client.delete(f"{OA}/files/{file_id}").json()
    conforms_to_path("openai", "DELETE", "/files/{file_id}", deleted)
    is_error(client.get(f"{OA}/files/{file_id}"), 404, "No such file")
    wrong_name = client.post(
        f"{OA}/files", data={"purpose": "fine-tune"}, files={"file": ("a.txt", b"x")}
    )
    is_error(wrong_name, 400, "Must be .jsonl")
    is_error(
        client.post(f"{OA}/files", data={"purpose": "nope"}, files={"file": ("a.jsonl", b"{}")}),
        400,
        "Invalid value: 'nope'",
    )


def test_uploads_api(emulator: EmulatorThread, client: httpx.Client) -> None:
    content = jsonl(CHAT_LINES)
    body = {
        "filename": "big.jsonl",
        "purpose": "fine-tune",
        "bytes": len(content),
        "mime_type": "text/jsonl",
    }
    upload = client.post(f"{OA}/uploads", json=body).json()
    conforms_to_path("openai", "POST", "/uploads", upload)
    assert upload["id"].startswith("upload_") and upload["status"] == "pending"
    parts = []
    for chunk in (content[:500], content[500:]):
        part = client.post(f"{OA}/uploads/{upload['id']}/parts", files={"data": ("p", chunk)})
        conforms_to_path("openai", "POST", "/uploads/{upload_id}/parts", part.json())
        parts.append(part.json()["id"])
    assert all(p.startswith("part_") for p in parts)
    is_error(
        client.post(f"{OA}/uploads/{upload['id']}/complete", json={"part_ids": parts[:1]}),
        400,
        "does not match",
    )
    is_error(
        client.post(
            f"{OA}/uploads/{upload['id']}/complete", json={"part_ids": parts, "md5": "0" * 32}
        ),
        400,
        "md5",
    )
    md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
    done = client.post(
        f"{OA}/uploads/{upload['id']}/complete", json={"part_ids": parts, "md5": md5}
    )
    conforms_to_path("openai", "POST", "/uploads/{upload_id}/complete", done.json())
    assert done.json()["status"] == "completed"
    file_id = done.json()["file"]["id"]
    assert client.get(f"{OA}/files/{file_id}/content").content == content
    is_error(client.post(f"{OA}/uploads/{upload['id']}/cancel"), 400, "completed")

    other = client.post(f"{OA}/uploads", json=body).json()
    cancelled = client.post(f"{OA}/uploads/{other['id']}/cancel").json()
    conforms_to_path("openai", "POST", "/uploads/{upload_id}/cancel", cancelled)
    assert cancelled["status"] == "cancelled"
    is_error(client.post(f"{OA}/uploads", json={**body, "extra": 1}), 400, "extra")


def test_job_lifecycle(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = upload(client)
    job = create(client, file_id, suffix="demo", metadata={"spec": "support"}, seed=42)
    conforms_to_path("openai", "POST", "/fine_tuning/jobs", job)
    assert job["id"].startswith("ftjob-") and job["status"] == "validating_files"
    assert job["hyperparameters"] == {
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
        "n_epochs": "auto",
    }
    seen = []
    for _ in range(80):
        current = get(client, job["id"])
        if current["status"] not in seen:
            conforms_to_path("openai", "GET", "/fine_tuning/jobs/{fine_tuning_job_id}", current)
            seen.append(current["status"])
            if current["status"] == "running":
                assert current["estimated_finish"] and current["trained_tokens"] is None
        emulator.advance(1)
    assert seen == ["validating_files", "queued", "running", "succeeded"]
    done = get(client, job["id"])
    epochs = done["hyperparameters"]["n_epochs"]
    assert isinstance(epochs, int)
    assert done["trained_tokens"] == -(-len(jsonl(CHAT_LINES)) // 4) * epochs
    assert done["fine_tuned_model"].startswith(f"ft:{OPENAI_MODEL}:personal:demo:")
    assert done["finished_at"] and done["estimated_finish"] is None and done["seed"] == 42
    result = client.get(f"{OA}/files/{done['result_files'][0]}").json()
    assert result["purpose"] == "fine-tune-results"

    events = client.get(f"{JOBS}/{job['id']}/events", params={"limit": 100}).json()
    conforms_to_path("openai", "GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events", events)
    messages = [e["message"] for e in events["data"]]
    assert messages[0] == "The job has successfully completed"
    assert messages[-1] == f"Created fine-tuning job: {job['id']}"
    assert any(e["type"] == "metrics" for e in events["data"])
    first = client.get(f"{JOBS}/{job['id']}/events", params={"limit": 2}).json()
    assert first["has_more"] and len(first["data"]) == 2
    after = client.get(
        f"{JOBS}/{job['id']}/events", params={"limit": 2, "after": first["data"][-1]["id"]}
    ).json()
    assert [e["id"] for e in after["data"]] == [e["id"] for e in events["data"][2:4]]

    checkpoints = client.get(f"{JOBS}/{job['id']}/checkpoints").json()
    conforms_to_path(
        "openai", "GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", checkpoints
    )
    names = [c["fine_tuned_model_checkpoint"] for c in checkpoints["data"]]
    assert names[0] == done["fine_tuned_model"] and ":ckpt-step-" in names[-1]
    assert all(c["id"].startswith("ftckpt_") for c in checkpoints["data"])


def test_list_pagination_metadata_and_lag(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = upload(client)
    ids = [create(client, file_id, metadata={"n": str(i)})["id"] for i in range(5)]
    bare = create(client, file_id)["id"]
    page = client.get(JOBS, params={"limit": 2}).json()
    conforms_to_path("openai", "GET", "/fine_tuning/jobs", page)
    assert [j["id"] for j in page["data"]] == [bare, ids[4]] and page["has_more"]
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        answer = client.get(JOBS, params=params).json()
        seen += [j["id"] for j in answer["data"]]
        if not answer["has_more"]:
            break
        after = answer["data"][-1]["id"]
    assert seen == [bare, *reversed(ids)]
    tagged = client.get(JOBS, params={"metadata[n]": "3"}).json()["data"]
    assert [j["id"] for j in tagged] == [ids[3]]
    assert [j["id"] for j in client.get(JOBS, params={"metadata": "null"}).json()["data"]] == [bare]
    emulator.set_faults(list_lag_seconds=60)
    fresh = create(client, file_id, metadata={"n": "new"})["id"]
    assert client.get(JOBS, params={"metadata[n]": "new"}).json()["data"] == []
    emulator.advance(61)
    assert [j["id"] for j in client.get(JOBS, params={"metadata[n]": "new"}).json()["data"]] == [
        fresh
    ]


def test_cancel_is_immediate(emulator: EmulatorThread, client: httpx.Client) -> None:
    job_id = create(client, upload(client))["id"]
    emulator.advance(20)
    cancelled = client.post(f"{JOBS}/{job_id}/cancel").json()
    conforms_to_path("openai", "POST", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel", cancelled)
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    emulator.advance(3600)
    assert get(client, job_id)["status"] == "cancelled"
    is_error(client.post(f"{JOBS}/{job_id}/cancel"), 400, "cancelled")
    is_error(client.get(f"{JOBS}/ftjob-nope"), 404, "No such fine-tuning job")


def test_pause_freezes_progress_until_resume(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    job_id = create(client, upload(client))["id"]
    is_error(client.post(f"{JOBS}/{job_id}/pause"), 400, "only a running job")
    emulator.advance(20)
    paused = client.post(f"{JOBS}/{job_id}/pause").json()
    # "paused" is what the spec's own pause example answers, though its status enum lacks it
    conforms_to_path(
        "openai",
        "POST",
        "/fine_tuning/jobs/{fine_tuning_job_id}/pause",
        {**paused, "status": "running"},
    )
    assert paused["status"] == "paused" and paused["estimated_finish"] is None
    is_error(client.post(f"{JOBS}/{job_id}/pause"), 400, "is paused; only a running job")
    emulator.advance(3600)
    assert get(client, job_id)["status"] == "paused"  # nothing moves while paused
    listed = client.get(JOBS).json()["data"]
    assert [j["status"] for j in listed if j["id"] == job_id] == ["paused"]
    resumed = client.post(f"{JOBS}/{job_id}/resume").json()
    conforms_to_path("openai", "POST", "/fine_tuning/jobs/{fine_tuning_job_id}/resume", resumed)
    assert resumed["status"] == "running"
    is_error(client.post(f"{JOBS}/{job_id}/resume"), 400, "not paused")
    emulator.advance(3600)
    assert get(client, job_id)["status"] == "succeeded"
    messages = [
        e["message"] for e in client.get(f"{JOBS}/{job_id}/events?limit=100").json()["data"]
    ]
    assert "Fine-tuning job paused" in messages and "Fine-tuning job resumed" in messages


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": None}, "Missing required parameter: 'model'."),
        ({"foo": 1}, "Unrecognized request argument supplied: foo"),
        ({"suffix": 7}, "Invalid type for 'suffix': expected null or string"),
        ({"suffix": "x" * 65}, "Invalid 'suffix'"),
        ({"method": {"type": "magic"}}, "Invalid value: 'magic'"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 99}}}},
            "method.supervised.hyperparameters.n_epochs",
        ),
        ({"model": "gpt-2"}, "not available for fine-tuning"),
        ({"training_file": "file-nope"}, "invalid training_file"),
        ({"hyperparameters": {"n_epochs": 2}, "method": {"type": "supervised"}}, "not both"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "Invalid 'metadata'"),
        (
            {"method": {"type": "reinforcement", "reinforcement": {"grader": {}}}},
            "does not support reinforcement",
        ),
    ],
)
def test_create_is_validated(
    emulator: EmulatorThread, client: httpx.Client, change: dict[str, Any], words: str
) -> None:
    body: dict[str, Any] = {"model": OPENAI_MODEL, "training_file": upload(client)}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    is_error(client.post(JOBS, json=body), 400, words)
    assert emulator.state()["jobs"] == []


@pytest.mark.parametrize(
    ("content", "method", "words"),
    [
        (jsonl(CHAT_LINES[:3]), None, "must have at least 10 examples"),
        (b"not json\n", None, "not valid JSONL"),
        # a byte-order mark is read past at the start only: here files were joined
        (jsonl(CHAT_LINES[:1]) + BOM + jsonl(CHAT_LINES[1:]), None, "line 2: not valid JSON"),
        (jsonl(CHAT_LINES), {"type": "dpo"}, "needs preference examples"),
    ],
)
def test_bad_data_fails_while_validating_files(
    emulator: EmulatorThread,
    client: httpx.Client,
    content: bytes,
    method: dict[str, Any] | None,
    words: str,
) -> None:
    extra = {"method": method} if method else {}
    job_id = create(client, upload(client, content), **extra)["id"]
    emulator.advance(6)
    job = get(client, job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_training_file" and words in job["error"]["message"]
    assert job["error"]["param"] == "training_file"
    conforms("openai", "FineTuningJob", job)


def test_a_leading_byte_order_mark_is_read_past(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    """As OpenAI (and validate's ``byte_order_mark: accepted``) do: not a data error."""
    job_id = create(client, upload(client, BOM + jsonl(CHAT_LINES)))["id"]
    emulator.advance(6)
    job = get(client, job_id)
    assert job["status"] != "failed" and job["error"] is None, job
    emulator.advance(7200)
    assert get(client, job_id)["status"] == "succeeded"


def test_dpo_with_preference_data(emulator: EmulatorThread, client: httpx.Client) -> None:
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    job_id = create(client, upload(client, jsonl(PREFERENCE_LINES)), method=method)["id"]
    emulator.advance(3600)
    job = get(client, job_id)
    assert job["status"] == "succeeded"
    assert job["method"]["dpo"]["hyperparameters"]["beta"] == 0.2


def test_failing_job_fault(emulator: EmulatorThread, client: httpx.Client) -> None:
    emulator.set_faults(fail_jobs=[{"match": "flaky", "message": "training crashed"}])
    job_id = create(client, upload(client), metadata={"spec": "flaky-spec"})["id"]
    emulator.advance(3600)
    job = get(client, job_id)
    assert job["status"] == "failed" and job["fine_tuned_model"] is None
    assert job["error"] == {"code": "server_error", "message": "training crashed", "param": None}


def test_models(emulator: EmulatorThread, client: httpx.Client) -> None:
    job_id = create(client, upload(client), suffix="m")["id"]
    emulator.advance(3600)
    name = get(client, job_id)["fine_tuned_model"]
    listing = client.get(f"{OA}/models").json()
    conforms_to_path("openai", "GET", "/models", listing)
    assert name in [m["id"] for m in listing["data"]]
    conforms_to_path("openai", "GET", "/models/{model}", client.get(f"{OA}/models/{name}").json())
    # a fine-tuned model can itself be fine-tuned further
    assert create(client, upload(client), model=name)["model"] == name
    deleted = client.delete(f"{OA}/models/{name}").json()
    conforms_to_path("openai", "DELETE", "/models/{model}", deleted)
    is_error(client.get(f"{OA}/models/{name}"), 404, "does not exist")
    is_error(client.delete(f"{OA}/models/{OPENAI_MODEL}"), 403, "insufficient permissions")


def test_auth_errors(emulator: EmulatorThread) -> None:
    answer = httpx.get(f"{emulator.url}{JOBS}")
    assert is_error(answer, 401)["code"] == "invalid_api_key"
    is_error(httpx.get(f"{emulator.url}{OA}/nowhere", headers={"Authorization": "Bearer k"}), 404)


# ---------------------------------------------------------------- the official SDK


def test_official_openai_sdk(emulator: EmulatorThread) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=emulator.url + "/openai/v1", api_key=KEY, max_retries=0)
    uploaded = sdk.files.create(
        file=("train.jsonl", io.BytesIO(jsonl(CHAT_LINES))), purpose="fine-tune"
    )
    assert [f.id for f in sdk.files.list()] == [uploaded.id]
    job = sdk.fine_tuning.jobs.create(
        model=OPENAI_MODEL, training_file=uploaded.id, suffix="sdk", metadata={"tag": "rc-1"}
    )
    assert job.status == "validating_files"
    others = [
        sdk.fine_tuning.jobs.create(model=OPENAI_MODEL, training_file=uploaded.id).id
        for _ in range(3)
    ]
    emulator.advance(20)
    assert sdk.fine_tuning.jobs.retrieve(job.id).status == "running"
    # the SDK follows the cursor through every page
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=2)] == [*reversed(others), job.id]
    assert [j.id for j in sdk.fine_tuning.jobs.list(metadata={"tag": "rc-1"})] == [job.id]
    events = list(sdk.fine_tuning.jobs.list_events(job.id, limit=3))
    assert events[-1].message == f"Created fine-tuning job: {job.id}"
    assert sdk.fine_tuning.jobs.pause(job.id).status == "paused"
    assert sdk.fine_tuning.jobs.resume(job.id).status == "running"
    assert sdk.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    assert list(sdk.fine_tuning.jobs.checkpoints.list(job.id)) == []

    content = jsonl(CHAT_LINES)
    up = sdk.uploads.create(
        filename="big.jsonl", purpose="fine-tune", bytes=len(content), mime_type="text/jsonl"
    )
    part = sdk.uploads.parts.create(up.id, data=content)
    done = sdk.uploads.complete(up.id, part_ids=[part.id])
    assert done.status == "completed" and done.file is not None
    finished = sdk.fine_tuning.jobs.create(model=OPENAI_MODEL, training_file=done.file.id)
    emulator.advance(3600)
    final = sdk.fine_tuning.jobs.retrieve(finished.id)
    assert final.status == "succeeded" and final.fine_tuned_model
    assert [c.step_number for c in sdk.fine_tuning.jobs.checkpoints.list(finished.id)]
    with pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.retrieve("ftjob-missing")
    with pytest.raises(openai.BadRequestError):
        sdk.fine_tuning.jobs.create(model="gpt-2", training_file=uploaded.id)
