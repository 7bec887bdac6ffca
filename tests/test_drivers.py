"""The contract every driver keeps, one test per rule run for each provider: a create is
posted once and never re-posted when its fate is unknown, a 429 is waited out, the key
never leaks, cancel is idempotent, and so on. What differs between the providers (paths,
wire bodies, which phase an answer means) stands in a small table beside each test;
behaviour only one provider has is tested in ``test_<provider>_driver.py``. No network:
respx routers, and at the end the in-thread emulator on loopback (a finished job's
checkpoints)."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import emulator_fixtures
import httpx
import mistral_fake
import openai_fake
import pytest
import respx
import together_fake
from driver_fixtures import (
    ENDPOINTS,
    PROVIDERS,
    SHA,
    TAG,
    UPLOAD_NAME,
    make_driver,
    make_request,
    multipart,
    new_router,
    write_data_file,
)

from reconciler.emulator import EmulatorThread
from reconciler.errors import ErrorKind, ProviderError
from reconciler.model import Phase, RemoteJob
from reconciler.providers.pool import DriverPool

JOBS = {"together": "fine-tunes", "openai": "fine_tuning/jobs", "mistral": "fine_tuning/jobs"}
JOB_IDS = {"together": "ft-1", "openai": "ftjob-1", "mistral": mistral_fake.JOB_ID}
RUNNING = {"together": "running", "openai": "running", "mistral": "RUNNING"}
SUCCEEDED = {"together": "completed", "openai": "succeeded", "mistral": "SUCCESS"}

emulator_server, emulator = emulator_fixtures.emulator_server, emulator_fixtures.emulator


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def router(provider: str) -> respx.MockRouter:
    return new_router(provider)


def mapping(provider: str) -> ModuleType:
    """The provider's pure wire mapping (``reconciler.providers.<name>.mapping``)."""
    return importlib.import_module(f"reconciler.providers.{provider}.mapping")


def job_path(provider: str, *rest: str) -> str:
    return "/".join((JOBS[provider], JOB_IDS[provider], *rest))


def error_body(provider: str, message: str, **fields: Any) -> dict[str, Any]:
    """An error answer: Together and OpenAI wrap it in an ``error`` object, Mistral not."""
    if provider == "mistral":
        return {"message": message, **fields}
    return {"error": {"message": message, **fields}}


# ---------------------------------------------------------------- the mapping


# the statuses that mean each phase, with some in another case or padded (they must
# still map) and some unknown ones (they must map to UNKNOWN)
PHASES: dict[str, dict[Phase, tuple[str, ...]]] = {
    "together": {
        Phase.QUEUED: ("pending", "queued"),
        Phase.RUNNING: ("running", "compressing", "uploading", " Running "),
        Phase.CANCELLING: ("cancel_requested",),
        Phase.SUCCEEDED: ("completed", "COMPLETED"),
        Phase.FAILED: ("error", "user_error"),
        Phase.CANCELLED: ("cancelled",),
        Phase.UNKNOWN: ("paused", ""),
    },
    "openai": {
        Phase.VALIDATING: ("validating_files",),
        Phase.QUEUED: ("queued",),
        Phase.RUNNING: ("running", "paused", " running "),  # paused: still an active job
        Phase.SUCCEEDED: ("succeeded", "SUCCEEDED"),
        Phase.FAILED: ("failed",),
        Phase.CANCELLED: ("cancelled",),
        Phase.UNKNOWN: ("defrosting", ""),
    },
    "mistral": {
        Phase.QUEUED: ("QUEUED",),
        Phase.RUNNING: ("STARTED", "RUNNING", "running"),
        Phase.VALIDATING: ("VALIDATING", "VALIDATED"),  # VALIDATED: parked, not running yet
        Phase.CANCELLING: ("CANCELLATION_REQUESTED",),
        Phase.SUCCEEDED: ("SUCCESS", " Success "),
        Phase.FAILED: ("FAILED", "FAILED_VALIDATION"),
        Phase.CANCELLED: ("CANCELLED",),
        Phase.UNKNOWN: ("PAUSED", ""),
    },
}
PHASE_CASES = [
    pytest.param(p, status, phase, id=f"{p}-{status.replace(' ', '_') or 'empty'}")
    for p, table in PHASES.items()
    for phase, statuses in table.items()
    for status in statuses
]


