"""The emulator's Mistral API: wire format against the official OpenAPI extract, file
dedupe by name and content, ``auto_start`` parking at VALIDATED until ``/start``, the
409 for a similar job, page-number lists, 422 validation bodies and cancellation."""

from __future__ import annotations

from typing import Any

import emulator_fixtures as fx
import httpx
import pytest
from emulator_fixtures import (
    CHAT_LINES,
    MISTRAL_MODEL,
    PREFERENCE_LINES,
    conforms,
    conforms_to_path,
    jsonl,
)

from reconciler.emulator import EmulatorThread

# the shared fixtures, bound here (tests/conftest.py belongs to the rest of the suite)
emulator_server, emulator, client = fx.emulator_server, fx.emulator, fx.client

MI = "/mistral/v1"
JOBS = f"{MI}/fine_tuning/jobs"


def upload(http: httpx.Client, content: bytes | None = None, name: str = "train.jsonl") -> str:
    answer = http.post(
        f"{MI}/files",
        files={"file": (name, content or jsonl(CHAT_LINES))},
        data={"purpose": "fine-tune"},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def body(file_id: str, **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": MISTRAL_MODEL,
        "training_files": [{"file_id": file_id, "weight": 1}],
        "hyperparameters": {"learning_rate": 1e-4, "epochs": 2},
        "suffix": "demo",
    }
    out.update(over)
    return out


def create(http: httpx.Client, file_id: str, **over: Any) -> dict[str, Any]:
    answer = http.post(JOBS, json=body(file_id, **over))
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def get(http: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = http.get(f"{JOBS}/{job_id}").json()
    return job


def test_files_and_dedupe(emulator: EmulatorThread, client: httpx.Client) -> None:
    content = jsonl(CHAT_LINES)
    answer = client.post(f"{MI}/files", files={"file": ("train.jsonl", content)})
    conforms_to_path("mistral", "POST", "/v1/files", answer.json())
    file_id = answer.json()["id"]
    assert (
        answer.json()["num_lines"] == len(CHAT_LINES) and answer.json()["sample_type"] == "instruct"
    )
    assert upload(client, content) == file_id  # same name and content: the same file
    other = upload(client, content, name="copy.jsonl")
    assert other != file_id
    listing = client.get(f"{MI}/files").json()
    conforms_to_path("mistral", "GET", "/v1/files", listing)
    assert listing["total"] == 2 and [f["id"] for f in listing["data"]] == [other, file_id]
    paged = client.get(f"{MI}/files", params={"page": 1, "page_size": 1}).json()
    assert [f["id"] for f in paged["data"]] == [file_id] and paged["total"] == 2
    assert client.get(f"{MI}/files", params={"search": "copy"}).json()["total"] == 1
    got = client.get(f"{MI}/files/{file_id}").json()
    conforms_to_path("mistral", "GET", "/v1/files/{file_id}", got)
    assert got["deleted"] is False
    assert client.get(f"{MI}/files/{file_id}/content").content == content
    signed = client.get(f"{MI}/files/{file_id}/url").json()
    conforms_to_path("mistral", "GET", "/v1/files/{file_id}/url", signed)
    url = signed["url"]
    assert httpx.get(url).content == content  # a signed URL needs no key
    deleted = client.delete(f"{MI}/files/{other}").json()
    conforms_to_path("mistral", "DELETE", "/v1/files/{file_id}", deleted)
    assert client.get(f"{MI}/files/{other}").status_code == 404
    bad = client.post(f"{MI}/files", files={"file": ("bad.jsonl", b"not json\n")})
    assert bad.status_code == 400 and bad.json()["object"] == "error"
    missing = client.post(f"{MI}/files", data={"purpose": "fine-tune"})
    assert missing.status_code == 422
    conforms("mistral", "HTTPValidationError", missing.json())


def test_a_byte_order_mark_is_refused_at_upload(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    """Mistral documents no BOM handling (validate's ``unknown``): refused, saying why."""
    refused = client.post(
        f"{MI}/files",
        files={"file": ("bom.jsonl", b"\xef\xbb\xbf" + jsonl(CHAT_LINES))},
        data={"purpose": "fine-tune"},
    )
    assert refused.status_code == 400 and refused.json()["object"] == "error"
    assert "byte-order mark" in refused.json()["message"]


def test_auto_start_false_parks_at_validated_until_start(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    job = create(client, upload(client))
    conforms_to_path("mistral", "POST", "/v1/fine_tuning/jobs", job)
    assert job["status"] == "QUEUED" and job["auto_start"] is False
    emulator.advance(4)
    assert get(client, job["id"])["status"] == "VALIDATING"
    emulator.advance(600)
    parked = get(client, job["id"])
    conforms_to_path("mistral", "GET", "/v1/fine_tuning/jobs/{job_id}", parked)
    assert parked["status"] == "VALIDATED"
    assert parked["metadata"]["cost"] == 4.0  # the minimum fee, readable before starting
    assert parked["metadata"]["data_tokens"] == -(-len(jsonl(CHAT_LINES)) // 4)
    started = client.post(f"{JOBS}/{job['id']}/start").json()
    conforms_to_path("mistral", "POST", "/v1/fine_tuning/jobs/{job_id}/start", started)
    emulator.advance(3)
    assert get(client, job["id"])["status"] == "RUNNING"
    assert client.post(f"{JOBS}/{job['id']}/start").status_code == 400
    emulator.advance(3600)
    done = get(client, job["id"])
    conforms_to_path("mistral", "GET", "/v1/fine_tuning/jobs/{job_id}", done)
    assert done["status"] == "SUCCESS"
    assert done["fine_tuned_model"].startswith(f"ft:{MISTRAL_MODEL}:demo:")
    assert done["trained_tokens"] == 2 * done["metadata"]["data_tokens"]
    statuses = [e["data"]["status"] for e in reversed(done["events"])]
    assert statuses == ["QUEUED", "VALIDATING", "VALIDATED", "RUNNING", "SUCCESS"]
    assert done["checkpoints"] and "train_loss" in done["checkpoints"][0]["metrics"]


def test_auto_start_true_runs_through(emulator: EmulatorThread, client: httpx.Client) -> None:
    job_id = create(client, upload(client), auto_start=True)["id"]
    seen = []
    for _ in range(70):
        status = get(client, job_id)["status"]
        if status not in seen:
            seen.append(status)
        emulator.advance(1)
    assert seen == ["QUEUED", "VALIDATING", "VALIDATED", "RUNNING", "SUCCESS"]


def test_similar_active_job_is_a_409(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = upload(client)
    first = create(client, file_id)["id"]
    conflict = client.post(JOBS, json=body(file_id))
    assert conflict.status_code == 409 and first in conflict.json()["message"]
    assert create(client, file_id, suffix="other")["id"] != first  # not similar: fine
    cancelled = client.post(f"{JOBS}/{first}/cancel").json()
    conforms_to_path("mistral", "POST", "/v1/fine_tuning/jobs/{job_id}/cancel", cancelled)
    assert cancelled["status"] == "CANCELLATION_REQUESTED"
    emulator.advance(4)
    assert get(client, first)["status"] == "CANCELLED"
    assert create(client, file_id)["id"] != first  # the old one is over: allowed again
    assert client.post(f"{JOBS}/{first}/cancel").status_code == 400


def test_list_pages_and_filters(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = upload(client)
    ids = [create(client, file_id, suffix=f"s{i}")["id"] for i in range(3)]
    listing = client.get(JOBS).json()
    conforms_to_path("mistral", "GET", "/v1/fine_tuning/jobs", listing)
    assert listing["total"] == 3 and [j["id"] for j in listing["data"]] == ids[::-1]
    second = client.get(JOBS, params={"page": 1, "page_size": 2}).json()
    assert [j["id"] for j in second["data"]] == [ids[0]] and second["total"] == 3
    assert [j["id"] for j in client.get(JOBS, params={"suffix": "s1"}).json()["data"]] == [ids[1]]
    assert client.get(JOBS, params={"status": "SUCCESS"}).json()["total"] == 0
    assert client.get(JOBS, params={"page": "x"}).status_code == 422
    emulator.advance(11)
    emulator.set_faults(list_lag_seconds=10)
    create(client, file_id, suffix="late")
    assert client.get(JOBS).json()["total"] == 3


@pytest.mark.parametrize(
    ("change", "kind", "loc"),
    [
        ({"hyperparameters": None}, "missing", ["body", "hyperparameters"]),
        ({"nope": 1}, "extra_forbidden", ["body", "nope"]),
        ({"suffix": "x" * 19}, "string_too_long", ["body", "suffix"]),
        (
            {"hyperparameters": {"learning_rate": 2}},
            "less_than_equal",
            ["body", "hyperparameters", "learning_rate"],
        ),
        ({"hyperparameters": {"epochs": 0}}, "greater_than", ["body", "hyperparameters", "epochs"]),
        ({"auto_start": "yes"}, "bool_type", ["body", "auto_start"]),
        ({"job_type": "magic"}, "enum", ["body", "job_type"]),
    ],
)
def test_create_is_validated_with_422(
    emulator: EmulatorThread,
    client: httpx.Client,
    change: dict[str, Any],
    kind: str,
    loc: list[Any],
) -> None:
    payload = body(upload(client), **change)
    payload = {k: v for k, v in payload.items() if v is not None}
    answer = client.post(JOBS, json=payload)
    assert answer.status_code == 422
    conforms("mistral", "HTTPValidationError", answer.json())
    assert answer.json()["detail"][0]["type"] == kind and answer.json()["detail"][0]["loc"] == loc


def test_other_create_errors(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = upload(client)
    unknown = client.post(JOBS, json=body(file_id, model="gpt-4"))
    assert unknown.status_code == 400 and "not available" in unknown.json()["message"]
    missing = client.post(JOBS, json=body("00000000-0000-0000-0000-000000000000"))
    assert missing.status_code == 404
    none = client.post(JOBS, json=body(file_id, training_files=[]))
    assert none.status_code == 422
    assert client.get(f"{JOBS}/00000000-0000-0000-0000-000000000000").status_code == 404
    assert emulator.state()["jobs"] == []


def test_dry_run_answers_legacy_metadata(emulator: EmulatorThread, client: httpx.Client) -> None:
    answer = client.post(JOBS, params={"dry_run": "true"}, json=body(upload(client)))
    conforms_to_path("mistral", "POST", "/v1/fine_tuning/jobs", answer.json())
    assert answer.json()["object"] == "job.metadata" and answer.json()["cost"] == 4.0
    assert emulator.state()["jobs"] == []


def test_failures(emulator: EmulatorThread, client: httpx.Client) -> None:
    emulator.set_faults(fail_jobs=[{"match": "flaky"}])
    flaky = create(client, upload(client), suffix="flaky", auto_start=True)["id"]
    wrong = create(client, upload(client, jsonl(PREFERENCE_LINES), "p.jsonl"), auto_start=True)
    emulator.advance(3600)
    failed = get(client, flaky)
    conforms_to_path("mistral", "GET", "/v1/fine_tuning/jobs/{job_id}", failed)
    assert failed["status"] == "FAILED" and failed["fine_tuned_model"] is None
    assert failed["events"][0]["data"]["status"] == "FAILED"
    rejected = get(client, wrong["id"])
    assert rejected["status"] == "FAILED_VALIDATION"
    statuses = [e["data"]["status"] for e in reversed(rejected["events"])]
    assert statuses == ["QUEUED", "VALIDATING", "FAILED_VALIDATION"]
