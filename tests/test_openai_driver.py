"""What only the OpenAI driver does: its pure mappings (metadata tags, method blocks,
request problems), its wire format against the official spec, and over a respx router
the closing-organisation answer, cursor pagination, pause/resume and the Uploads API.
The contract every driver keeps (create once, 429, auth, cancel...) is in
test_drivers.py. No network."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import driver_fixtures
import httpx
import jsonschema
import pytest
import respx
from driver_fixtures import NAME, SHA, TAG, make_driver, multipart, write_data_file
from openai_fake import (
    CHECKPOINT_LIST,
    COMPLETE_UPLOAD,
    CREATE_BODY,
    CREATE_UPLOAD,
    EVENT_LIST,
    FILE,
    JOB,
    JOB_LIST,
    UPLOAD,
    UPLOAD_PART,
    page,
    schema,
    spec_validator,
    wire_checkpoint,
    wire_event,
    wire_file,
    wire_job,
    wire_part,
    wire_upload,
)
from support import no_nulls

from reconciler.errors import ErrorKind, ProviderError
from reconciler.model import Phase, create_request
from reconciler.providers.openai.mapping import (
    CLOSED_MESSAGE,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    NAME_KEY,
    STATUS_TO_PHASE,
    TAG_KEY,
    checkpoint_from_wire,
    create_payload,
    event_from_wire,
    job_from_wire,
    progress_from_metrics,
    request_problems,
)
from reconciler.spec import JobSpec

# ---------------------------------------------------------------- status mapping


def test_every_spec_status_is_mapped() -> None:
    enum = schema("FineTuningJob")["properties"]["status"]["enum"]
    assert set(enum) <= set(STATUS_TO_PHASE)
    assert set(STATUS_TO_PHASE) - set(enum) == {"paused"}  # from the spec's pause example


def test_paused_is_active_and_says_so() -> None:
    job = job_from_wire(wire_job("paused", estimated_finish=1747503600))
    assert job.phase is Phase.RUNNING and job.phase.active and not job.phase.terminal
    assert job.status == "paused" and job.progress == "paused"


# this module's router fixture and create request, both for OpenAI
router = driver_fixtures.router_fixture("openai")
request = functools.partial(driver_fixtures.make_request, "openai")


# ---------------------------------------------------------------- create payload


def test_sft_defaults_send_only_what_is_set() -> None:
    assert create_payload(request()) == {
        "model": "gpt-4.1-mini-2025-04-14",
        "training_file": "file-train",
        "method": {"type": "supervised"},
        "metadata": {TAG_KEY: TAG, NAME_KEY: NAME},
    }


def test_supervised_hyperparameters_suffix_and_seed() -> None:
    hp = {"epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.8, "seed": 7}
    body = create_payload(
        request(hyperparameters=hp, validation_file_id="file-val", suffix="support-v3")
    )
    assert body["method"] == {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.8}
        },
    }
    assert body["seed"] == 7 and body["suffix"] == "support-v3"
    assert body["validation_file"] == "file-val"
    assert "hyperparameters" not in body  # the deprecated top-level field is never sent


def test_unset_hyperparameters_are_not_sent_as_null() -> None:
    body = create_payload(request(hyperparameters={"epochs": None, "batch_size": 4, "seed": None}))
    assert body["method"]["supervised"]["hyperparameters"] == {"batch_size": 4}
    assert "seed" not in body and no_nulls(body)


def test_dpo_with_beta() -> None:
    body = create_payload(request(method="dpo", dpo={"beta": 0.1}, hyperparameters={"epochs": 2}))
    assert body["method"] == {
        "type": "dpo",
        "dpo": {"hyperparameters": {"n_epochs": 2, "beta": 0.1}},
    }
    assert create_payload(request(method="dpo"))["method"] == {"type": "dpo"}


def test_beta_is_not_sent_for_supervised() -> None:
    body = create_payload(request(dpo={"beta": 0.1}))
    assert body["method"] == {"type": "supervised"}


def test_from_output_becomes_the_base_model() -> None:
    upstream = "ft:gpt-4.1-mini-2025-04-14:org:base-sft:7q8mpxmy"
    assert create_payload(request(from_output=upstream))["model"] == upstream


def test_options_pass_through_and_win() -> None:
    integrations = [{"type": "wandb", "wandb": {"project": "support"}}]
    options = {
        "integrations": integrations,
        "seed": 99,
        "method": {"supervised": {"hyperparameters": {"batch_size": "auto"}}},
    }
    body = create_payload(
        request(hyperparameters={"epochs": 3, "batch_size": 8, "seed": 1}, options=options)
    )
    assert body["integrations"] == integrations and body["seed"] == 99
    # nested dicts merge: one sub-key changes without restating the method
    assert body["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": "auto"}},
    }


def test_option_method_of_another_type_replaces_ours() -> None:
    grader = {
        "type": "string_check",
        "name": "exact",
        "input": "{{sample.output_text}}",
        "reference": "{{item.label}}",
        "operation": "eq",
    }
    options = {
        "method": {
            "type": "reinforcement",
            "reinforcement": {"grader": grader, "hyperparameters": {"reasoning_effort": "low"}},
        }
    }
    body = create_payload(request(hyperparameters={"epochs": 2}, options=options))
    assert body["method"] == {
        "type": "reinforcement",
        "reinforcement": {
            "grader": grader,
            "hyperparameters": {"n_epochs": 2, "reasoning_effort": "low"},
        },
    }
    assert "supervised" not in body["method"]


def test_options_add_metadata_but_never_replace_the_tag() -> None:
    options = {"metadata": {"team": "support", TAG_KEY: "rc-ffffffffffff"}}
    body = create_payload(request(options=options))
    assert body["metadata"] == {TAG_KEY: TAG, NAME_KEY: NAME, "team": "support"}
    assert create_payload(request(options={"metadata": None}))["metadata"] == {TAG_KEY: TAG}


def test_our_metadata_fits_openai_limits() -> None:
    metadata = create_payload(request(name="n" * 40))["metadata"]
    assert len(metadata) <= MAX_METADATA_PAIRS
    assert all(len(k) <= MAX_METADATA_KEY for k in metadata)
    assert all(isinstance(v, str) and len(v) <= MAX_METADATA_VALUE for v in metadata.values())


# ---------------------------------------------------------------- request_problems


def _problems(**over: Any) -> str:
    return "\n".join(request_problems(request(**over)))


def test_a_plain_request_has_no_problems() -> None:
    assert request_problems(request()) == []
    assert (
        request_problems(
            request(
                method="dpo",
                dpo={"beta": 2.0},
                suffix="s" * 64,
                hyperparameters={
                    "epochs": 50,
                    "batch_size": 256,
                    "learning_rate_multiplier": 0.5,
                    "seed": 3,
                },
                options={"metadata": {f"k{i}": "v" for i in range(14)}, "integrations": []},
            )
        )
        == []
    )


def test_a_default_spec_has_no_problems() -> None:
    """The spec's own defaults (lora: true → provider default) are fine at OpenAI."""
    spec = JobSpec.model_validate(
        {"provider": "openai", "model": "gpt-4.1-mini-2025-04-14", "training_file": "t.jsonl"}
    )
    assert request_problems(create_request(NAME, spec, tag=TAG, training_file_id="f")) == []