@pytest.mark.parametrize(("provider", "status", "phase"), PHASE_CASES)
def test_phase_for(provider: str, status: str, phase: Phase) -> None:
    """Each wire status means one phase, whatever its case and padding; unknown ones
    mean UNKNOWN."""
    assert mapping(provider).phase_for(status) is phase


# a status no mapping knows, in the provider's own case
UNKNOWN_STATUS = {"together": "defrosting", "openai": "defrosting", "mistral": "DEFROSTING"}
LISTED_JOB = {
    "together": lambda status: together_fake.wire_job(status, truncated=True),
    "openai": openai_fake.wire_job,
    "mistral": mistral_fake.wire_job,
}


@pytest.mark.parametrize("form", ["minimal", "full"])
def test_unknown_status_is_active_not_terminal(provider: str, form: str) -> None:
    status = UNKNOWN_STATUS[provider]
    minimal = {"id": JOB_IDS[provider], "status": status}
    raw = minimal if form == "minimal" else LISTED_JOB[provider](status)
    job = mapping(provider).job_from_wire(raw)
    assert job.phase is Phase.UNKNOWN and job.phase.active and not job.phase.terminal
    assert job.status == status and job.error is None


def test_job_from_wire_tolerates_an_empty_object(provider: str) -> None:
    job = mapping(provider).job_from_wire({})
    assert job.id == "" and job.phase is Phase.UNKNOWN and job.created_at is None


def test_remote_job_is_the_common_type(provider: str) -> None:
    job = mapping(provider).job_from_wire(LISTED_JOB[provider](RUNNING[provider]))
    assert isinstance(job, RemoteJob)


@pytest.mark.parametrize("provider", ["together", "openai"])
def test_unknown_method_is_refused(provider: str) -> None:
    # Mistral refuses every method but SFT by name: see its own file
    with pytest.raises(ValueError, match="rl"):
        mapping(provider).create_payload(make_request(provider, method="rl"))


# ---------------------------------------------------------------- create


# the create answer of a fresh job and the phase it means: OpenAI validates files first
FRESH = {
    "together": (together_fake.wire_job("pending", truncated=True, id="ft-1"), Phase.QUEUED),
    "openai": (openai_fake.wire_job("validating_files", id="ftjob-1"), Phase.VALIDATING),
    "mistral": (mistral_fake.wire_job("QUEUED"), Phase.QUEUED),
}
# no suffix at Mistral: there the suffix is ours alone, it carries the tag
CREATE_OVER = {
    "together": {"suffix": "support-v3", "hyperparameters": {"epochs": 3}},
    "openai": {"suffix": "support-v3", "hyperparameters": {"epochs": 3}},
    "mistral": {"hyperparameters": {"epochs": 3}},
}


def test_create_posts_the_payload_once(provider: str, router: respx.MockRouter) -> None:
    answer, phase = FRESH[provider]
    route = router.post(JOBS[provider]).respond(200, json=answer)
    driver, _, _ = make_driver(provider, router)
    req = make_request(provider, **CREATE_OVER[provider])
    job = driver.create_job(req)
    assert route.call_count == 1
    sent = route.calls.last.request
    assert json.loads(sent.content) == mapping(provider).create_payload(req)
    assert sent.headers["Authorization"] == f"Bearer {ENDPOINTS[provider].key}"
    assert job.phase is phase and job.tag == TAG and job.id == JOB_IDS[provider]


def _together_untagged() -> dict[str, Any]:
    answer = together_fake.wire_job("pending", truncated=True)
    del answer["suffix"], answer["model_output_name"]
    return answer


UNTAGGED = {
    "together": _together_untagged(),
    "openai": openai_fake.wire_job("queued", metadata=None),
    "mistral": mistral_fake.wire_job("QUEUED", suffix=None),
}


def test_create_keeps_our_tag_when_the_answer_omits_it(
    provider: str, router: respx.MockRouter
) -> None:
    router.post(JOBS[provider]).respond(200, json=UNTAGGED[provider])
    driver, _, _ = make_driver(provider, router)
    assert driver.create_job(make_request(provider)).tag == TAG


@pytest.mark.parametrize("answer", ["500", "timeout"])
def test_create_is_not_reposted_when_ambiguous(
    provider: str, router: respx.MockRouter, answer: str
) -> None:
    """The job may exist: posting again could start a second, paid one."""
    outcome = (
        httpx.Response(500, json=error_body(provider, "internal"))
        if answer == "500"
        else httpx.ReadTimeout("slow")
    )
    route = router.post(JOBS[provider]).mock(side_effect=[outcome])
    driver, api_sleeps, driver_sleeps = make_driver(provider, router)
    with pytest.raises(ProviderError) as info:
        driver.create_job(make_request(provider))
    assert route.call_count == 1 and api_sleeps == [] and driver_sleeps == []
    assert info.value.ambiguous is True and info.value.kind is ErrorKind.RETRYABLE


