"""Faults on demand: rate limits with Retry-After, 5xx, dropped connections, list lag,
failing and stuck jobs, latency, and their determinism under a seed."""

from __future__ import annotations

import socket
import time

import emulator_fixtures as fx
import httpx
import pytest
from emulator_fixtures import (
    KEY,
    TG,
    TOGETHER_MODEL,
    conforms,
    http_client,
    tg_create,
    tg_ready_file,
    tg_status,
)

from reconciler.emulator import EmulatorThread
from reconciler.model import Phase
from reconciler.providers.pool import DriverPool

# the shared fixtures, bound here (tests/conftest.py belongs to the rest of the suite)
emulator_server, emulator, client, chat_file = (
    fx.emulator_server,
    fx.emulator,
    fx.client,
    fx.chat_file,
)


def test_rate_limit_answers_429_with_retry_after(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    emulator.set_faults(rpm=3)
    answers = [client.get(f"{TG}/files") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    limited = answers[-1]
    conforms("together", "ErrorData", limited.json())
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert 0 < int(limited.headers["retry-after-ms"]) <= 60_000
    # the window is a minute of emulated time
    emulator.advance(61)
    assert client.get(f"{TG}/files").status_code == 200


def test_rate_limit_is_per_provider_and_spares_admin(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    emulator.set_faults(rpm=1)
    assert client.get(f"{TG}/files").status_code == 200
    assert client.get(f"{TG}/files").status_code == 429
    assert client.get("/openai/v1/files").status_code == 200
    assert client.get("/mistral/v1/files").status_code == 200
    assert client.get("/_emulator/state").status_code == 200


def test_retry_after_is_in_real_seconds(emulator: EmulatorThread, client: httpx.Client) -> None:
    emulator.emulator.clock.set_speed(60.0)  # a minute of emulated time passes in a second
    emulator.set_faults(rpm=1)
    client.get(f"{TG}/files")
    limited = client.get(f"{TG}/files")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert int(limited.headers["retry-after-ms"]) <= 1000


def test_server_errors_come_before_any_effect(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    emulator.set_faults(error_next=2)
    body = {"training_file": file_id, "model": TOGETHER_MODEL}
    first, second, third = (client.post(f"{TG}/fine-tunes", json=body) for _ in range(3))
    assert first.status_code in (500, 503) and second.status_code in (500, 503)
    conforms("together", "ErrorData", first.json())
    assert third.status_code == 200
    assert len(emulator.state()["jobs"]) == 1  # the refused posts created nothing


def test_error_rate_is_deterministic_under_a_seed(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    def run() -> list[int]:
        emulator.set_faults(error_rate=0.5, seed=7)
        codes = [client.get(f"{TG}/files").status_code for _ in range(30)]
        emulator.clear_faults()
        return codes

    first, second = run(), run()
    assert first == second
    assert 200 in first and any(code >= 500 for code in first)
    emulator.set_faults(error_rate=1.0)
    assert all(client.get(f"{TG}/files").status_code >= 500 for _ in range(5))


def test_dropped_answer_after_the_create_took_effect(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    emulator.set_faults(drop_next=1, methods=["POST"], path_contains="/fine-tunes")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post(f"{TG}/fine-tunes", json={"training_file": file_id, "model": TOGETHER_MODEL})
    # the ambiguous case: the client saw nothing, but the job exists
    assert len(emulator.state()["jobs"]) == 1
    assert client.get(f"{TG}/fine-tunes").status_code == 200  # the next request is fine


def test_dropped_before_means_nothing_happened(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    emulator.set_faults(drop_rate=1.0, drop_mode="before", methods=["POST"])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post(f"{TG}/fine-tunes", json={"training_file": file_id, "model": TOGETHER_MODEL})
    assert emulator.state()["jobs"] == []
    assert client.get(f"{TG}/fine-tunes").status_code == 200  # GETs were not targeted


def test_list_lag_hides_new_jobs_for_a_while(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    emulator.set_faults(list_lag_seconds=30)
    job_id = tg_create(client, file_id)["id"]
    assert client.get(f"{TG}/fine-tunes").json()["data"] == []
    assert client.get(f"{TG}/fine-tunes/{job_id}").status_code == 200  # get sees it
    emulator.advance(31)
    assert [j["id"] for j in client.get(f"{TG}/fine-tunes").json()["data"]] == [job_id]


def test_fail_jobs_retryable_and_permanent(emulator: EmulatorThread, client: httpx.Client) -> None:
    file_id = tg_ready_file(emulator, client)
    emulator.set_faults(
        fail_jobs=[
            {"match": "flaky", "retryable": True, "message": "GPU node lost"},
            {"match": "baddata", "retryable": False},
        ]
    )
    flaky = tg_create(client, file_id, suffix="flaky-1")["id"]
    bad = tg_create(client, file_id, suffix="baddata-1")["id"]
    fine = tg_create(client, file_id, suffix="fine-1")["id"]
    emulator.advance(8)  # training has just started
    assert tg_status(client, bad) == "user_error"
    assert tg_status(client, flaky) == "running"
    emulator.advance(3600)
    assert tg_status(client, flaky) == "error"
    assert tg_status(client, fine) == "completed"
    events = client.get(f"{TG}/fine-tunes/{flaky}/events").json()["data"]
    assert events[-1]["type"] == "job_error" and events[-1]["message"] == "GPU node lost"

    env = {"TOGETHER_API_KEY": KEY, "TOGETHER_BASE_URL": emulator.url + "/together/v1"}
    pool = DriverPool(env, sleep=emulator.advance)
    try:
        driver = pool.get("together")
        failed = driver.get_job(flaky)
        assert failed.phase is Phase.FAILED and failed.error_retryable
        assert failed.error == "GPU node lost"
        assert not driver.get_job(bad).error_retryable
    finally:
        pool.close()


def test_a_rule_set_later_fails_active_jobs_from_now_on(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    job_id = tg_create(client, file_id, suffix="late")["id"]
    emulator.advance(30)
    assert tg_status(client, job_id) == "running"
    answer = emulator.set_faults(fail_jobs=[{"match": "late", "at_progress": 0.0}])
    assert answer["jobs_failing"] == 1
    assert tg_status(client, job_id) == "error"  # fails now, not somewhere in its past
    events = client.get(f"{TG}/fine-tunes/{job_id}/events").json()["data"]
    assert [e["type"] for e in events].count("job_error") == 1


def test_stuck_jobs_stay_until_the_fault_is_cleared(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    emulator.set_faults(stuck=[{"status": "queued", "match": "slow"}])
    slow = tg_create(client, file_id, suffix="slow")["id"]
    quick = tg_create(client, file_id, suffix="quick")["id"]
    emulator.advance(3600)
    assert tg_status(client, slow) == "queued"
    assert tg_status(client, quick) == "completed"
    assert client.post(f"{TG}/fine-tunes/{slow}/cancel").json()["status"] == "cancel_requested"
    emulator.clear_faults()
    emulator.advance(5)
    assert tg_status(client, slow) == "cancelled"


def test_latency(emulator: EmulatorThread, client: httpx.Client) -> None:
    emulator.set_faults(latency_ms=80)
    started = time.perf_counter()
    assert client.get(f"{TG}/files").status_code == 200
    assert time.perf_counter() - started >= 0.08
    started = time.perf_counter()
    client.get("/")  # the health check is never slowed
    assert time.perf_counter() - started < 0.08


def test_fault_config_is_checked_and_readable(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    for bad in (
        {"nope": 1},
        {"error_rate": 2},
        {"rpm": 0},
        {"drop_mode": "sideways"},
        {"fail_jobs": [{"matchh": "x"}]},
    ):
        answer = client.post("/_emulator/faults", json=bad)
        assert answer.status_code == 400, bad
    emulator.set_faults(rpm=100, stuck=["queued"])
    current = client.get("/_emulator/faults").json()
    assert current["rpm"] == 100 and current["stuck"][0]["status"] == "queued"
    client.delete("/_emulator/faults")
    assert client.get("/_emulator/faults").json()["rpm"] is None


def test_faults_from_the_constructor(tmp_path: object) -> None:
    with (
        EmulatorThread(faults={"rpm": 1, "seed": 3}) as emu,
        http_client(emu.url) as http,
    ):
        assert http.get(f"{TG}/files").status_code == 200
        assert http.get(f"{TG}/files").status_code == 429
        emu.reset()  # back to the startup faults, with a fresh window
        assert http.get(f"{TG}/files").status_code == 200
        assert http.get(f"{TG}/files").status_code == 429


def test_requests_are_logged(emulator: EmulatorThread, client: httpx.Client) -> None:
    answer = client.get(f"{TG}/files")
    httpx.get(f"{emulator.url}{TG}/files")  # no key
    log = client.get("/_emulator/requests", params={"provider": "together"}).json()["data"]
    assert [(r["method"], r["status"]) for r in log] == [("GET", 200), ("GET", 401)]
    assert log[0]["request_id"] == answer.headers["x-request-id"]


def test_a_bare_stuck_string_reads_status_colon_match_as_the_flag_does(
    emulator: EmulatorThread, client: httpx.Client
) -> None:
    file_id = tg_ready_file(emulator, client)
    answer = client.post("/_emulator/faults", json={"stuck": ["running:longrun"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stuck"] == [{"status": "running", "match": "longrun", "provider": None}]
    held = tg_create(client, file_id, suffix="longrun")["id"]
    free = tg_create(client, file_id, suffix="quick")["id"]
    emulator.advance(3600)
    assert tg_status(client, held) == "running"
    assert tg_status(client, free) == "completed"


def test_bare_fail_jobs_string_reads_the_mode_after_the_colon() -> None:
    from reconciler.emulator.app import HOLDABLE
    from reconciler.emulator.faults import FaultConfig

    config = FaultConfig.from_json(
        {"fail_jobs": ["bad:permanent", "flaky:retryable", "x"]}, statuses=HOLDABLE
    )
    assert [(r.match, r.retryable) for r in config.fail_jobs] == [
        ("bad", False),
        ("flaky", True),
        ("x", True),
    ]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"nope": 1}, "nope", "unknown fault option"),
        ({"stuck": ["runing"]}, "stuck[0].status", "'runing' is not a status"),
        ({"stuck": ["running:longrun", "queud:x"]}, "stuck[1].status", "'queud'"),
        ({"stuck": ["running:"]}, "stuck[0]", "not STATUS or STATUS:MATCH"),
        ({"stuck": [":slow"]}, "stuck[0]", "not STATUS or STATUS:MATCH"),
        ({"stuck": [{"status": "RUNNING", "provider": "openai"}]}, "stuck[0].status", "openai"),
        ({"stuck": [{"status": "running", "provider": "mistral"}]}, "stuck[0].status", "RUNNING"),
        ({"stuck": [{"status": "completed"}]}, "stuck[0].status", "can hold"),
        ({"stuck": [{"status": "queued", "provider": "bedrock"}]}, "stuck[0].provider", "bedrock"),
        ({"stuck": [{"match": "x"}]}, "stuck[0].status", "required"),
        ({"stuck": [{"status": "queued", "oops": 1}]}, "stuck[0].oops", "unknown key"),
        ({"stuck": "running"}, "stuck", "a list"),
        ({"fail_jobs": ["flaky:perm"]}, "fail_jobs[0]", "'perm'"),
        ({"fail_jobs": [{"match": "x", "retryable": "false"}]}, "fail_jobs[0].retryable", "true"),
        ({"fail_jobs": [{"match": "x", "at_progress": 2}]}, "fail_jobs[0].at_progress", "range"),
        ({"fail_jobs": [{"match": 3}]}, "fail_jobs[0].match", "not a string"),
        ({"fail_jobs": [7]}, "fail_jobs[0]", "string or an object"),
        ({"wrong_job_id": "yes"}, "wrong_job_id", "true or false"),
        ({"seed": 1.5}, "seed", "whole number"),
        ({"rpm": "30"}, "rpm", "not a number"),
        ({"error_next": -1}, "error_next", "at least 0"),
        ({"latency_ms": -5}, "latency_ms", "at least 0"),
        ({"methods": ["FETCH"]}, "methods[0]", "not an HTTP method"),
        ({"path_contains": 5}, "path_contains", "a string"),
    ],
)
def test_a_bad_fault_entry_is_refused_by_name_and_changes_nothing(
    emulator: EmulatorThread,
    client: httpx.Client,
    body: dict[str, object],
    field: str,
    words: str,
) -> None:
    emulator.set_faults(rpm=100)
    before = client.get("/_emulator/faults").json()
    answer = client.post("/_emulator/faults", json={"latency_ms": 5, **body})
    assert answer.status_code == 400
    error = answer.json()
    assert error["field"] == field and error["error"].startswith(f"{field}: ")
    assert words in error["error"], error
    assert client.get("/_emulator/faults").json() == before


def test_every_provider_status_a_job_passes_through_can_be_held() -> None:
    from reconciler.emulator.app import HOLDABLE
    from reconciler.emulator.faults import FaultConfig

    for provider, statuses in {
        "together": ("pending", "queued", "running", "compressing", "uploading"),
        "openai": ("validating_files", "queued", "running"),
        "mistral": ("QUEUED", "VALIDATING", "VALIDATED", "RUNNING"),
    }.items():
        rules = [{"status": s, "provider": provider} for s in statuses]
        assert len(FaultConfig.from_json({"stuck": rules}, statuses=HOLDABLE).stuck) == len(
            statuses
        )


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        (["--stuck", "runing"], "stuck[0].status: 'runing' is not a status"),
        (["--stuck", "running:"], "--stuck: 'running:' is not STATUS or STATUS:MATCH"),
        (["--fail-jobs", "flaky:perm"], "--fail-jobs: 'flaky:perm': after ':' comes"),
    ],
)
def test_bad_fault_flags_are_one_line_and_exit_1(
    flag: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.emulator.__main__ import main

    with socket.socket() as holder:  # a port in use: a flag wrongly accepted cannot serve
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert main(["--port", str(holder.getsockname()[1]), *flag]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {words}") and err.count("\n") == 1, err