def test_absolute_learning_rate_points_to_the_multiplier() -> None:
    (problem,) = request_problems(request(hyperparameters={"learning_rate": 1e-5}))
    assert problem.startswith("hyperparameters.learning_rate: ")
    assert "learning_rate_multiplier" in problem and "openai" in problem


@pytest.mark.parametrize(
    "key",
    [
        "warmup_ratio",
        "weight_decay",
        "max_grad_norm",
        "max_seq_length",
        "lr_scheduler",
        "min_lr_ratio",
        "num_cycles",
        "n_checkpoints",
        "n_evals",
    ],
)
def test_hyperparameters_without_equivalent(key: str) -> None:
    value = "cosine" if key == "lr_scheduler" else 1
    assert request_problems(request(hyperparameters={key: value})) == [
        f"hyperparameters.{key}: no equivalent at openai"
    ]


def test_lora_is_not_configurable() -> None:
    (settings,) = request_problems(request(lora={"r": 16}))
    (full,) = request_problems(request(lora=False))
    for problem in (settings, full):
        assert problem.startswith("lora: ") and "openai" in problem
    assert "lora: false" in full
    assert request_problems(request(lora=None)) == []


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"hyperparameters": {"batch_size": "max"}}, "hyperparameters.batch_size: 'max'"),
        ({"hyperparameters": {"batch_size": 300}}, "hyperparameters.batch_size: openai accepts"),
        ({"hyperparameters": {"epochs": 51}}, "hyperparameters.epochs: openai accepts 1 to 50"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameters.epochs:"),
        (
            {"hyperparameters": {"learning_rate_multiplier": 0}},
            "hyperparameters.learning_rate_multiplier:",
        ),
        ({"method": "dpo", "dpo": {"beta": 2.5}}, "dpo.beta: openai accepts a value in (0, 2]"),
        ({"method": "dpo", "dpo": {"beta": 0}}, "dpo.beta:"),
        ({"method": "dpo", "dpo": {"rpo_alpha": 0.2}}, "dpo.rpo_alpha: no equivalent at openai"),
        ({"method": "dpo", "dpo": {"simpo_gamma": 1.0}}, "dpo.simpo_gamma:"),
        ({"dpo": {"beta": 0.1}}, "dpo: only with method: dpo"),
        ({"suffix": "s" * 65}, "suffix: at most 64"),
        ({"method": "rl"}, "method: openai supports sft and dpo"),
        ({"options": {"model": "gpt-4o"}}, "options.model: set by reconciler"),
        ({"options": {"training_file": "file-x"}}, "options.training_file:"),
        ({"options": {"validation_file": "file-x"}}, "options.validation_file:"),
        ({"options": {"metadata": {TAG_KEY: "x"}}}, f"options.metadata.{TAG_KEY}: reserved"),
        ({"options": {"metadata": {NAME_KEY: "x"}}}, f"options.metadata.{NAME_KEY}: reserved"),
        ({"options": {"metadata": "team"}}, "options.metadata: a map of strings"),
        (
            {"options": {"metadata": {f"k{i}": "v" for i in range(15)}}},
            "options.metadata: at most 16 pairs",
        ),
        ({"options": {"metadata": {"k" * 65: "v"}}}, "keys are at most 64"),
        ({"options": {"metadata": {"k": "v" * 513}}}, "options.metadata.k: values are at most 512"),
        ({"options": {"metadata": {"k": 3}}}, "options.metadata.k: values must be strings"),
        (
            {"method": "dpo", "options": {"method": {"type": "reinforcement"}}},
            "options.method.type: 'reinforcement' contradicts method: dpo",
        ),
        ({"options": {"method": {"type": "dpo"}}}, "options.method.type: use method: dpo"),
    ],
)
def test_request_problems(over: dict[str, Any], needle: str) -> None:
    assert needle in _problems(**over)