# a create answer without an id: the job may exist, but which one is unknown
IDLESS = {
    "together": {"status": "pending"},
    "openai": {"object": "fine_tuning.job"},
    "mistral": {"object": "job"},
}


def test_create_without_an_id_is_ambiguous(provider: str, router: respx.MockRouter) -> None:
    router.post(JOBS[provider]).respond(200, json=IDLESS[provider])
    driver, _, _ = make_driver(provider, router)
    with pytest.raises(ProviderError) as info:
        driver.create_job(make_request(provider))
    assert info.value.ambiguous is True and info.value.kind is ErrorKind.RETRYABLE


QUEUED = {
    "together": together_fake.wire_job("pending", truncated=True),
    "openai": openai_fake.wire_job("queued"),
    "mistral": mistral_fake.wire_job("QUEUED"),
}


def test_create_is_reposted_after_429_honouring_retry_after(
    provider: str, router: respx.MockRouter
) -> None:
    """A 429 means no job was made, so the same body goes again after the wait."""
    route = router.post(JOBS[provider])
    slow = error_body(provider, "slow down", code="rate_limit_exceeded")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "7"}, json=slow),
        httpx.Response(200, json=QUEUED[provider]),
    ]
    driver, api_sleeps, _ = make_driver(provider, router)
    job = driver.create_job(make_request(provider))
    assert route.call_count == 2 and job.phase is Phase.QUEUED
    assert len(api_sleeps) == 1 and 7.0 <= api_sleeps[0] <= 7.2
    assert route.calls[0].request.content == route.calls[1].request.content


# ---------------------------------------------------------------- errors


# each provider's 401, quoting the key back as they do
UNAUTHORIZED = {
    "together": error_body(
        "together",
        f"Invalid API key provided: {ENDPOINTS['together'].key}",
        type="invalid_api_key",
    ),
    "openai": error_body(
        "openai",
        f"Incorrect API key provided: {ENDPOINTS['openai'].key}.",
        type="invalid_request_error",
        code="invalid_api_key",
    ),
    "mistral": {
        "object": "error",
        "message": f"Unauthorized: {ENDPOINTS['mistral'].key}",
        "type": "invalid_request_error",
    },
}


def test_auth_error_names_the_variable_never_the_key(
    provider: str, router: respx.MockRouter
) -> None:
    endpoint = ENDPOINTS[provider]
    router.get(JOBS[provider]).respond(401, json=UNAUTHORIZED[provider])
    router.post(JOBS[provider]).respond(401, json=UNAUTHORIZED[provider])
    driver, api_sleeps, driver_sleeps = make_driver(provider, router)
    calls = (lambda: list(driver.list_jobs()), lambda: driver.create_job(make_request(provider)))
    for call in calls:
        with pytest.raises(ProviderError) as info:
            call()
        err = info.value
        assert err.kind is ErrorKind.AUTH and api_sleeps == [] and driver_sleeps == []
        assert endpoint.key_var in str(err)
        key = endpoint.key
        assert key not in str(err) and key not in err.message and key not in repr(err.args)


# the 404 of a job that is gone, and the text the error must keep (Mistral: FastAPI's)
NOT_FOUND = {
    "together": (error_body("together", "not found"), "not found"),
    "openai": (error_body("openai", "No such job"), "No such job"),
    "mistral": ({"detail": "Job not found"}, "Job not found"),
}


def test_not_found(provider: str, router: respx.MockRouter) -> None:
    body, text = NOT_FOUND[provider]
    router.get(job_path(provider)).respond(404, json=body)
    driver, _, _ = make_driver(provider, router)
    with pytest.raises(ProviderError) as info:
        driver.get_job(JOB_IDS[provider])
    assert info.value.kind is ErrorKind.NOT_FOUND and info.value.status == 404
    assert text in info.value.message


# a job as GET answers it, given its wire status
GOT = {
    "together": lambda status: together_fake.wire_job(status, id="ft-1"),
    "openai": lambda status: openai_fake.wire_job(status, id="ftjob-1"),
    "mistral": lambda status: mistral_fake.wire_job(status, detailed=True),
}


