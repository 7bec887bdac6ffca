"""What only the Mistral driver does: its pure mappings (suffix tags, costs, events),
its wire format against the official spec, and over a respx router the 409 adoption,
the parked start, paging by total and its upload refusals. The contract every driver
keeps (create once, 429, auth, cancel...) is in test_drivers.py. No network."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import driver_fixtures
import httpx
import jsonschema
import pytest
import respx
from driver_fixtures import SHA, TAG, make_driver, write_data_file
from mistral_fake import (
    CHECKPOINT,
    CREATE_ANSWER,
    CREATE_BODY,
    DETAILED_ANSWER,
    DETAILED_JOB,
    EVENT,
    FILE,
    FILES,
    JOB,
    JOB_ID,
    JOBS,
    STATUS_ENUM,
    TRAIN_ID,
    VAL_ID,
    VALIDATION_ERROR,
    job_id,
    page,
    spec_document,
    spec_validator,
    wire_checkpoint,
    wire_event,
    wire_file,
    wire_job,
)

from reconciler.errors import ErrorKind, ProviderError
from reconciler.model import Phase
from reconciler.providers.mistral.mapping import (
    HYPERPARAMETERS,
    PAGE_SIZE,
    STATUS_TO_PHASE,
    create_payload,
    event_from_wire,
    events_from_wire,
    job_from_wire,
    request_problems,
    tag_from_wire,
)

JOBS_PATH = "fine_tuning/jobs"


# ---------------------------------------------------------------- status mapping


def test_every_spec_status_is_mapped() -> None:
    spec_validator(STATUS_ENUM)("QUEUED")  # skips when the spec is absent
    enum = spec_document()["components"]["schemas"]["CompletionJobOut"]["properties"]["status"]
    assert set(enum["enum"]) == set(STATUS_TO_PHASE)


def test_failed_is_retryable_failed_validation_is_not() -> None:
    failed = job_from_wire(wire_job("FAILED", detailed=True))
    assert failed.phase is Phase.FAILED and failed.error_retryable is True
    assert failed.error == "job ended with status FAILED"
    invalid = job_from_wire(wire_job("FAILED_VALIDATION", detailed=True))
    assert invalid.phase is Phase.FAILED and invalid.error_retryable is False
    assert invalid.error is not None and "FAILED_VALIDATION" in invalid.error


# this module's router fixture and create request, both for Mistral
router = driver_fixtures.router_fixture("mistral")
request = functools.partial(driver_fixtures.make_request, "mistral")


# ---------------------------------------------------------------- create payload


def test_defaults_are_parked_tagged_and_minimal() -> None:
    assert create_payload(request()) == {
        "model": "open-mistral-7b",
        "training_files": [{"file_id": TRAIN_ID, "weight": 1.0}],
        "hyperparameters": {},
        "auto_start": False,
        "suffix": TAG,
    }


def test_hyperparameters_are_mapped() -> None:
    hp = {
        "learning_rate": 1e-5,
        "weight_decay": 0.01,
        "warmup_ratio": 0.1,
        "epochs": 3,
        "max_seq_length": 4096,
        "seed": None,  # unset: not sent
    }
    body = create_payload(request(hyperparameters=hp, validation_file_id=VAL_ID))
    assert body["hyperparameters"] == {
        "learning_rate": 1e-5,
        "weight_decay": 0.01,
        "warmup_fraction": 0.1,
        "epochs": 3,
        "seq_len": 4096,
    }
    assert body["validation_files"] == [VAL_ID]
    assert "job_type" not in body  # optional; null means completion
    assert set(hp) - {"seed"} <= set(HYPERPARAMETERS)


def test_options_merge_but_never_take_the_suffix() -> None:
    options = {
        "hyperparameters": {"training_steps": 100, "fim_ratio": 0.5},
        "invalid_sample_skip_percentage": 0.1,
        "suffix": "mine",
    }
    body = create_payload(request(hyperparameters={"learning_rate": 1e-4}, options=options))
    assert body["hyperparameters"] == {
        "learning_rate": 1e-4,
        "training_steps": 100,
        "fim_ratio": 0.5,
    }
    assert body["invalid_sample_skip_percentage"] == 0.1
    assert body["suffix"] == TAG


def test_auto_start_option_passes_through() -> None:
    assert create_payload(request(options={"auto_start": True}))["auto_start"] is True


def test_dpo_and_from_are_refused() -> None:
    with pytest.raises(ValueError, match="supervised"):
        create_payload(request(method="dpo", dpo={"beta": 0.1}))
    with pytest.raises(ValueError, match="another job"):
        create_payload(request(from_output="ft:open-mistral-7b:rc-aaaaaaaaaaaa:20240531:1"))


def test_request_problems_clean_request() -> None:
    hp = {"learning_rate": 1e-4, "warmup_ratio": 0.05, "epochs": 2, "max_seq_length": 8192}
    options = {"hyperparameters": {"training_steps": 10}, "auto_start": True}
    assert request_problems(request(hyperparameters=hp, options=options)) == []


def test_request_problems_dpo_names_provider_and_field() -> None:
    assert request_problems(request(method="dpo", dpo={"beta": 0.1})) == [
        "method: mistral supports supervised fine-tuning only (no DPO)"
    ]


def test_request_problems_messages() -> None:
    problems = request_problems(
        request(
            lora=False,
            hyperparameters={
                "batch_size": 8,
                "max_grad_norm": 1.0,
                "lr_scheduler": "cosine",
                "learning_rate": 2.0,
                "weight_decay": 1.5,
                "warmup_ratio": 1.2,
                "max_seq_length": 64,
            },
            suffix="support-v3",
            options={
                "model": "x",
                "training_files": [],
                "suffix": "y",
                "batch": 1,
                "hyperparameters": {"lora_rank": 4},
            },
            from_output="ft:base",
        )
    )
    text = "\n".join(problems)
    for needle in (
        "lora: not configurable at mistral",
        "hyperparameters.batch_size: no equivalent at mistral",
        "hyperparameters.max_grad_norm: no equivalent at mistral",
        "hyperparameters.lr_scheduler: no equivalent at mistral",
        "hyperparameters.learning_rate: mistral accepts 1e-08 to 1",
        "hyperparameters.weight_decay: mistral accepts 0 to 1",
        "hyperparameters.warmup_ratio: mistral accepts 0 to 1",
        "hyperparameters.max_seq_length: mistral needs at least 100",
        "suffix: cannot be used at mistral",
        "from: mistral cannot start",
        "options.model: set by reconciler",
        "options.training_files: set by reconciler",
        "options.suffix: set by reconciler",
        "options.batch: not a field of mistral's create-job request",
        "options.hyperparameters.lora_rank: not a mistral hyperparameter",
    ):
        assert needle in text, needle
    assert all(p.split(": ", 1)[0] and ": " in p for p in problems)
    lora_dict = request_problems(request(lora={"r": 8}))
    assert lora_dict == ["lora: not configurable at mistral (rank, alpha and modules are fixed)"]
    assert request_problems(request(lora=None)) == []


# ---------------------------------------------------------------- against the official spec


SPEC_REQUESTS = {
    "defaults": request(),
    "everything": request(
        validation_file_id=VAL_ID,
        hyperparameters={
            "learning_rate": 1e-4,
            "weight_decay": 0.1,
            "warmup_ratio": 0.05,
            "epochs": 3,
            "max_seq_length": 8192,
        },
        options={
            "hyperparameters": {"training_steps": 100, "fim_ratio": 0.9},
            "invalid_sample_skip_percentage": 0.05,
            "integrations": [{"type": "wandb", "project": "ft", "api_key": "k" * 40}],
        },
    ),
}


@pytest.mark.parametrize("name", sorted(SPEC_REQUESTS))
def test_create_payload_conforms_to_spec(name: str) -> None:
    spec_validator(CREATE_BODY)(create_payload(SPEC_REQUESTS[name]))


def test_spec_validator_is_not_vacuous() -> None:
    validate = spec_validator(CREATE_BODY)
    body = create_payload(request())
    with pytest.raises(jsonschema.ValidationError):
        validate({**body, "suffix": "a-suffix-of-19-char"})  # maxLength 18
    with pytest.raises(jsonschema.ValidationError):
        validate({**body, "training_files": [TRAIN_ID]})  # objects, not bare ids
    with pytest.raises(jsonschema.ValidationError):
        validate({**body, "training_files": [{"file_id": "file-train"}]})  # not a UUID
    with pytest.raises(jsonschema.ValidationError):
        validate({k: v for k, v in body.items() if k != "hyperparameters"})
    with pytest.raises(jsonschema.ValidationError):
        validate({**body, "hyperparameters": {"learning_rate": 2}})


def test_sample_wire_objects_conform_to_spec() -> None:
    validate_job, validate_detailed = spec_validator(JOB), spec_validator(DETAILED_JOB)
    validate_create, validate_get = spec_validator(CREATE_ANSWER), spec_validator(DETAILED_ANSWER)
    for status in STATUS_TO_PHASE:
        validate_job(wire_job(status))
        validate_create(wire_job(status))
        detailed = wire_job(status, detailed=True, checkpoints=[wire_checkpoint(10)])
        validate_detailed(detailed)
        validate_get(detailed)
    validate_detailed(wire_job("FAILED", detailed=True, metadata=None))
    spec_validator(JOBS)(page([wire_job(), wire_job("SUCCESS")], 2))
    spec_validator(EVENT)(wire_event())
    spec_validator(CHECKPOINT)(wire_checkpoint(10, loss=None))
    spec_validator(FILE)(wire_file())
    spec_validator(FILES)(page([wire_file()], 1))
    spec_validator(VALIDATION_ERROR)(UNPROCESSABLE)
    with pytest.raises(jsonschema.ValidationError):
        validate_job({**wire_job(), "status": "paused"})


# ---------------------------------------------------------------- job_from_wire


def test_running_job_progress_from_the_latest_checkpoint() -> None:
    checkpoints = [wire_checkpoint(40, 0.8193), wire_checkpoint(20, 0.9), wire_checkpoint(30, 0.85)]
    job = job_from_wire(wire_job("RUNNING", detailed=True, checkpoints=checkpoints))
    assert job.phase is Phase.RUNNING and job.progress == "step 40/100, loss 0.819"
    assert job.tag == TAG and job.id == JOB_ID and job.fine_tuned_model is None
    assert job.created_at == 1717172592.0 and job.error is None


def test_progress_without_total_or_loss_and_without_checkpoints() -> None:
    job = wire_job("RUNNING", detailed=True, hyperparameters={"learning_rate": 1e-4})
    job["checkpoints"] = [wire_checkpoint(10, loss=None)]
    assert job_from_wire(job).progress == "step 10"
    assert job_from_wire(wire_job("RUNNING")).progress is None  # list form: no checkpoints


def test_succeeded_job_has_model_and_tokens() -> None:
    job = job_from_wire(wire_job("SUCCESS", detailed=True))
    assert job.phase is Phase.SUCCEEDED and job.trained_tokens == 1310720
    assert job.fine_tuned_model == f"ft:open-mistral-7b:{TAG}:20240531:2813b7e6"


def test_tag_from_suffix_or_model_name() -> None:
    assert tag_from_wire({"suffix": TAG}) == TAG
    assert tag_from_wire({"suffix": "support-v3"}) is None
    assert tag_from_wire({"suffix": "rc-0123456789AB"}) is None
    model = f"ft:open-mistral-7b:{TAG}:20240531:2813b7e6"
    assert tag_from_wire({"suffix": None, "fine_tuned_model": model}) == TAG
    classifier = f"ft:classifier:ministral-3b-latest:{TAG}:20250101:abcd1234"
    assert tag_from_wire({"fine_tuned_model": classifier}) == TAG
    assert tag_from_wire({"fine_tuned_model": "ft:open-mistral-7b:57d37e6c:20240531:x"}) is None


@pytest.mark.parametrize(
    ("metadata", "cost"),
    [
        ({"cost": 2.6214, "cost_currency": "USD"}, 2.6214),
        ({"cost": 4, "cost_currency": "usd"}, 4.0),
        ({"cost": 10, "cost_currency": "EUR"}, None),  # no exchange rate invented
        ({"cost": 10, "cost_currency": None}, None),
        ({"cost": None, "cost_currency": "USD"}, None),
        (None, None),
    ],
)
def test_cost_only_in_dollars(metadata: dict[str, Any] | None, cost: float | None) -> None:
    assert job_from_wire(wire_job("VALIDATED", metadata=metadata)).cost_usd == cost


def test_error_from_the_newest_event_that_says_why() -> None:
    events = [
        wire_event("FAILED", 300, data={"status": "FAILED", "error": "GPU node lost"}),
        wire_event("RUNNING", 200, data={"status": "RUNNING", "message": "old news"}),
        wire_event("QUEUED", 100),
    ]
    job = job_from_wire(wire_job("FAILED", detailed=True, events=events))
    assert job.error == "GPU node lost" and job.error_retryable is True


def test_job_from_wire_tolerates_odd_fields() -> None:
    # the empty object, the same for every provider: test_drivers.py
    odd = job_from_wire(
        {
            "id": "j",
            "status": "RUNNING",
            "created_at": True,
            "trained_tokens": "many",
            "suffix": 12,
            "metadata": "cheap",
            "hyperparameters": [],
            "checkpoints": ["x", {"step_number": "ten"}],
            "events": "none",
            "something_new": {"x": 1},
        }
    )
    assert odd.created_at is None and odd.trained_tokens is None
    assert odd.progress is None and odd.tag is None and odd.cost_usd is None


def test_events_oldest_first_with_levels() -> None:
    newest_first = [
        wire_event("FAILED_VALIDATION", 300),
        wire_event("VALIDATING", 200),
        {"name": "checkpoint-saved", "data": {"step": 10, "loss": 0.8}, "created_at": 200},
        wire_event("QUEUED", 100),
    ]
    got = events_from_wire(newest_first)
    assert [e.created_at for e in got] == [100.0, 200.0, 200.0, 300.0]
    assert [e.message for e in got] == [
        "status-updated: QUEUED",
        "checkpoint-saved: step=10, loss=0.8",  # tie: server order, reversed
        "status-updated: VALIDATING",
        "status-updated: FAILED_VALIDATION",
    ]
    assert [e.level for e in got] == ["info", "info", "info", "error"]
    assert events_from_wire(list(reversed(newest_first)))[0].created_at == 100.0
    assert events_from_wire(None) == [] and events_from_wire([]) == []
    bare = event_from_wire({"name": "job-created", "created_at": 1})
    assert bare.message == "job-created" and bare.level == "info"


# ---------------------------------------------------------------- the driver over HTTP


CONFLICT = {
    "object": "error",
    "message": "A similar job is already queued, validated or running",
    "type": "invalid_request_error",
    "param": None,
    "code": None,
}


def test_409_is_resolved_by_adopting_our_tagged_job(router: respx.MockRouter) -> None:
    post = router.post(JOBS_PATH).respond(409, json=CONFLICT)
    tagged = [wire_job("CANCELLED", id=job_id(1)), wire_job("VALIDATED", id=job_id(2))]
    lookup = router.get(JOBS_PATH, params={"suffix": TAG}).respond(200, json=page(tagged, 2))
    driver, api_sleeps, driver_sleeps = make_driver("mistral", router)
    job = driver.create_job(request())
    assert job.id == job_id(2) and job.tag == TAG  # the active one
    assert post.call_count == 1 and lookup.call_count == 1
    assert api_sleeps == [] and driver_sleeps == []


def test_409_waits_for_a_lagging_list(router: respx.MockRouter) -> None:
    router.post(JOBS_PATH).respond(409, json=CONFLICT)
    lookup = router.get(JOBS_PATH, params={"suffix": TAG})
    lookup.side_effect = [
        httpx.Response(200, json=page([], 0)),
        httpx.Response(200, json=page([wire_job("QUEUED")], 1)),
    ]
    driver, _, driver_sleeps = make_driver("mistral", router, conflict_recheck=(1.0, 3.0))
    assert driver.create_job(request()).id == JOB_ID
    assert lookup.call_count == 2 and driver_sleeps == [1.0]


def test_409_without_our_tag_is_permanent(router: respx.MockRouter) -> None:
    post = router.post(JOBS_PATH).respond(409, json=CONFLICT)
    # the server filter returned someone else's job: checked again client-side
    other = wire_job("RUNNING", suffix="rc-ffffffffffff")
    lookup = router.get(JOBS_PATH, params={"suffix": TAG}).respond(200, json=page([other], 1))
    driver, _, driver_sleeps = make_driver("mistral", router, conflict_recheck=(1.0, 3.0))
    with pytest.raises(ProviderError) as info:
        driver.create_job(request())
    err = info.value
    assert err.kind is ErrorKind.PERMANENT and err.status == 409 and not err.ambiguous
    assert "A similar job is already queued" in err.message and TAG in err.message
    assert post.call_count == 1 and lookup.call_count == 3 and driver_sleeps == [1.0, 3.0]


def test_start_if_parked_only_starts_validated_jobs(router: respx.MockRouter) -> None:
    start = router.post(f"{JOBS_PATH}/{JOB_ID}/start").respond(
        200, json=wire_job("QUEUED", detailed=True)
    )
    driver, _, _ = make_driver("mistral", router)
    for status in ("QUEUED", "VALIDATING", "RUNNING", "SUCCESS", "FAILED_VALIDATION"):
        job = job_from_wire(wire_job(status))
        assert driver.start_if_parked(job) is job
    assert start.call_count == 0
    started = driver.start_if_parked(job_from_wire(wire_job("VALIDATED")))
    assert start.call_count == 1 and started.phase is Phase.QUEUED and started.tag == TAG


def test_created_job_is_parked_then_started(router: respx.MockRouter) -> None:
    router.post(JOBS_PATH).respond(200, json=wire_job("QUEUED"))
    get = router.get(f"{JOBS_PATH}/{JOB_ID}")
    get.side_effect = [
        httpx.Response(200, json=wire_job("VALIDATING", detailed=True, metadata=None)),
        httpx.Response(200, json=wire_job("VALIDATED", detailed=True)),
    ]
    start = router.post(f"{JOBS_PATH}/{JOB_ID}/start").respond(
        200, json=wire_job("RUNNING", detailed=True)
    )
    driver, _, _ = make_driver("mistral", router)
    created = driver.create_job(request())
    assert json.loads(router.calls[0].request.content)["auto_start"] is False
    assert driver.start_if_parked(created) is created
    assert driver.estimate_cost(JOB_ID) is None  # still validating: no estimate yet
    parked = driver.get_job(JOB_ID)
    assert parked.phase is Phase.VALIDATING and parked.cost_usd == 2.6214
    assert driver.start_if_parked(parked).phase is Phase.RUNNING and start.call_count == 1


def test_start_that_lost_a_race_returns_the_job(router: respx.MockRouter) -> None:
    router.post(f"{JOBS_PATH}/{JOB_ID}/start").respond(400, json={"message": "not validated"})
    router.get(f"{JOBS_PATH}/{JOB_ID}").respond(200, json=wire_job("RUNNING", detailed=True))
    driver, _, _ = make_driver("mistral", router)
    assert driver.start_if_parked(job_from_wire(wire_job("VALIDATED"))).phase is Phase.RUNNING


def test_start_refused_while_still_parked_raises(router: respx.MockRouter) -> None:
    router.post(f"{JOBS_PATH}/{JOB_ID}/start").respond(400, json={"message": "quota"})
    router.get(f"{JOBS_PATH}/{JOB_ID}").respond(200, json=wire_job("VALIDATED", detailed=True))
    driver, _, _ = make_driver("mistral", router)
    with pytest.raises(ProviderError, match="quota"):
        driver.start_if_parked(job_from_wire(wire_job("VALIDATED")))


def test_estimate_cost(router: respx.MockRouter) -> None:
    router.get(f"{JOBS_PATH}/{JOB_ID}").respond(200, json=wire_job("VALIDATED", detailed=True))
    driver, _, _ = make_driver("mistral", router)
    assert driver.estimate_cost(JOB_ID) == 2.6214


@pytest.mark.parametrize(("n", "calls"), [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3)])
def test_list_jobs_pages_by_total(router: respx.MockRouter, n: int, calls: int) -> None:
    jobs = [wire_job("RUNNING", id=job_id(i)) for i in range(n)]

    def answer(req: httpx.Request) -> httpx.Response:
        number, size = int(req.url.params["page"]), int(req.url.params["page_size"])
        return httpx.Response(200, json=page(jobs[number * size : (number + 1) * size], n))

    route = router.get(JOBS_PATH).mock(side_effect=answer)
    driver, _, _ = make_driver("mistral", router)
    assert [j.id for j in driver.list_jobs()] == [job_id(i) for i in range(n)]
    assert route.call_count == calls == max(1, -(-n // PAGE_SIZE))
    assert [int(c.request.url.params["page"]) for c in route.calls] == list(range(calls))
    assert {c.request.url.params["page_size"] for c in route.calls} == {str(PAGE_SIZE)}


def test_list_jobs_is_lazy(router: respx.MockRouter) -> None:
    jobs = [wire_job("RUNNING", id=job_id(i)) for i in range(PAGE_SIZE)]
    route = router.get(JOBS_PATH).respond(200, json=page(jobs, 1000))
    driver, _, _ = make_driver("mistral", router)
    listing = driver.list_jobs()
    assert route.call_count == 0
    assert next(listing).id == job_id(0)
    listing.close()
    assert route.call_count == 1


def test_list_jobs_without_total_stops_at_a_short_page(router: respx.MockRouter) -> None:
    route = router.get(JOBS_PATH)
    route.side_effect = [
        httpx.Response(200, json=page([wire_job(id=job_id(i)) for i in range(PAGE_SIZE)], None)),
        httpx.Response(200, json=page([wire_job(id=job_id(PAGE_SIZE))], None)),
    ]
    driver, _, _ = make_driver("mistral", router)
    assert len(list(driver.list_jobs())) == PAGE_SIZE + 1 and route.call_count == 2


def test_find_jobs_by_tag_uses_the_suffix_filter(router: respx.MockRouter) -> None:
    answer = page([wire_job("RUNNING"), wire_job("QUEUED", id=job_id(9), suffix="rc-0123")], 2)
    route = router.get(JOBS_PATH).respond(200, json=answer)
    driver, _, _ = make_driver("mistral", router)
    assert [j.id for j in driver.find_jobs_by_tag(TAG)] == [JOB_ID]
    assert route.call_count == 1
    assert route.calls.last.request.url.params["suffix"] == TAG


UNPROCESSABLE = {
    "detail": [
        {
            "loc": ["body", "hyperparameters", "learning_rate"],
            "msg": "Input should be less than or equal to 1",
            "type": "less_than_equal",
            "input": 2,
        }
    ]
}


def test_422_detail_list_is_readable(router: respx.MockRouter) -> None:
    detail = UNPROCESSABLE
    router.post(JOBS_PATH).respond(422, json=detail)
    driver, _, _ = make_driver("mistral", router)
    with pytest.raises(ProviderError) as info:
        driver.create_job(request())
    err = info.value
    assert err.kind is ErrorKind.PERMANENT and err.status == 422 and not err.ambiguous
    assert err.message == "hyperparameters.learning_rate: Input should be less than or equal to 1"


def test_job_events_come_from_the_detailed_job(router: respx.MockRouter) -> None:
    events = [
        wire_event("SUCCESS", 1717173491),
        wire_event("RUNNING", 1717172594),
        wire_event("QUEUED", 1717172592),
    ]
    route = router.get(f"{JOBS_PATH}/{JOB_ID}").respond(
        200, json=wire_job("SUCCESS", detailed=True, events=events)
    )
    driver, _, _ = make_driver("mistral", router)
    got = driver.job_events(JOB_ID)
    assert [e.message for e in got] == [
        "status-updated: QUEUED",
        "status-updated: RUNNING",
        "status-updated: SUCCESS",
    ]
    assert got[0].created_at == 1717172592.0 and route.call_count == 1


def test_checkpoints_come_from_the_detailed_job_oldest_first(router: respx.MockRouter) -> None:
    points = [  # newest first, as Mistral lists them; one without a step is dropped
        wire_checkpoint(30, 0.7, created_at=1717173300),
        {"created_at": 1717173250, "metrics": {}},
        wire_checkpoint(20, 0.8, created_at=1717173200),
        wire_checkpoint(10, None, created_at=1717173100),
    ]
    route = router.get(f"{JOBS_PATH}/{JOB_ID}").respond(
        200, json=wire_job("SUCCESS", detailed=True, checkpoints=points)
    )
    driver, _, _ = make_driver("mistral", router)
    got = driver.checkpoints(JOB_ID)
    assert [c.id for c in got] == [f"{JOB_ID}:10", f"{JOB_ID}:20", f"{JOB_ID}:30"]
    assert [c.step for c in got] == [10, 20, 30] and route.call_count == 1
    assert all(c.model is None for c in got)  # metrics only: nothing to call or download
    assert got[0].created_at == 1717173100.0
    assert got[0].metrics == {"valid_loss": 0.82, "valid_mean_token_accuracy": 1.76}
    assert got[-1].metrics["train_loss"] == 0.7


def test_a_job_without_checkpoints_lists_none(router: respx.MockRouter) -> None:
    router.get(f"{JOBS_PATH}/{JOB_ID}").respond(200, json=wire_job("QUEUED"))
    driver, _, _ = make_driver("mistral", router)
    assert driver.checkpoints(JOB_ID) == []


# ---------------------------------------------------------------- files


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_data_file(tmp_path)


def test_upload_too_large_is_a_clear_permanent_error(
    router: respx.MockRouter, data_file: Path
) -> None:
    router.post("files").respond(413, text="Request Entity Too Large")
    driver, _, _ = make_driver("mistral", router)
    with pytest.raises(ProviderError) as info:
        driver.upload_file(data_file, SHA)
    assert info.value.kind is ErrorKind.PERMANENT and info.value.status == 413
    assert "512 MB" in str(info.value) and "train.jsonl" in str(info.value)


def test_upload_rejected_file_is_permanent(router: respx.MockRouter, data_file: Path) -> None:
    router.post("files").respond(
        400, json={"object": "error", "message": "Invalid file format", "type": "x"}
    )
    driver, api_sleeps, _ = make_driver("mistral", router)
    with pytest.raises(ProviderError, match="Invalid file format") as info:
        driver.upload_file(data_file, SHA)
    assert info.value.kind is ErrorKind.PERMANENT and api_sleeps == []


def test_find_file_pages_by_total(router: respx.MockRouter) -> None:
    prefix = f"rc-{SHA[:16]}-"
    others = [wire_file(job_id(i), filename=f"other-{i}.jsonl") for i in range(PAGE_SIZE)]
    mine = wire_file(job_id(500), filename=prefix + "train.jsonl")
    route = router.get("files")
    route.side_effect = [
        httpx.Response(200, json=page(others, PAGE_SIZE + 1)),
        httpx.Response(200, json=page([mine], PAGE_SIZE + 1)),
    ]
    driver, _, _ = make_driver("mistral", router)
    found = driver.find_file(SHA)
    assert (
        found is not None and found.id == job_id(500) and found.filename == prefix + "train.jsonl"
    )
    params = [c.request.url.params for c in route.calls]
    assert [p["page"] for p in params] == ["0", "1"]
    assert all(p["purpose"] == "fine-tune" and p["page_size"] == "100" for p in params)


def test_find_file_none(router: respx.MockRouter) -> None:
    route = router.get("files").respond(
        200, json=page([wire_file(filename="rc-ffffffffffffffff-a.jsonl")], 1)
    )
    driver, _, _ = make_driver("mistral", router)
    assert driver.find_file(SHA) is None and route.call_count == 1