def test_every_problem_names_its_field() -> None:
    problems = request_problems(
        request(
            method="dpo",
            lora=False,
            hyperparameters={"learning_rate": 1e-5, "batch_size": "max", "warmup_ratio": 0.1},
            dpo={"beta": 3, "reference_free": True},
            suffix="s" * 70,
            options={"model": "x", "metadata": {TAG_KEY: "x"}},
        )
    )
    assert len(problems) == 9
    for problem in problems:
        path, sep, message = problem.partition(": ")
        assert sep and message and " " not in path
        assert path.split(".")[0] in ("hyperparameters", "lora", "dpo", "suffix", "options")


# ---------------------------------------------------------------- against the official spec


GRADER = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "operation": "eq",
}
SPEC_REQUESTS = {
    "sft-defaults": request(),
    "sft-everything": request(
        validation_file_id="file-val",
        suffix="support-v3",
        hyperparameters={"epochs": 3, "batch_size": 8, "learning_rate_multiplier": 2, "seed": 42},
    ),
    "dpo": request(method="dpo", dpo={"beta": 0.1}, hyperparameters={"epochs": 1}),
    "dpo-defaults": request(method="dpo"),
    "from-upstream": request(from_output="ft:gpt-4.1-mini-2025-04-14:org:base:7q8mpxmy"),
    "options": request(
        options={
            "integrations": [{"type": "wandb", "wandb": {"project": "p", "tags": ["a"]}}],
            "metadata": {"team": "support"},
            "method": {"supervised": {"hyperparameters": {"n_epochs": "auto"}}},
        }
    ),
    "reinforcement": request(
        hyperparameters={"epochs": 2},
        options={
            "method": {
                "type": "reinforcement",
                "reinforcement": {"grader": GRADER, "hyperparameters": {"eval_samples": 2}},
            }
        },
    ),
}