@pytest.mark.parametrize("failures", [1, 2])
def test_get_retries_503_then_succeeds(
    provider: str, router: respx.MockRouter, failures: int
) -> None:
    route = router.get(job_path(provider))
    overloaded = [httpx.Response(503, text="overloaded")] * failures
    route.side_effect = [*overloaded, httpx.Response(200, json=GOT[provider](RUNNING[provider]))]
    driver, api_sleeps, _ = make_driver(provider, router)
    job = driver.get_job(JOB_IDS[provider])
    assert job.id == JOB_IDS[provider] and job.phase is Phase.RUNNING
    assert route.call_count == failures + 1 and len(api_sleeps) == failures


# ---------------------------------------------------------------- cancel


# the answer to a cancel call and what it means: OpenAI cancels at once, the others
# only take the request
CANCEL_ANSWER = {
    "together": (
        together_fake.wire_job("cancel_requested", truncated=True, id="ft-1"),
        Phase.CANCELLING,
    ),
    "openai": (openai_fake.wire_job("cancelled", id="ftjob-1"), Phase.CANCELLED),
    "mistral": (
        mistral_fake.wire_job("CANCELLATION_REQUESTED", detailed=True),
        Phase.CANCELLING,
    ),
}


def test_cancel_retries_a_5xx(provider: str, router: respx.MockRouter) -> None:
    """Cancelling twice is harmless, so a failed cancel call is simply retried."""
    answer, phase = CANCEL_ANSWER[provider]
    route = router.post(job_path(provider, "cancel"))
    route.side_effect = [httpx.Response(502, text="bad gateway"), httpx.Response(200, json=answer)]
    driver, _, _ = make_driver(provider, router)
    job = driver.cancel_job(JOB_IDS[provider])
    assert job.phase is phase and job.id == JOB_IDS[provider] and route.call_count == 2


def test_cancel_of_a_finished_job_returns_it(provider: str, router: respx.MockRouter) -> None:
    refused = error_body(provider, "job is done")
    router.post(job_path(provider, "cancel")).respond(400, json=refused)
    router.get(job_path(provider)).respond(200, json=GOT[provider](SUCCEEDED[provider]))
    driver, _, _ = make_driver(provider, router)
    assert driver.cancel_job(JOB_IDS[provider]).phase is Phase.SUCCEEDED


def test_cancel_refused_for_a_running_job_raises(provider: str, router: respx.MockRouter) -> None:
    router.post(job_path(provider, "cancel")).respond(400, json=error_body(provider, "no"))
    router.get(job_path(provider)).respond(200, json=GOT[provider](RUNNING[provider]))
    driver, _, _ = make_driver(provider, router)
    with pytest.raises(ProviderError) as info:
        driver.cancel_job(JOB_IDS[provider])
    assert info.value.kind is ErrorKind.PERMANENT and info.value.status == 400


# ---------------------------------------------------------------- the driver object


# beyond the protocol, what each catalog entry's capabilities promise
EXTRA_METHODS = {
    "together": ("estimate_price",),
    "openai": ("pause_job", "resume_job", "checkpoints"),
    "mistral": ("start_if_parked", "estimate_cost"),
}


def test_driver_has_the_protocol_surface(provider: str, router: respx.MockRouter) -> None:
    driver, _, _ = make_driver(provider, router)
    assert driver.provider == provider
    for name in (
        "upload_file",
        "find_file",
        "create_job",
        "get_job",
        "list_jobs",
        "find_jobs_by_tag",
        "cancel_job",
        "job_events",
        "close",
        *EXTRA_METHODS[provider],
    ):
        assert callable(getattr(driver, name)), name


def test_close_closes_the_http_client(provider: str, router: respx.MockRouter) -> None:
    driver, _, _ = make_driver(provider, router)
    driver.close()
    assert driver.api.http.is_closed


# ---------------------------------------------------------------- one-POST uploads
# OpenAI (below its Uploads-API threshold) and Mistral take the file in a single
# multipart POST; Together's signed-URL flow is tested in its own file.


class OnePostUpload(NamedTuple):
    wire_file: Callable[..., dict[str, Any]]
    file_id: str
    # bytes in the answer to a retried upload: Mistral may leave it null (the driver then
    # reads the local size), OpenAI always states it
    retried_bytes: int | None


