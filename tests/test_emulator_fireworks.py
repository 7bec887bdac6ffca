"""The Fireworks emulator over HTTP (the in-thread fixture): datasets, client-chosen job
ids with ALREADY_EXISTS on a second create, JOB_STATE_* over emulated time, page tokens,
cancel, the error body; answers checked against ../shared/provider-specs/fireworks.yaml."""

from __future__ import annotations

from typing import Any

import emulator_fixtures
import httpx
from emulator_fixtures import CHAT_LINES, conforms, conforms_to_path, jsonl

from reconciler.emulator import EmulatorThread

emulator_server, emulator, client = (
    emulator_fixtures.emulator_server,
    emulator_fixtures.emulator,
    emulator_fixtures.client,
)
A = "/fireworks/v1/accounts/acme"
MODEL = "accounts/fireworks/models/qwen3-8b"


def ready_dataset(emulator: EmulatorThread, http: httpx.Client, dataset_id: str = "rc-data") -> str:
    made = http.post(
        f"{A}/datasets", json={"datasetId": dataset_id, "dataset": {"userUploaded": {}}}
    )
    assert made.status_code == 200, made.text
    conforms("fireworks", "gatewayDataset", made.json())
    up = http.post(
        f"{A}/datasets/{dataset_id}:upload", files={"file": ("t.jsonl", jsonl(CHAT_LINES))}
    )
    assert up.status_code == 200, up.text
    conforms("fireworks", "FileUploadResponse", up.json())
    assert http.get(f"{A}/datasets/{dataset_id}").json()["state"] == "UPLOADING"
    emulator.advance(2.5)
    got = http.get(f"{A}/datasets/{dataset_id}").json()
    assert got["state"] == "READY" and got["exampleCount"] == str(len(CHAT_LINES))
    return str(got["name"])


def create(http: httpx.Client, dataset: str, job_id: str, **over: Any) -> httpx.Response:
    body = {"dataset": dataset, "baseModel": MODEL, "epochs": 1, **over}
    return http.post(
        f"{A}/supervisedFineTuningJobs", params={"supervisedFineTuningJobId": job_id}, json=body
    )


def test_a_job_runs_through_its_states_to_a_model(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    dataset = ready_dataset(emulator, client)
    made = create(client, dataset, "rc3f9a-0123456789a")
    assert made.status_code == 200, made.text
    job = made.json()
    conforms("fireworks", "gatewaySupervisedFineTuningJob", job)
    assert job["name"] == "accounts/acme/supervisedFineTuningJobs/rc3f9a-0123456789a"
    assert job["state"] == "JOB_STATE_PENDING" and job["outputModel"] == "rc3f9a-0123456789a"
    seen = []
    for _ in range(40):
        emulator.advance(3)
        state = client.get(f"{A}/supervisedFineTuningJobs/rc3f9a-0123456789a").json()["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
    assert (
        seen
        == [
            "JOB_STATE_VALIDATING",
            "JOB_STATE_RUNNING",
            "JOB_STATE_WRITING_RESULTS",
            "JOB_STATE_COMPLETED",
        ][-len(seen) :]
    )
    assert seen[-1] == "JOB_STATE_COMPLETED"


def test_a_taken_id_is_already_exists(emulator: EmulatorThread, client: httpx.Client) -> None:
    dataset = ready_dataset(emulator, client)
    assert create(client, dataset, "rc-dup").status_code == 200
    again = create(client, dataset, "rc-dup")
    assert again.status_code == 409
    assert again.json()["error"]["status"] == "ALREADY_EXISTS"
    bad = create(client, dataset, "Not_An_Id")
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_list_pages_with_tokens(emulator: EmulatorThread, client: httpx.Client) -> None:
    dataset = ready_dataset(emulator, client)
    for i in range(3):
        assert create(client, dataset, f"job-{i}").status_code == 200
    first = client.get(f"{A}/supervisedFineTuningJobs", params={"pageSize": 2}).json()
    conforms_to_path(
        "fireworks", "GET", "/v1/accounts/{account_id}/supervisedFineTuningJobs", first
    )
    assert len(first["supervisedFineTuningJobs"]) == 2 and first["totalSize"] == 3
    rest = client.get(
        f"{A}/supervisedFineTuningJobs", params={"pageSize": 2, "pageToken": first["nextPageToken"]}
    ).json()
    assert len(rest["supervisedFineTuningJobs"]) == 1 and "nextPageToken" not in rest


def test_cancel_then_cancelled(emulator: EmulatorThread, client: httpx.Client) -> None:
    dataset = ready_dataset(emulator, client)
    create(client, dataset, "job-c")
    assert client.post(f"{A}/supervisedFineTuningJobs/job-c:cancel", json={}).json() == {}
    assert (
        client.get(f"{A}/supervisedFineTuningJobs/job-c").json()["state"] == "JOB_STATE_CANCELLING"
    )
    emulator.advance(4)
    assert (
        client.get(f"{A}/supervisedFineTuningJobs/job-c").json()["state"] == "JOB_STATE_CANCELLED"
    )
    again = client.post(f"{A}/supervisedFineTuningJobs/job-c:cancel", json={})
    assert again.status_code == 400 and again.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_a_dpo_job_on_chat_data_fails_validation(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    dataset = ready_dataset(emulator, client)
    body = {
        "dataset": dataset,
        "trainingConfig": {"baseModel": MODEL},
        "lossConfig": {"method": "DPO"},
    }
    made = client.post(f"{A}/dpoJobs", params={"dpoJobId": "dpo-1"}, json=body)
    assert made.status_code == 200, made.text
    conforms("fireworks", "gatewayDpoJob", made.json())
    emulator.advance(10)
    job = client.get(f"{A}/dpoJobs/dpo-1").json()
    assert job["state"] == "JOB_STATE_FAILED" and job["status"]["code"] == "INVALID_ARGUMENT"


def test_auth_and_unknown_objects(emulator: EmulatorThread, client: httpx.Client) -> None:
    no_key = httpx.get(emulator.url + f"{A}/supervisedFineTuningJobs")
    assert no_key.status_code == 401 and no_key.json()["error"]["status"] == "UNAUTHENTICATED"
    missing = client.get(f"{A}/supervisedFineTuningJobs/nope")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