@pytest.mark.parametrize("name", sorted(SPEC_REQUESTS))
def test_create_payload_conforms_to_spec(name: str) -> None:
    validate = spec_validator(CREATE_BODY)
    body = create_payload(SPEC_REQUESTS[name])
    validate(body)
    # the request schema allows extra keys, so check ours are all real fields
    assert set(body) <= set(schema("CreateFineTuningJobRequest")["properties"])


def test_spec_validator_is_not_vacuous() -> None:
    validate = spec_validator(CREATE_BODY)
    body = create_payload(SPEC_REQUESTS["sft-everything"])
    hp = body["method"]["supervised"]["hyperparameters"]
    for bad in (
        {k: v for k, v in body.items() if k != "training_file"},
        {**body, "method": {"type": "distillation"}},
        {
            **body,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": {**hp, "n_epochs": 51}},
            },
        },
        {**body, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 2.5}}}},
        {**body, "metadata": {TAG_KEY: 3}},
        {**body, "suffix": "s" * 65},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)
    validate({**body, "validation_file": None})  # OpenAPI 3.0 nullable, rewritten


def test_sample_wire_objects_conform_to_spec() -> None:
    validate_job = spec_validator(JOB)
    for status in ("validating_files", "queued", "running", "succeeded", "failed", "cancelled"):
        validate_job(wire_job(status))
    failed = wire_job(
        "failed",
        error={"code": "invalid_training_file", "message": "bad", "param": "training_file"},
    )
    validate_job(failed)
    spec_validator(JOB_LIST)(page([wire_job(), failed], has_more=True))
    metrics = wire_event("Step 3/10: training loss=0.5", type="metrics", data={"step": 3})
    spec_validator(EVENT_LIST)(page([wire_event(), metrics, wire_event(level="warn")]))
    spec_validator(CHECKPOINT_LIST)(page([wire_checkpoint(200), wire_checkpoint(100)]))
    spec_validator(FILE)(wire_file())
    spec_validator(UPLOAD)(wire_upload())
    spec_validator(UPLOAD)(wire_upload("completed", file=wire_file()))
    spec_validator(UPLOAD_PART)(wire_part("part_1"))
    with pytest.raises(jsonschema.ValidationError):
        validate_job({**wire_job(), "status": "paused"})  # not in the enum (see phase map)


# ---------------------------------------------------------------- job_from_wire


def test_running_job() -> None:
    job = job_from_wire(wire_job("running", estimated_finish=1747503600))
    assert job.phase is Phase.RUNNING and job.tag == TAG and job.id == "ftjob-abc123"
    assert job.progress == "ETA 2025-05-17 17:40 UTC"
    assert job.created_at == 1747500000.0 and job.trained_tokens is None
    assert job.fine_tuned_model is None and job.error is None and job.cost_usd is None


def test_succeeded_job() -> None:
    model = "ft:gpt-4.1-mini-2025-04-14:org:support-v3:7q8mpxmy"
    job = job_from_wire(
        wire_job("succeeded", fine_tuned_model=model, trained_tokens=5768, estimated_finish=0)
    )
    assert job.phase is Phase.SUCCEEDED and job.fine_tuned_model == model
    assert job.trained_tokens == 5768 and job.progress is None


def test_finished_job_shows_no_eta() -> None:
    job = job_from_wire(wire_job("cancelled", estimated_finish=1747503600))
    assert job.progress is None


def test_progress_from_embedded_metrics() -> None:
    events = [
        wire_event("Step 30/100", type="metrics", data={"step": 30, "total_steps": 100}),
        wire_event("Step 20/100", type="metrics", data={"step": 20, "total_steps": 100}),
    ]
    assert job_from_wire(wire_job(events=events)).progress == "step 30/100"
    ckpts = [wire_checkpoint(2000), wire_checkpoint(1000)]
    assert job_from_wire(wire_job(checkpoints=ckpts)).progress == "step 2000"
    assert progress_from_metrics({"train_loss": 0.1}) is None
    assert progress_from_metrics({"step": 0, "total_steps": 10}) == "step 0/10"


