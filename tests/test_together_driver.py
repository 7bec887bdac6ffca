"""What only the Together driver does: its pure mappings (suffix tags, LoRA and DPO,
schedulers, timestamps), its wire format against the official spec, and over a respx
router the tag lookup, events, the price estimate and the signed-URL upload flow. The contract every driver
keeps (create once, 429, auth, cancel...) is in test_drivers.py. No network."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import driver_fixtures
import httpx
import jsonschema
import pytest
import respx
from driver_fixtures import LEGACY_TAG, SHA, TAG, make_driver, multipart, write_data_file
from support import no_nulls
from together_fake import (
    CREATE_BODY,
    ESTIMATE_BODY,
    EVENT,
    FILE,
    JOB,
    JOB_TRUNCATED,
    spec_validator,
    wire_event,
    wire_file,
    wire_job,
)

from reconciler.errors import ErrorKind, ProviderError
from reconciler.model import Phase
from reconciler.providers.together.mapping import (
    STATUS_TO_PHASE,
    event_from_wire,
    file_state,
    job_from_wire,
    tag_from_suffix,
    timestamp,
    violations,
)
from reconciler.providers.together.payload import (
    HYPERPARAMETERS,
    MAX_SUFFIX,
    MAX_USER_SUFFIX,
    create_payload,
    estimate_payload,
    request_problems,
)

# ---------------------------------------------------------------- status mapping


def test_every_spec_status_is_mapped() -> None:
    validate = spec_validator("/components/schemas/FinetuneJobStatus")
    for status in STATUS_TO_PHASE:
        if status != "user_error":  # SDK-only value, absent from the spec's enum
            validate(status)
    for status in ("pending", "queued", "running", "compressing", "uploading"):
        assert status in STATUS_TO_PHASE
    for status in ("cancel_requested", "cancelled", "error", "completed"):
        assert status in STATUS_TO_PHASE


# this module's router fixture and create request, both for Together
router = driver_fixtures.router_fixture("together")
request = functools.partial(driver_fixtures.make_request, "together")


# ---------------------------------------------------------------- create payload


COSINE_DEFAULT = {
    "lr_scheduler_type": "cosine",
    "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5},
}


def test_sft_defaults_send_only_what_is_set() -> None:
    body = create_payload(request())
    assert body == {
        "training_file": "file-train",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        # the SDK always sends a scheduler: its default, explicit here too
        "lr_scheduler": COSINE_DEFAULT,
        "training_method": {"method": "sft", "train_on_inputs": "auto"},
        "suffix": TAG,
    }
    # no training_type: the server's default LoRA (a bare {"type": "Lora"} breaks the spec)
    assert "training_type" not in body


def test_hyperparameters_are_mapped() -> None:
    hp = {
        "epochs": 3,
        "learning_rate": 1e-5,
        "batch_size": "max",
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "max_grad_norm": 0.5,
        "max_seq_length": 4096,
        "n_checkpoints": 2,
        "n_evals": 4,
        "seed": 7,
    }
    body = create_payload(request(hyperparameters=hp, validation_file_id="file-val"))
    assert body["n_epochs"] == 3 and body["random_seed"] == 7 and body["batch_size"] == "max"
    assert body["learning_rate"] == 1e-5 and body["warmup_ratio"] == 0.1
    assert body["weight_decay"] == 0.01 and body["max_grad_norm"] == 0.5
    assert body["max_seq_length"] == 4096 and body["n_checkpoints"] == 2 and body["n_evals"] == 4
    assert body["validation_file"] == "file-val"
    assert "epochs" not in body and "seed" not in body
    assert set(hp) <= set(HYPERPARAMETERS)


def test_unset_hyperparameters_are_not_sent_as_null() -> None:
    body = create_payload(request(hyperparameters={"epochs": None, "learning_rate": 2e-5}))
    assert "n_epochs" not in body and body["learning_rate"] == 2e-5
    assert no_nulls(body)


def test_lora_dict() -> None:
    lora = {"r": 16, "alpha": 32, "dropout": 0.05, "trainable_modules": "all-linear"}
    body = create_payload(request(lora=lora))
    assert body["training_type"] == {
        "type": "Lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_trainable_modules": "all-linear",
    }


def test_lora_alpha_defaults_to_twice_the_rank() -> None:
    body = create_payload(request(lora={"r": 8}))
    assert body["training_type"] == {"type": "Lora", "lora_r": 8, "lora_alpha": 16}


def test_lora_module_list_is_comma_separated() -> None:
    body = create_payload(request(lora={"r": 8, "trainable_modules": ["q_proj", "v_proj"]}))
    assert body["training_type"]["lora_trainable_modules"] == "q_proj,v_proj"


def test_full_fine_tune() -> None:
    assert create_payload(request(lora=False))["training_type"] == {"type": "Full"}


def test_dpo_fields() -> None:
    dpo = {
        "beta": 0.2,
        "rpo_alpha": 0.5,
        "simpo_gamma": 0.0,
        "normalize_logratios_by_length": True,
        "reference_free": False,
    }
    body = create_payload(request(method="dpo", dpo=dpo))
    assert body["training_method"] == {
        "method": "dpo",
        "dpo_beta": 0.2,
        "rpo_alpha": 0.5,
        "simpo_gamma": 0.0,
        "dpo_normalize_logratios_by_length": True,
        "dpo_reference_free": False,
    }


def test_dpo_minimal_and_simpo_implies_reference_free() -> None:
    assert create_payload(request(method="dpo"))["training_method"] == {"method": "dpo"}
    simpo = create_payload(request(method="dpo", dpo={"simpo_gamma": 0.5}))["training_method"]
    assert simpo["dpo_reference_free"] is True
    assert simpo["dpo_normalize_logratios_by_length"] is True
    explicit = create_payload(
        request(method="dpo", dpo={"simpo_gamma": 0.5, "reference_free": False})
    )["training_method"]
    assert explicit["dpo_reference_free"] is False  # the user's explicit value wins


@pytest.mark.parametrize(
    ("hp", "expected"),
    [
        (
            {"lr_scheduler": "linear"},
            {"lr_scheduler_type": "linear", "lr_scheduler_args": {"min_lr_ratio": 0.0}},
        ),
        (
            {"lr_scheduler": "linear", "min_lr_ratio": 0.1},
            {"lr_scheduler_type": "linear", "lr_scheduler_args": {"min_lr_ratio": 0.1}},
        ),
        (
            {"lr_scheduler": "cosine"},
            {
                "lr_scheduler_type": "cosine",
                "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5},
            },
        ),
        (
            {"lr_scheduler": "Cosine", "min_lr_ratio": 0.05, "num_cycles": 2},
            {
                "lr_scheduler_type": "cosine",
                "lr_scheduler_args": {"min_lr_ratio": 0.05, "num_cycles": 2},
            },
        ),
        (
            {"min_lr_ratio": 0.2},  # args without a type: the SDK's default, cosine
            {
                "lr_scheduler_type": "cosine",
                "lr_scheduler_args": {"min_lr_ratio": 0.2, "num_cycles": 0.5},
            },
        ),
    ],
)
def test_lr_scheduler(hp: dict[str, Any], expected: dict[str, Any]) -> None:
    assert create_payload(request(hyperparameters=hp))["lr_scheduler"] == expected


def test_no_lr_scheduler_set_sends_the_sdk_default() -> None:
    assert create_payload(request(hyperparameters={"epochs": 1}))["lr_scheduler"] == COSINE_DEFAULT


def test_options_pass_through_and_win() -> None:
    options = {
        "n_epochs": 5,
        "packing": False,
        "early_stopping_enabled": True,
        "training_method": {"train_on_inputs": False},
    }
    body = create_payload(request(hyperparameters={"epochs": 3}, options=options))
    assert body["n_epochs"] == 5
    assert body["packing"] is False and body["early_stopping_enabled"] is True
    # nested dicts merge, so one sub-key can be changed without restating the method
    assert body["training_method"] == {"method": "sft", "train_on_inputs": False}


def test_option_replaces_non_dict_value() -> None:
    body = create_payload(request(lora=False, options={"training_type": "odd"}))
    assert body["training_type"] == "odd"


def test_suffix_carries_the_tag() -> None:
    assert create_payload(request())["suffix"] == TAG
    assert create_payload(request(suffix="support-v3"))["suffix"] == f"support-v3-{TAG}"
    longest = create_payload(request(suffix="x" * MAX_USER_SUFFIX))["suffix"]
    assert len(longest) == MAX_SUFFIX and longest.endswith(TAG)
    assert tag_from_suffix(longest) == TAG


def test_from_output_becomes_from_checkpoint_without_model() -> None:
    body = create_payload(request(from_output="someone/Meta-Llama-base-sft-rc-aaaaaaaaaaaa-1f2e"))
    assert body["from_checkpoint"] == "someone/Meta-Llama-base-sft-rc-aaaaaaaaaaaa-1f2e"
    # the SDK refuses model with from_checkpoint: the job takes the checkpoint's model
    assert "model" not in body
    assert create_payload(request(from_output="ft-1", from_step=40))["from_checkpoint"] == "ft-1:40"
    optioned = create_payload(request(options={"from_checkpoint": "ft-2:10"}))
    assert optioned["from_checkpoint"] == "ft-2:10" and "model" not in optioned
    assert "model" not in estimate_payload("file-t", request(from_output="ft-1"))


def test_lora_alpha_is_a_whole_number() -> None:
    body = create_payload(request(lora={"r": 16, "alpha": 32.0}))
    assert body["training_type"]["lora_alpha"] == 32
    assert isinstance(body["training_type"]["lora_alpha"], int)
    assert "lora.alpha: together takes a whole number" in "\n".join(
        request_problems(request(lora={"r": 16, "alpha": 16.5}))
    )


def test_wandb_block_maps_to_the_flat_fields_the_sdk_sends() -> None:
    wandb = {
        "project": "support",
        "name": "run-1",
        "entity": "team",
        "base_url": "https://wandb.example",
        "api_key": "resolved-key",
    }
    body = create_payload(request(wandb=wandb))
    assert {k: v for k, v in body.items() if k.startswith("wandb")} == {
        "wandb_key": "resolved-key",  # what the SDK sends (the spec says wandb_api_key)
        "wandb_project_name": "support",
        "wandb_name": "run-1",
        "wandb_entity": "team",
        "wandb_base_url": "https://wandb.example",
    }
    legacy = create_payload(request(options={"wandb_api_key": "k"}))
    assert legacy["wandb_key"] == "k" and "wandb_api_key" not in legacy


def test_huggingface_train_on_inputs_and_vision() -> None:
    hf = {"model": "org/base", "revision": "abc123", "output_repo": "org/out", "token": "hf_x"}
    body = create_payload(request(huggingface=hf, train_on_inputs=False, train_vision=True))
    assert body["model"] == request().model  # a Hugging Face start keeps the base model
    assert body["from_hf_model"] == "org/base" and body["hf_model_revision"] == "abc123"
    assert body["hf_output_repo_name"] == "org/out" and body["hf_api_token"] == "hf_x"
    assert body["training_method"] == {"method": "sft", "train_on_inputs": False}
    assert body["multimodal_params"] == {"train_vision": True}
    # the deprecated top-level option goes where the SDK puts it
    legacy = create_payload(request(options={"train_on_inputs": True}))
    assert legacy["training_method"]["train_on_inputs"] is True
    assert "train_on_inputs" not in legacy


def test_violations_of_a_422_body() -> None:
    body = {
        "error": {"message": "Invalid request: 2 validation errors", "type": "x"},
        "errors": [
            {"field": "model", "message": "not both"},
            {"field": "n_epochs", "message": "big"},
        ],
    }
    assert violations(body) == ["model: not both", "n_epochs: big"]
    nested = {"error": {"message": "m", "details": [{"param": "suffix", "msg": "too long"}]}}
    assert violations(nested) == ["suffix: too long"]
    assert violations({"detail": [{"loc": ["body", "lr"], "msg": "bad"}]}) == ["lr: bad"]
    assert violations({"error": {"message": "plain"}}) == [] == violations("text")


def test_create_422_names_each_field(router: respx.MockRouter) -> None:
    router.post("/fine-tunes").respond(
        422,
        json={
            "error": {"message": "Invalid request: 2 validation errors", "type": "invalid"},
            "errors": [
                {"field": "model", "message": "give a model or a checkpoint, not both"},
                {"field": "suffix", "message": "at most 40 characters"},
            ],
        },
    )
    with pytest.raises(ProviderError) as err:
        make_driver("together", router).driver.create_job(request())
    assert err.value.status == 422 and err.value.kind is ErrorKind.PERMANENT
    assert err.value.message == (
        "model: give a model or a checkpoint, not both; suffix: at most 40 characters"
    )


def test_estimate_payload_keeps_only_estimate_fields() -> None:
    req = request(
        lora=False,
        hyperparameters={"epochs": 2, "learning_rate": 1e-4, "n_evals": 1},
        validation_file_id="file-val",
    )
    body = estimate_payload("file-other", req)
    assert body == {
        "training_file": "file-other",
        "validation_file": "file-val",
        "model": req.model,
        "n_epochs": 2,
        "n_evals": 1,
        "training_method": {"method": "sft", "train_on_inputs": "auto"},
        "training_type": {"type": "Full"},
    }


@pytest.mark.parametrize(
    ("suffix", "tag"),
    [
        (TAG, TAG),
        (f"support-v3-{TAG}", TAG),
        (f"support-v3-{TAG}-x", None),
        (LEGACY_TAG, LEGACY_TAG),
        (f"support-v3-{LEGACY_TAG}", LEGACY_TAG),
        ("rc3F9A-0123456789a", None),  # upper case is not ours
        ("rc3f9a-0123456789", None),
        ("rc-0123456789AB", None),
        ("xrc-0123456789ab", None),
        ("rc-0123456789a", None),
        ("", None),
        (None, None),
    ],
)
def test_tag_from_suffix(suffix: str | None, tag: str | None) -> None:
    assert tag_from_suffix(suffix) == tag


def test_tag_from_output_name_allows_the_trailing_hash() -> None:
    name = f"someone/Meta-Llama-3.1-8B-Instruct-Reference-support-v3-{TAG}-4224205a"
    assert tag_from_suffix(name, output_name=True) == TAG
    assert tag_from_suffix(name) is None
    assert tag_from_suffix(f"someone/model-{TAG}", output_name=True) == TAG


def test_request_problems() -> None:
    assert request_problems(request(lora={"r": 8}, hyperparameters={"epochs": 1})) == []
    problems = request_problems(
        request(
            method="dpo",
            hyperparameters={"epochs": 1, "learning_rate_multiplier": 2, "lr_scheduler": "step"},
            lora={"alpha": 16, "rank": 4},
            dpo={"beta": 0.1, "gamma": 1},
            suffix="s" * (MAX_USER_SUFFIX + 1),
            options={"suffix": "mine"},
        )
    )
    text = "\n".join(problems)
    for needle in (
        "hyperparameters.learning_rate_multiplier",
        "hyperparameters.lr_scheduler",
        "lora.rank",
        "lora.r:",
        "dpo.gamma",
        "suffix: at most 21",
        "options.suffix",
    ):
        assert needle in text
    assert request_problems(request(method="rl"))[0].startswith("method:")
    assert "dpo: only with method: dpo" in request_problems(request(dpo={"beta": 0.1}))


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"options": {"wandb_project_name": "p"}}, "options.wandb_project_name: use the spec key"),
        ({"options": {"hf_api_token": {"env": "T"}}}, "use the spec key huggingface.token"),
        ({"options": {"multimodal_params": {}}}, "use the spec key train_vision"),
        (
            {"options": {"wandb_api_key": {"env": "K"}}, "wandb": {"api_key": {"env": "K"}}},
            "options.wandb_api_key: wandb.api_key is set too",
        ),
        (
            {"options": {"train_on_inputs": True}, "train_on_inputs": False},
            "options.train_on_inputs: the spec key train_on_inputs is set too",
        ),
        (
            {"options": {"from_checkpoint": "ft-1"}, "from_output": "ft-2"},
            "options.from_checkpoint: from: is set too",
        ),
        ({"options": {"from_checkpoint": "ft-1:last"}}, "optionally :STEP"),
        (
            {"options": {"from_checkpoint": "ft-1"}, "huggingface": {"model": "o/m"}},
            "huggingface.model: a job starts from a Hugging Face repo or from a checkpoint",
        ),
        (
            {"method": "dpo", "dpo": {"simpo_gamma": 0.5, "reference_free": False}},
            "dpo.reference_free: SimPO (simpo_gamma > 0) needs it true",
        ),
    ],
)
def test_request_problems_the_sdk_would_refuse(over: dict[str, Any], words: str) -> None:
    assert words in "\n".join(request_problems(request(**over)))


def test_request_problems_accept_the_new_keys() -> None:
    req = request(
        wandb={"project": "p", "api_key": {"env": "WANDB_API_KEY"}},
        huggingface={"model": "o/m", "revision": "r", "token": {"env": "HF_TOKEN"}},
        train_on_inputs="auto",
        train_vision=False,
    )
    assert request_problems(req) == []
    assert request_problems(request(options={"from_checkpoint": "ft-1:10"})) == []


# ---------------------------------------------------------------- against the official spec


SPEC_REQUESTS = {
    "sft-defaults": request(),
    "sft-everything": request(
        validation_file_id="file-val",
        suffix="support-v3",
        lora={"r": 16, "alpha": 32, "dropout": 0.05, "trainable_modules": "all-linear"},
        hyperparameters={
            "epochs": 3,
            "learning_rate": 1e-5,
            "batch_size": 8,
            "warmup_ratio": 0.1,
            "weight_decay": 0.0,
            "max_grad_norm": 1.0,
            "max_seq_length": 8192,
            "n_checkpoints": 2,
            "n_evals": 3,
            "seed": 42,
            "lr_scheduler": "cosine",
            "min_lr_ratio": 0.1,
            "num_cycles": 1.0,
        },
        from_output="ft-0a1b2c3d:10",
    ),
    "full-linear": request(lora=False, hyperparameters={"lr_scheduler": "linear"}),
    "lora-rank-only": request(lora={"r": 8}, hyperparameters={"batch_size": "max"}),
    "dpo": request(
        method="dpo",
        dpo={
            "beta": 0.1,
            "rpo_alpha": 0.2,
            "simpo_gamma": 0.3,
            "normalize_logratios_by_length": True,
            "reference_free": True,
        },
    ),
    "spec-known-options": request(options={"packing": False}, wandb={"name": "run-1"}),
    "hugging-face": request(
        huggingface={"model": "o/m", "revision": "r", "output_repo": "o/out", "token": "t"},
        train_on_inputs=True,
        train_vision=False,
    ),
}


@pytest.mark.parametrize("name", sorted(SPEC_REQUESTS))
def test_create_payload_conforms_to_spec(name: str) -> None:
    validate = spec_validator(CREATE_BODY)
    body = create_payload(SPEC_REQUESTS[name])
    if "from_checkpoint" in body:
        # the one departure: the spec marks model required, but the SDK refuses it next to
        # from_checkpoint (its create docs list the pair invalid), so the body has none
        assert "model" not in body
        body = {"model": SPEC_REQUESTS[name].model, **body}
    validate(body)


@pytest.mark.parametrize("name", sorted(SPEC_REQUESTS))
def test_estimate_payload_conforms_to_spec(name: str) -> None:
    validate = spec_validator(ESTIMATE_BODY)
    validate(estimate_payload("file-train", SPEC_REQUESTS[name]))


def test_spec_validator_is_not_vacuous() -> None:
    """The check must reject what the spec forbids, e.g. a LoRA type without its rank."""
    validate = spec_validator(CREATE_BODY)
    body = create_payload(request())
    with pytest.raises(jsonschema.ValidationError):
        validate({**body, "training_type": {"type": "Lora"}})
    with pytest.raises(jsonschema.ValidationError):
        validate({**body, "training_method": {"method": "sft"}})
    with pytest.raises(jsonschema.ValidationError):
        validate({k: v for k, v in body.items() if k != "model"})
    with pytest.raises(jsonschema.ValidationError):
        validate({**body, "batch_size": "min"})
    validate({**body, "random_seed": None})  # OpenAPI 3.0 nullable, rewritten


def test_sample_wire_objects_conform_to_spec() -> None:
    validate_job = spec_validator(JOB)
    validate_truncated = spec_validator(JOB_TRUNCATED)
    for status in ("pending", "running", "completed", "error", "cancel_requested"):
        validate_job(wire_job(status, steps_completed=3, total_steps=10))
        validate_truncated(wire_job(status, truncated=True))
    validate_job(wire_job("error", events=[wire_event("boom", level="error", type="job_error")]))
    spec_validator(EVENT)(wire_event())
    validate_file = spec_validator(FILE)
    validate_file(wire_file())
    validate_file(wire_file(Processed=False, processing_status="PENDING"))


# ---------------------------------------------------------------- job_from_wire


def test_running_job_with_steps() -> None:
    job = job_from_wire(wire_job("running", steps_completed=30, total_steps=100))
    assert job.phase is Phase.RUNNING and job.progress == "step 30/100"
    assert job.tag == TAG and job.fine_tuned_model is None and job.error is None
    assert job.trained_tokens == 850000
    assert job.created_at == datetime(2026, 5, 17, 17, 35, 45, 123000, tzinfo=UTC).timestamp()
    assert job.cost_usd is None  # total_price has no documented unit


def test_progress_from_epochs_then_none() -> None:
    assert job_from_wire(wire_job("running", epochs_completed=1)).progress == "epoch 1/3"
    assert job_from_wire(wire_job("queued", truncated=True)).progress is None


def test_completed_job_has_model() -> None:
    job = job_from_wire(wire_job("completed"))
    assert job.phase is Phase.SUCCEEDED
    assert job.fine_tuned_model == wire_job()["model_output_name"]


def test_tag_falls_back_to_model_output_name() -> None:
    d = wire_job("completed")
    del d["suffix"]
    assert job_from_wire(d).tag == TAG
    assert job_from_wire({**d, "model_output_name": "someone/model-7f"}).tag is None


def test_error_job_message_from_last_error_event() -> None:
    events = [
        wire_event("Training started"),
        wire_event("CUDA out of memory on node 3", level="error", type="job_error"),
        wire_event("Job failed", level="info", type="job_stopped"),
    ]
    job = job_from_wire(wire_job("error", events=events))
    assert job.phase is Phase.FAILED and job.error_retryable is True
    assert job.error == "CUDA out of memory on node 3"


def test_user_error_is_not_retryable() -> None:
    job = job_from_wire(wire_job("user_error", error="Invalid data at line 3"))
    assert job.phase is Phase.FAILED and job.error_retryable is False
    assert job.error == "Invalid data at line 3"
    job = job_from_wire(wire_job("user_error", error={"message": "bad rows"}))
    assert job.error == "bad rows"


def test_error_falls_back_to_status() -> None:
    job = job_from_wire({"id": "ft-1", "status": "error"})
    assert job.error == "job ended with status error"


def test_job_from_wire_tolerates_odd_fields() -> None:
    # the empty object, the same for every provider: test_drivers.py
    odd = job_from_wire(
        {
            "id": "ft-2",
            "status": "running",
            "created_at": 1747500000,
            "token_count": "many",
            "steps_completed": True,
            "total_steps": 0,
            "suffix": 12,
            "events": ["not an event"],
            "something_new": {"x": 1},
        }
    )
    assert odd.created_at == 1747500000.0 and odd.trained_tokens is None
    assert odd.progress is None and odd.tag is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-17T17:35:45Z", datetime(2026, 5, 17, 17, 35, 45, tzinfo=UTC).timestamp()),
        ("2026-05-17T17:35:45", datetime(2026, 5, 17, 17, 35, 45, tzinfo=UTC).timestamp()),
        (
            "2026-05-17T17:35:45.123456789+00:00",
            datetime(2026, 5, 17, 17, 35, 45, 123456, tzinfo=UTC).timestamp(),
        ),
        (1747500000, 1747500000.0),
        (1747500000.5, 1747500000.5),
        ("1747500000", 1747500000.0),
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
        ("nan", None),
    ],
)
def test_timestamp(value: Any, expected: float | None) -> None:
    assert timestamp(value) == expected


def test_event_from_wire() -> None:
    event = event_from_wire(wire_event("Epoch 1 done", level="Info"))
    assert event.level == "info" and event.message == "Epoch 1 done"
    assert event.created_at == datetime(2026, 5, 17, 17, 40, tzinfo=UTC).timestamp()
    assert event_from_wire({"created_at": 5, "level": "legacy_iwarning"}).level == "warning"
    assert event_from_wire({"level": None, "message": "x"}).level == "info"


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"processing_status": "COMPLETED"}, "ready"),
        ({"processing_status": "completed", "Processed": False}, "ready"),
        ({"processing_status": "RUNNING", "Processed": True}, "pending"),
        ({"processing_status": "QUEUED"}, "pending"),
        ({"processing_status": "FAILED"}, "failed"),
        ({"processing_status": "INVALID_FORMAT"}, "failed"),
        ({"processing_status": "SOMETHING_NEW"}, "pending"),
        ({"Processed": True}, "ready"),
        ({"Processed": False}, "pending"),
        ({}, "ready"),
    ],
)
def test_file_state(fields: dict[str, Any], state: str) -> None:
    assert file_state({"id": "file-1", **fields}) == state


# ---------------------------------------------------------------- the driver over HTTP


def test_list_and_find_jobs_by_tag(router: respx.MockRouter) -> None:
    other = "rc-ffffffffffff"
    jobs = [
        wire_job("completed", truncated=True, id="ft-a"),
        wire_job("running", truncated=True, id="ft-b", suffix=f"x-{other}", model_output_name=""),
        wire_job("error", truncated=True, id="ft-c", suffix=None, model_output_name=None),
        wire_job("queued", truncated=True, id="ft-d", suffix=TAG),
    ]
    route = router.get("fine-tunes").respond(200, json={"data": jobs})
    driver, _, _ = make_driver("together", router)
    assert [j.id for j in driver.list_jobs()] == ["ft-a", "ft-b", "ft-c", "ft-d"]
    assert [j.id for j in driver.find_jobs_by_tag(TAG)] == ["ft-a", "ft-d"]
    assert [j.id for j in driver.find_jobs_by_tag(other)] == ["ft-b"]
    assert driver.find_jobs_by_tag("rc-000000000000") == []
    assert route.call_count == 4


def test_job_events(router: respx.MockRouter) -> None:
    events = [
        wire_event("Job queued", type="job_pending", created_at="2026-05-17T17:35:46Z"),
        wire_event("Training started"),
        wire_event("Out of credits", level="error", type="billing_limit"),
    ]
    spec_validator("/components/schemas/FinetuneListEvents")({"data": events})
    events[1]["level"] = "Info"  # the SDK's title-case spelling, outside the spec's enum
    router.get("fine-tunes/ft-1/events").respond(200, json={"data": events})
    driver, _, _ = make_driver("together", router)
    got = driver.job_events("ft-1")
    assert [e.message for e in got] == ["Job queued", "Training started", "Out of credits"]
    assert [e.level for e in got] == ["info", "info", "error"]
    assert got[0].created_at == datetime(2026, 5, 17, 17, 35, 46, tzinfo=UTC).timestamp()


def wire_checkpoint(step: int, kind: str, minute: int) -> dict[str, Any]:
    path = "s3://together/ft-1" + (f"/checkpoint-{step}" if kind == "Intermediate" else "")
    return {
        "step": step,
        "created_at": f"2026-05-17T18:{minute:02d}:00.000Z",
        "path": path,
        "checkpoint_type": kind,
    }


def test_checkpoints_oldest_first_by_the_ids_from_checkpoint_takes(
    router: respx.MockRouter,
) -> None:
    listed = {  # newest first, as Together answers; LoRA lists its final one twice
        "data": [
            wire_checkpoint(30, "Final Merged", 30),
            wire_checkpoint(30, "Final Adapter", 30),
            wire_checkpoint(20, "Intermediate", 20),
            wire_checkpoint(10, "Intermediate", 10),
        ]
    }
    spec_validator("/components/schemas/FinetuneListCheckpoints")(listed)
    route = router.get("fine-tunes/ft-1/checkpoints").respond(200, json=listed)
    driver, _, _ = make_driver("together", router)
    got = driver.checkpoints("ft-1")
    assert [c.id for c in got] == ["ft-1:10", "ft-1:20", "ft-1"]
    assert [c.step for c in got] == [10, 20, 30] and route.call_count == 1
    assert all(c.model is None for c in got)  # a storage path is not a model name
    assert got[0].created_at == datetime(2026, 5, 17, 18, 10, tzinfo=UTC).timestamp()


def test_checkpoints_of_a_job_with_none(router: respx.MockRouter) -> None:
    router.get("fine-tunes/ft-1/checkpoints").respond(200, json={"data": []})
    driver, _, _ = make_driver("together", router)
    assert driver.checkpoints("ft-1") == []


def test_estimate_price(router: respx.MockRouter) -> None:
    route = router.post("fine-tunes/estimate-price").respond(
        200,
        json={
            "estimated_total_price": 12.5,
            "allowed_to_proceed": True,
            "user_limit": 100.0,
            "estimated_train_token_count": 1e6,
            "estimated_eval_token_count": 0,
        },
    )
    driver, _, _ = make_driver("together", router)
    req = request(lora=False, hyperparameters={"epochs": 2})
    assert driver.estimate_price("file-train", req) == 12.5
    assert json.loads(route.calls.last.request.content) == estimate_payload("file-train", req)
    router.post("fine-tunes/estimate-price").respond(200, json={"allowed_to_proceed": False})
    assert driver.estimate_price("file-train", req) is None


# ---------------------------------------------------------------- files


STORAGE = "https://storage.example.test/bucket/upload?X-Amz-Signature=secret-signature"


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_data_file(tmp_path)


def _form_fields(req: httpx.Request) -> dict[str, str]:
    """The (file-less) multipart fields of a request."""
    return {name: value.decode() for name, (_, value) in multipart(req).items()}


def test_upload_signed_url_flow(router: respx.MockRouter, data_file: Path) -> None:
    name = f"rc-{SHA[:16]}-train.jsonl"
    post = router.post("files").respond(
        302, headers={"Location": STORAGE, "X-Together-File-Id": "file-new"}
    )
    put = router.put(STORAGE).respond(200)
    preprocess = router.post("files/file-new/preprocess").respond(
        200, json=wire_file("file-new", Processed=False, processing_status="PENDING")
    )
    poll = router.get("files/file-new")
    poll.side_effect = [
        httpx.Response(
            200, json=wire_file("file-new", Processed=False, processing_status="RUNNING")
        ),
        httpx.Response(200, json=wire_file("file-new", filename=name)),
    ]
    driver, _, poll_sleeps = make_driver("together", router)
    remote = driver.upload_file(data_file, SHA)

    assert remote.id == "file-new" and remote.filename == name and remote.bytes == 1234
    sent = post.calls.last.request
    assert _form_fields(sent) == {
        "purpose": "fine-tune",
        "file_name": name,
        "file_type": "jsonl",
        "checksum": SHA,
    }
    assert b"messages" not in sent.content  # the POST carries no bytes
    assert put.call_count == 1
    put_request = put.calls.last.request
    assert "authorization" not in put_request.headers  # our key never goes to storage
    assert put_request.content == data_file.read_bytes()
    assert preprocess.call_count == 1 and poll.call_count == 2
    assert len(poll_sleeps) == 2 and all(s > 0 for s in poll_sleeps)


def test_upload_put_follows_redirects_without_the_key(
    router: respx.MockRouter, data_file: Path
) -> None:
    router.post("files").respond(302, headers={"Location": STORAGE, "X-Together-File-Id": "f-1"})
    second = "https://other-region.example.test/put/here"
    first = router.put(STORAGE).respond(307, headers={"Location": second})
    final = router.put(second).respond(200)
    router.post("files/f-1/preprocess").respond(200, json=wire_file("f-1"))
    driver, _, poll_sleeps = make_driver("together", router)
    assert driver.upload_file(data_file, SHA).id == "f-1"
    assert first.call_count == 1 and final.call_count == 1
    assert "authorization" not in final.calls.last.request.headers
    assert final.calls.last.request.content == data_file.read_bytes()
    assert poll_sleeps == []  # the preprocess answer was already COMPLETED


def test_upload_put_retries_a_5xx(router: respx.MockRouter, data_file: Path) -> None:
    router.post("files").respond(302, headers={"Location": STORAGE, "X-Together-File-Id": "f-1"})
    put = router.put(STORAGE)
    put.side_effect = [httpx.Response(503, text="slow down"), httpx.Response(200)]
    router.post("files/f-1/preprocess").respond(200, json=wire_file("f-1"))
    driver, api_sleeps, _ = make_driver("together", router)
    assert driver.upload_file(data_file, SHA).id == "f-1"
    assert put.call_count == 2 and len(api_sleeps) == 1


def test_upload_put_refused_is_permanent_without_the_signature(
    router: respx.MockRouter, data_file: Path
) -> None:
    router.post("files").respond(302, headers={"Location": STORAGE, "X-Together-File-Id": "f-1"})
    router.put(STORAGE).respond(403, text="SignatureDoesNotMatch")
    driver, _, _ = make_driver("together", router)
    with pytest.raises(ProviderError) as info:
        driver.upload_file(data_file, SHA)
    assert info.value.kind is ErrorKind.PERMANENT
    assert "storage.example.test" in str(info.value)
    assert "secret-signature" not in str(info.value)


def test_upload_conflict_reuses_the_existing_file(
    router: respx.MockRouter, data_file: Path
) -> None:
    router.post("files").respond(409, json={"message": "file exists", "file_id": "file-old"})
    put = router.put(STORAGE).respond(200)
    router.get("files/file-old").respond(200, json=wire_file("file-old"))
    driver, _, _ = make_driver("together", router)
    assert driver.upload_file(data_file, SHA).id == "file-old"
    assert put.call_count == 0


def test_upload_processing_failed_is_permanent(router: respx.MockRouter, data_file: Path) -> None:
    router.post("files").respond(302, headers={"Location": STORAGE, "X-Together-File-Id": "f-1"})
    router.put(STORAGE).respond(200)
    router.post("files/f-1/preprocess").respond(
        200, json=wire_file("f-1", Processed=False, processing_status="QUEUED")
    )
    report = {"valid": False, "error": "line 3: missing 'messages'", "error_type": "INVALID_FORMAT"}
    router.get("files/f-1").respond(
        200,
        json=wire_file(
            "f-1", Processed=False, processing_status="INVALID_FORMAT", validation_report=report
        ),
    )
    driver, _, _ = make_driver("together", router)
    with pytest.raises(ProviderError) as info:
        driver.upload_file(data_file, SHA)
    err = info.value
    assert err.kind is ErrorKind.PERMANENT and not err.retryable
    assert f"rc-{SHA[:16]}-train.jsonl" in str(err) and "line 3: missing 'messages'" in str(err)


def test_upload_processing_timeout_is_retryable(router: respx.MockRouter, data_file: Path) -> None:
    router.post("files").respond(409, json={"file_id": "f-1"})
    pending = wire_file("f-1", Processed=False, processing_status="RUNNING")
    poll = router.get("files/f-1").respond(200, json=pending)
    driver, _, poll_sleeps = make_driver("together", router, file_ready_timeout=10.0)
    with pytest.raises(ProviderError) as info:
        driver.upload_file(data_file, SHA)
    assert info.value.kind is ErrorKind.RETRYABLE and "still processing" in str(info.value)
    assert sum(poll_sleeps) >= 10.0 and poll.call_count == len(poll_sleeps) + 1


def test_upload_redirect_without_headers_is_an_error(
    router: respx.MockRouter, data_file: Path
) -> None:
    router.post("files").respond(302, headers={"Location": STORAGE})
    driver, _, _ = make_driver("together", router)
    with pytest.raises(ProviderError, match="X-Together-File-Id"):
        driver.upload_file(data_file, SHA)


def test_find_file(router: respx.MockRouter) -> None:
    prefix = f"rc-{SHA[:16]}-"
    files = [
        wire_file("file-other", filename="rc-ffffffffffffffff-train.jsonl"),
        wire_file("file-pending", filename=prefix + "a.jsonl", processing_status="RUNNING"),
        wire_file("file-ok", filename=prefix + "train.jsonl"),
    ]
    spec_validator("/components/schemas/FileList")({"data": files})
    router.get("files").respond(200, json={"data": files})
    driver, _, _ = make_driver("together", router)
    found = driver.find_file(SHA)
    assert found is not None and found.id == "file-ok" and found.filename == prefix + "train.jsonl"
    assert driver.find_file("e" * 64) is None


def test_find_file_on_empty_list(router: respx.MockRouter) -> None:
    router.get("files").respond(200, json={"data": []})
    driver, _, _ = make_driver("together", router)
    assert driver.find_file(SHA) is None