MULTIPART_FILES = {
    "openai": OnePostUpload(openai_fake.wire_file, "file-new", 1234),
    "mistral": OnePostUpload(mistral_fake.wire_file, mistral_fake.TRAIN_ID, None),
}
multipart_providers = pytest.mark.parametrize("provider", sorted(MULTIPART_FILES))


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_data_file(tmp_path)


@multipart_providers
def test_upload_is_one_multipart_post(
    provider: str, router: respx.MockRouter, data_file: Path
) -> None:
    wire_file, file_id, _ = MULTIPART_FILES[provider]
    route = router.post("files").respond(200, json=wire_file(file_id, filename=UPLOAD_NAME))
    driver, _, _ = make_driver(provider, router)
    remote = driver.upload_file(data_file, SHA)
    assert remote.id == file_id and remote.filename == UPLOAD_NAME and remote.bytes == 1234
    parts = multipart(route.calls.last.request)
    assert parts["purpose"] == (None, b"fine-tune")
    assert parts["file"] == (UPLOAD_NAME, data_file.read_bytes())
    # one request in all: no Uploads API, no second call
    assert route.call_count == 1 and len(router.calls) == 1


@pytest.mark.parametrize("provider", ["mistral"])
def test_upload_retry_resends_the_whole_file(
    provider: str, router: respx.MockRouter, data_file: Path
) -> None:
    """Safe to retry where the provider dedupes identical uploads itself (Mistral)."""
    wire_file, file_id, retried_bytes = MULTIPART_FILES[provider]
    route = router.post("files")
    route.side_effect = [
        httpx.Response(503, text="busy"),
        httpx.Response(200, json=wire_file(file_id, bytes=retried_bytes)),
    ]
    driver, api_sleeps, _ = make_driver(provider, router)
    remote = driver.upload_file(data_file, SHA)
    assert remote.id == file_id and route.call_count == 2 and len(api_sleeps) == 1
    assert multipart(route.calls[1].request)["file"][1] == data_file.read_bytes()
    assert remote.bytes == (retried_bytes or data_file.stat().st_size)


@pytest.mark.parametrize("provider", ["openai"])
def test_an_upload_to_openai_is_posted_once(
    provider: str, router: respx.MockRouter, data_file: Path
) -> None:
    """OpenAI keeps duplicates: a lost answer is looked up by name on the next pass
    (DESIGN §4), never re-posted blindly."""
    wire_file, file_id, _ = MULTIPART_FILES[provider]
    route = router.post("files")
    route.side_effect = [
        httpx.Response(503, text="busy"),
        httpx.Response(200, json=wire_file(file_id)),
    ]
    driver, api_sleeps, _ = make_driver(provider, router)
    with pytest.raises(ProviderError) as info:
        driver.upload_file(data_file, SHA)
    assert info.value.ambiguous and route.call_count == 1 and not api_sleeps


# ---------------------------------------------------------------- against the emulator


@pytest.fixture
def emulated(emulator: EmulatorThread, provider: str) -> Iterator[Any]:
    """The ``provider`` driver against the in-thread emulator, whose clock its sleeps move
    (Together's file polling waits out the emulated processing)."""
    env = {
        f"{provider.upper()}_API_KEY": emulator_fixtures.KEY,
        f"{provider.upper()}_BASE_URL": f"{emulator.url}/{provider}/v1",
    }

    def advance(seconds: float) -> None:
        emulator.advance(seconds)

    drivers = DriverPool(env, sleep=advance)
    yield drivers.get(provider)
    drivers.close()


def test_a_finished_job_lists_its_checkpoints_oldest_first(
    provider: str, emulator: EmulatorThread, emulated: Any, tmp_path: Path
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(emulator_fixtures.jsonl(emulator_fixtures.CHAT_LINES))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    remote = emulated.upload_file(path, sha)
    job = emulated.create_job(make_request(provider, training_file_id=remote.id))
    for _ in range(50):  # hours of emulated time, in steps a parked job is started within
        job = emulated.start_if_parked(job) if provider == "mistral" else job
        if job.phase.terminal:
            break
        emulator.advance(600)
        job = emulated.get_job(job.id)
    assert job.phase is Phase.SUCCEEDED, job
    found = emulated.checkpoints(job.id)
    assert found and all(c.id for c in found)
    assert all(c.step is not None and c.created_at is not None for c in found)
    steps = [c.step or 0 for c in found]
    stamps = [c.created_at or 0.0 for c in found]
    assert steps == sorted(steps) and stamps == sorted(stamps)