def test_failed_on_data_is_not_retryable() -> None:
    error = {
        "code": "invalid_training_file",
        "message": "The file has 3 examples; at least 10 are required.",
        "param": "training_file",
    }
    job = job_from_wire(wire_job("failed", error=error))
    assert job.phase is Phase.FAILED and job.error_retryable is False
    assert job.error == (
        "The file has 3 examples; at least 10 are required. "
        "(invalid_training_file, param training_file)"
    )
    for code in ("invalid_n_examples", "unsafe_file", "insufficient_quota"):
        bad = job_from_wire(wire_job("failed", error={**error, "code": code, "param": None}))
        assert bad.error_retryable is False, code


def test_failed_on_the_platform_is_retryable() -> None:
    error = {"code": "server_error", "message": "Internal error", "param": None}
    job = job_from_wire(wire_job("failed", error=error))
    assert job.error_retryable is True and job.error == "Internal error (server_error)"
    bare = job_from_wire(wire_job("failed", error=None))
    assert bare.error == "job ended with status failed" and bare.error_retryable is True


def test_error_key_is_ignored_unless_failed() -> None:
    job = job_from_wire(wire_job("queued", error={"code": None, "message": None, "param": None}))
    assert job.error is None and job.error_retryable is False


def test_job_from_wire_tolerates_odd_fields() -> None:
    # the empty object, the same for every provider: test_drivers.py
    odd = job_from_wire(
        {
            "id": "ftjob-2",
            "status": "running",
            "created_at": "yesterday",
            "trained_tokens": True,
            "metadata": None,
            "estimated_finish": "soon",
            "events": ["not an event"],
            "error": "boom",
            "something_new": {"x": 1},
        }
    )
    assert odd.created_at is None and odd.trained_tokens is None
    assert odd.tag is None and odd.progress is None
    assert job_from_wire(wire_job(metadata={"other": "x"})).tag is None


def test_event_and_checkpoint_from_wire() -> None:
    event = event_from_wire(wire_event("Careful", level="warn"))
    assert event.level == "warning" and event.message == "Careful"
    assert event.created_at == 1747500100.0
    assert event_from_wire({"level": None, "message": "x"}).level == "info"
    ckpt = checkpoint_from_wire(wire_checkpoint(2000))
    assert ckpt.step == 2000 and ckpt.id == "ftckpt_2000"
    assert ckpt.model is not None and ckpt.model.endswith(":ckpt-step-2000")
    assert ckpt.metrics == {"step": 2000.0, "train_loss": 0.5, "full_valid_loss": 0.134}


# ---------------------------------------------------------------- the driver over HTTP


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "Your organization is not allowed to create new fine-tuning jobs."),
        (403, "This organization can no longer create fine-tuning jobs."),
        (400, "Fine-tuning job creation is no longer available for your organization."),
        (403, "Self-serve fine-tuning is closing; see the deprecations page."),
        (400, "Organizations without recent fine-tuned model usage cannot create fine-tuning jobs"),
        (403, "Fine-tuning jobs can no longer be created by this organization"),
    ],
)
def test_closing_organisation_is_permanent_and_plain(
    router: respx.MockRouter, status: int, message: str
) -> None:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    route = router.post("fine_tuning/jobs").respond(status, json=body)
    driver, api_sleeps, driver_sleeps = make_driver("openai", router)
    with pytest.raises(ProviderError) as info:
        driver.create_job(request())
    err = info.value
    assert err.kind is ErrorKind.PERMANENT and not err.retryable and not err.ambiguous
    assert err.status == status and route.call_count == 1 and api_sleeps == driver_sleeps == []
    assert err.message.startswith(
        "OpenAI no longer accepts new fine-tuning jobs for this organisation "
        "(self-serve fine-tuning closes 2027-01-06)"
    )
    assert CLOSED_MESSAGE in str(err) and message in str(err)
    assert "authentication" not in str(err)


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (400, "Invalid file: cannot parse line 3 of the fine-tuning file", ErrorKind.PERMANENT),
        (400, "You cannot create more than 3 jobs at once", ErrorKind.PERMANENT),
        (400, "Model gpt-x is not available for fine-tuning", ErrorKind.PERMANENT),
        (
            403,
            "You have insufficient permissions. Missing scopes: api.fine_tuning.jobs.write",
            ErrorKind.AUTH,
        ),
    ],
)
def test_other_refusals_keep_their_class(
    router: respx.MockRouter, status: int, message: str, kind: ErrorKind
) -> None:
    router.post("fine_tuning/jobs").respond(status, json={"error": {"message": message}})
    driver, _, _ = make_driver("openai", router)
    with pytest.raises(ProviderError) as info:
        driver.create_job(request())
    assert info.value.kind is kind and info.value.status == status
    assert CLOSED_MESSAGE not in str(info.value) and message in str(info.value)
    assert driver.api.errors == 1


def _paged_jobs(router: respx.MockRouter, n: int) -> respx.Route:
    """GET fine_tuning/jobs serving ``n`` jobs newest first, honouring after/limit."""
    jobs = [wire_job("succeeded", id=f"ftjob-{i:04d}") for i in range(n, 0, -1)]

    def serve(req: httpx.Request) -> httpx.Response:
        limit = int(req.url.params.get("limit", "20"))
        after = req.url.params.get("after")
        start = next(i for i, j in enumerate(jobs) if j["id"] == after) + 1 if after else 0
        chunk = jobs[start : start + limit]
        return httpx.Response(200, json=page(chunk, has_more=start + limit < len(jobs)))

    return router.get("fine_tuning/jobs").mock(side_effect=serve)


@pytest.mark.parametrize("n", [0, 1, 100, 250])
def test_list_jobs_follows_the_cursor(router: respx.MockRouter, n: int) -> None:
    route = _paged_jobs(router, n)
    driver, _, _ = make_driver("openai", router)
    jobs = list(driver.list_jobs())
    assert [j.id for j in jobs] == [f"ftjob-{i:04d}" for i in range(n, 0, -1)]
    assert route.call_count == max(1, math.ceil(n / 100))
    first, *rest = route.calls
    assert first.request.url.params["limit"] == "100" and "after" not in first.request.url.params
    for call, before in zip(rest, range(n, 0, -100), strict=False):
        assert call.request.url.params["after"] == f"ftjob-{before - 99:04d}"


def test_list_jobs_is_lazy_and_stops_with_the_consumer(router: respx.MockRouter) -> None:
    route = _paged_jobs(router, 250)
    driver, _, _ = make_driver("openai", router)
    jobs = driver.list_jobs()
    assert route.call_count == 0  # nothing asked yet
    assert len(list(itertools.islice(jobs, 5))) == 5 and route.call_count == 1
    driver2, _, _ = make_driver("openai", router)
    assert len(list(itertools.islice(driver2.list_jobs(), 150))) == 150
    assert route.call_count == 3  # 1 + 2: the third page was never fetched


def test_list_stops_on_a_repeated_cursor(router: respx.MockRouter) -> None:
    route = router.get("fine_tuning/jobs").respond(
        200, json=page([wire_job(id="ftjob-same")], has_more=True)
    )
    driver, _, _ = make_driver("openai", router)
    assert len(list(driver.list_jobs())) == 2 and route.call_count == 2


def test_find_jobs_by_tag_uses_the_metadata_filter(router: respx.MockRouter) -> None:
    ours = wire_job("running", id="ftjob-ours")
    route = router.get("fine_tuning/jobs").respond(200, json=page([ours]))
    driver, _, _ = make_driver("openai", router)
    assert [j.id for j in driver.find_jobs_by_tag(TAG)] == ["ftjob-ours"]
    assert route.call_count == 1
    params = route.calls.last.request.url.params
    assert params["metadata[reconciler_tag]"] == TAG
    assert f"metadata%5Breconciler_tag%5D={TAG}" in str(route.calls.last.request.url)


def test_find_jobs_by_tag_filters_again_when_the_server_ignores_the_filter(
    router: respx.MockRouter,
) -> None:
    jobs = [
        wire_job(id="ftjob-a"),
        wire_job(id="ftjob-b", metadata={TAG_KEY: "rc-ffffffffffff"}),
        wire_job(id="ftjob-c", metadata=None),
    ]
    router.get("fine_tuning/jobs").respond(200, json=page(jobs))
    driver, _, _ = make_driver("openai", router)
    assert [j.id for j in driver.find_jobs_by_tag(TAG)] == ["ftjob-a"]
    assert driver.find_jobs_by_tag("rc-000000000000") == []


def test_pause_and_resume(router: respx.MockRouter) -> None:
    pause = router.post("fine_tuning/jobs/ftjob-1/pause").respond(200, json=wire_job("paused"))
    resume = router.post("fine_tuning/jobs/ftjob-1/resume").respond(200, json=wire_job("queued"))
    driver, _, _ = make_driver("openai", router)
    paused = driver.pause_job("ftjob-1")
    assert paused.status == "paused" and paused.phase.active and paused.progress == "paused"
    assert driver.resume_job("ftjob-1").phase is Phase.QUEUED
    assert pause.call_count == 1 and resume.call_count == 1


def test_job_events_oldest_first_across_pages(router: respx.MockRouter) -> None:
    newest_first = [
        wire_event(f"event {i}", id=f"ftevent-{i}", created_at=1747500000 + i) for i in (5, 4, 3)
    ]
    older = [
        wire_event("event 2", id="ftevent-2", level="warn", created_at=1747500002),
        wire_event("event 1", id="ftevent-1", level="error", created_at=1747500001),
    ]
    route = router.get("fine_tuning/jobs/ftjob-1/events")
    route.side_effect = [
        httpx.Response(200, json=page(newest_first, has_more=True)),
        httpx.Response(200, json=page(older)),
    ]
    driver, _, _ = make_driver("openai", router, page_size=3)
    events = driver.job_events("ftjob-1")
    assert [e.message for e in events] == [f"event {i}" for i in range(1, 6)]
    assert [e.level for e in events[:3]] == ["error", "warning", "info"]
    assert events[0].created_at == 1747500001.0
    assert route.calls[1].request.url.params["after"] == "ftevent-3"


def test_job_events_newest_cap_stops_paging(router: respx.MockRouter) -> None:
    events = [wire_event(f"event {i}", id=f"ftevent-{i}") for i in (9, 8, 7)]
    route = router.get("fine_tuning/jobs/ftjob-1/events").respond(
        200, json=page(events, has_more=True)
    )
    driver, _, _ = make_driver("openai", router, page_size=3)
    got = driver.job_events("ftjob-1", newest=2)
    assert [e.message for e in got] == ["event 8", "event 9"] and route.call_count == 1


def test_checkpoints(router: respx.MockRouter) -> None:
    route = router.get("fine_tuning/jobs/ftjob-1/checkpoints")
    route.side_effect = [
        httpx.Response(200, json=page([wire_checkpoint(3000), wire_checkpoint(2000)], True)),
        httpx.Response(200, json=page([wire_checkpoint(1000)])),
    ]
    driver, _, _ = make_driver("openai", router, page_size=2)
    assert [c.step for c in driver.checkpoints("ftjob-1")] == [1000, 2000, 3000]
    assert route.calls[1].request.url.params["after"] == "ftckpt_2000"


# ---------------------------------------------------------------- files


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    # three lines, so a small part size splits it into several parts
    return write_data_file(tmp_path, ("hi 0", "hi 1", "hi 2"))


def test_large_file_goes_through_the_uploads_api(router: respx.MockRouter, data_file: Path) -> None:
    content = data_file.read_bytes()
    name = f"rc-{SHA[:16]}-train.jsonl"
    small = router.post("files").respond(500)
    create = router.post("uploads").respond(200, json=wire_upload())
    counter = itertools.count(1)
    parts = router.post("uploads/upload_abc/parts").mock(
        side_effect=lambda req: httpx.Response(200, json=wire_part(f"part_{next(counter)}"))
    )
    final = wire_file("file-big", filename=name, bytes=len(content))
    complete = router.post("uploads/upload_abc/complete").respond(
        200, json=wire_upload("completed", file=final)
    )
    cancel = router.post("uploads/upload_abc/cancel").respond(200, json=wire_upload("cancelled"))
    part_size = 50
    driver, _, _ = make_driver("openai", router, upload_threshold=10, part_size=part_size)

    remote = driver.upload_file(data_file, SHA)

    assert remote.id == "file-big" and remote.bytes == len(content) and remote.filename == name
    assert small.call_count == 0 and cancel.call_count == 0
    sent = json.loads(create.calls.last.request.content)
    assert sent == {
        "filename": name,
        "purpose": "fine-tune",
        "bytes": len(content),
        "mime_type": "text/jsonl",
    }
    spec_validator(CREATE_UPLOAD)(sent)
    chunks = [multipart(call.request)["data"][1] for call in parts.calls]
    assert parts.call_count == math.ceil(len(content) / part_size) > 1
    assert b"".join(chunks) == content and all(len(c) <= part_size for c in chunks)
    done = json.loads(complete.calls.last.request.content)
    assert done == {
        "part_ids": [f"part_{i}" for i in range(1, parts.call_count + 1)],
        "md5": hashlib.md5(content).hexdigest(),
    }
    spec_validator(COMPLETE_UPLOAD)(done)


def test_a_failed_part_cancels_the_upload(router: respx.MockRouter, data_file: Path) -> None:
    router.post("uploads").respond(200, json=wire_upload())
    router.post("uploads/upload_abc/parts").respond(400, json={"error": {"message": "bad part"}})
    complete = router.post("uploads/upload_abc/complete").respond(500)
    cancel = router.post("uploads/upload_abc/cancel").respond(200, json=wire_upload("cancelled"))
    driver, _, _ = make_driver("openai", router, upload_threshold=10, part_size=50)
    with pytest.raises(ProviderError, match="bad part") as info:
        driver.upload_file(data_file, SHA)
    assert info.value.kind is ErrorKind.PERMANENT
    assert cancel.call_count == 1 and complete.call_count == 0


def test_a_failed_cancel_does_not_hide_the_cause(router: respx.MockRouter, data_file: Path) -> None:
    router.post("uploads").respond(200, json=wire_upload())
    router.post("uploads/upload_abc/parts").respond(200, json=wire_part("part_1"))
    router.post("uploads/upload_abc/complete").respond(
        400, json={"error": {"message": "bytes mismatch"}}
    )
    cancel = router.post("uploads/upload_abc/cancel").respond(500)
    driver, _, _ = make_driver("openai", router, upload_threshold=10, part_size=50)
    with pytest.raises(ProviderError, match="bytes mismatch"):
        driver.upload_file(data_file, SHA)
    assert cancel.call_count == 1  # once: a best-effort clean-up is not retried


def test_find_file_across_pages(router: respx.MockRouter) -> None:
    prefix = f"rc-{SHA[:16]}-"
    first = [
        wire_file("file-other", filename="rc-ffffffffffffffff-train.jsonl"),
        wire_file("file-broken", filename=prefix + "a.jsonl", status="error"),
    ]
    second = [wire_file("file-ok", filename=prefix + "train.jsonl")]
    route = router.get("files")
    route.side_effect = [
        httpx.Response(
            200,
            json={**page(first, True), "first_id": "file-other", "last_id": "file-broken"},
        ),
        httpx.Response(200, json={**page(second), "first_id": "file-ok", "last_id": "file-ok"}),
    ]
    driver, _, _ = make_driver("openai", router, files_page_size=2)
    found = driver.find_file(SHA)
    assert found is not None and found.id == "file-ok" and found.filename == prefix + "train.jsonl"
    params = [call.request.url.params for call in route.calls]
    assert [p["purpose"] for p in params] == ["fine-tune", "fine-tune"]
    assert params[0]["limit"] == "2" and params[1]["after"] == "file-broken"


def test_find_file_on_empty_list(router: respx.MockRouter) -> None:
    listing = {**page([]), "first_id": "", "last_id": ""}
    spec_validator("/components/schemas/ListFilesResponse")(listing)
    router.get("files").respond(200, json=listing)
    driver, _, _ = make_driver("openai", router)
    assert driver.find_file(SHA) is None
