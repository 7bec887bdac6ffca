"""Request-body parity with the official ``together`` SDK (issue #13 §1).

Each configuration is created twice against one capturing server (an in-process httpx
transport that answers like Together): by the SDK's ``fine_tuning.create`` and by
reconciler's own path (a spec → ``create_request`` → ``resolve_request`` → the Together
driver). The two ``POST /v1/fine-tunes`` bodies are compared field by field; the only
differences allowed are listed in ``ALLOWED`` and ``sdk_default``, each with its reason.

The SDK is a test-only dependency: without it the module is skipped. Both sides use the
same, already uploaded file ids, so neither uploads or validates files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from driver_fixtures import TAG
from openapi_check import document, require_specs

from reconciler.emulator.together.jobs import limits
from reconciler.envrefs import resolve_request
from reconciler.model import create_request
from reconciler.providers import CATALOG
from reconciler.providers.http import ApiClient, make_http_client
from reconciler.providers.together.client import TogetherDriver
from reconciler.providers.together.payload import compose_suffix
from reconciler.spec import JobSpec

together = pytest.importorskip(
    "together", reason="the official together SDK (a test-only dependency) is not installed"
)

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
TRAIN, VALID = "file-0a1b2c3d-train", "file-0a1b2c3d-valid"
HOST = "http://capture.together.test"
# sentinels: what the environment holds and the bodies must carry, never the spec
ENV = {"WANDB_API_KEY": "wandb-key-sentinel-0123456789", "HF_TOKEN": "hf_sentinel_0123456789"}


class Capture:
    """A tiny Together: model limits, a price estimate, and creates that are recorded."""

    def __init__(self, vision: bool = False) -> None:
        self.vision = vision
        self.creates: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/fine-tunes/models/limits"):
            doc = limits(MODEL)
            doc["supports_vision"] = self.vision
            return httpx.Response(200, json=doc)
        if path.endswith("/fine-tunes/estimate-price"):
            return httpx.Response(200, json=ESTIMATE)
        if path.endswith("/fine-tunes") and request.method == "POST":
            body = json.loads(request.content)
            self.creates.append(body)
            job = {"id": f"ft-{len(self.creates):08d}", "status": "pending", **body}
            job |= {"created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z"}
            return httpx.Response(200, json=job)
        return httpx.Response(404, json={"error": {"message": f"no route {path}", "type": "x"}})


ABSENT = object()  # a field one side does not send

ESTIMATE = {
    "estimation_available": True,
    "estimated_total_price": 1.25,
    "allowed_to_proceed": True,
    "user_limit": 100.0,
    "estimated_train_token_count": 1000.0,
    "estimated_eval_token_count": 0.0,
}


def sdk_body(capture: Capture, kwargs: dict[str, Any]) -> dict[str, Any]:
    http = httpx.Client(transport=httpx.MockTransport(capture))
    client = together.Together(base_url=HOST, api_key="sdk-key", http_client=http, max_retries=0)
    client.fine_tuning.create(training_file=TRAIN, **kwargs)
    return capture.creates[-1]


def our_body(capture: Capture, spec: dict[str, Any], from_output: str | None) -> dict[str, Any]:
    job = JobSpec.model_validate(
        {"provider": "together", "model": MODEL, "training_file": "train.jsonl", **spec}
    )
    problems = CATALOG["together"].request_problems(
        create_request("parity", job, tag=TAG, training_file_id=TRAIN, from_output=from_output)
    )
    assert problems == [], problems  # what validate would say of the spec
    request = create_request(
        "parity",
        job,
        tag=TAG,
        training_file_id=TRAIN,
        validation_file_id=VALID if job.validation_file else None,
        from_output=from_output,
    )
    env = {"TOGETHER_API_KEY": "our-key", "TOGETHER_BASE_URL": HOST}
    http = make_http_client(CATALOG["together"], env, transport=httpx.MockTransport(capture))
    driver = TogetherDriver(ApiClient("together", http, sleep=lambda _: None))
    driver.create_job(resolve_request(request, ENV))
    return capture.creates[-1]


# name: (SDK keyword arguments, spec keys, the upstream result for `from`, vision model)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str | None, bool]] = {
    "lora-default": ({"model": MODEL}, {}, None, False),
    "lora-explicit": (
        {
            "model": MODEL,
            "lora": True,
            "lora_r": 32,
            "lora_alpha": 64,
            "lora_dropout": 0.05,
            "lora_trainable_modules": "q_proj,v_proj",
        },
        {"lora": {"r": 32, "alpha": 64, "dropout": 0.05, "trainable_modules": "q_proj,v_proj"}},
        None,
        False,
    ),
    "lora-rank-only": (
        {"model": MODEL, "lora": True, "lora_r": 8},
        {"lora": {"r": 8}},
        None,
        False,
    ),
    "full": ({"model": MODEL, "lora": False}, {"lora": False}, None, False),
    "dpo-beta": (
        {"model": MODEL, "training_method": "dpo", "dpo_beta": 0.2},
        {"method": "dpo", "dpo": {"beta": 0.2}},
        None,
        False,
    ),
    "dpo-rpo-normalised": (
        {
            "model": MODEL,
            "training_method": "dpo",
            "dpo_beta": 0.1,
            "rpo_alpha": 0.5,
            "dpo_normalize_logratios_by_length": True,
        },
        {
            "method": "dpo",
            "dpo": {"beta": 0.1, "rpo_alpha": 0.5, "normalize_logratios_by_length": True},
        },
        None,
        False,
    ),
    "dpo-simpo": (
        {"model": MODEL, "training_method": "dpo", "simpo_gamma": 0.5},
        {"method": "dpo", "dpo": {"simpo_gamma": 0.5}},
        None,
        False,
    ),
    "validation-and-evals": (
        {"model": MODEL, "validation_file": VALID, "n_evals": 4},
        {"validation_file": "valid.jsonl", "hyperparameters": {"n_evals": 4}},
        None,
        False,
    ),
    "batch-size-max": (
        {"model": MODEL, "batch_size": "max"},
        {"hyperparameters": {"batch_size": "max"}},
        None,
        False,
    ),
    "batch-size-and-the-rest": (
        {
            "model": MODEL,
            "lora": True,
            "lora_r": 16,
            "batch_size": 16,
            "n_epochs": 3,
            "n_checkpoints": 2,
            "learning_rate": 2e-5,
            "warmup_ratio": 0.1,
            "max_grad_norm": 0.5,
            "weight_decay": 0.01,
            "max_seq_length": 4096,
            "random_seed": 7,
        },
        {
            "lora": {"r": 16},
            "hyperparameters": {
                "batch_size": 16,
                "epochs": 3,
                "n_checkpoints": 2,
                "learning_rate": 2e-5,
                "warmup_ratio": 0.1,
                "max_grad_norm": 0.5,
                "weight_decay": 0.01,
                "max_seq_length": 4096,
                "seed": 7,
            },
        },
        None,
        False,
    ),
    "scheduler-linear": (
        {"model": MODEL, "lr_scheduler_type": "linear", "min_lr_ratio": 0.1},
        {"hyperparameters": {"lr_scheduler": "linear", "min_lr_ratio": 0.1}},
        None,
        False,
    ),
    "scheduler-cosine": (
        {"model": MODEL, "lr_scheduler_type": "cosine", "scheduler_num_cycles": 2.0},
        {"hyperparameters": {"lr_scheduler": "cosine", "num_cycles": 2.0}},
        None,
        False,
    ),
    "from-job-at-a-step": (
        {"from_checkpoint": "ft-0000aaaa:10"},
        {"from": {"job": "base", "step": 10}},
        "ft-0000aaaa",
        False,
    ),
    "from-checkpoint-option": (
        {"from_checkpoint": "someone/Meta-Llama-base-ft-1f2e:20"},
        {"options": {"from_checkpoint": "someone/Meta-Llama-base-ft-1f2e:20"}},
        None,
        False,
    ),
    "train-on-inputs": (
        {"model": MODEL, "train_on_inputs": False},
        {"train_on_inputs": False},
        None,
        False,
    ),
    "wandb": (
        {
            "model": MODEL,
            "wandb_api_key": ENV["WANDB_API_KEY"],
            "wandb_base_url": "https://wandb.example.test",
            "wandb_project_name": "support",
            "wandb_name": "support-v3",
            "wandb_entity": "acme",
        },
        {
            "wandb": {
                "project": "support",
                "name": "support-v3",
                "entity": "acme",
                "base_url": "https://wandb.example.test",
                "api_key": {"env": "WANDB_API_KEY"},
            }
        },
        None,
        False,
    ),
    "suffix": ({"model": MODEL, "suffix": "support-v3"}, {"suffix": "support-v3"}, None, False),
    "hugging-face": (
        {
            "model": MODEL,
            "from_hf_model": "acme/llama-3.1-8b-support",
            "hf_model_revision": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
            "hf_api_token": ENV["HF_TOKEN"],
            "hf_output_repo_name": "acme/support-v3",
        },
        {
            "huggingface": {
                "model": "acme/llama-3.1-8b-support",
                "revision": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
                "output_repo": "acme/support-v3",
                "token": {"env": "HF_TOKEN"},
            }
        },
        None,
        False,
    ),
    "vision-encoder": (
        {"model": MODEL, "train_vision": True},
        {"train_vision": True},
        None,
        True,
    ),
}


# Fields the SDK sends and reconciler does not, with the SDK's value and why it is the same
# request: a field absent from the spec snapshot, whose server default is the SDK's value.
SDK_ONLY_DEFAULTS: dict[str, tuple[Any, str]] = {
    "validation_file": ("", "the SDK sends an empty id for 'no validation file'"),
    "early_stopping_enabled": (False, "SDK-only field; the SDK documents it off by default"),
}
# Differences in a field both send, each with the check it must pass and why.
ALLOWED: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "suffix": (
        lambda ours, sdk: ours == compose_suffix(sdk, TAG),
        "reconciler appends its tag to the user's suffix (how a crash is resolved)",
    ),
}


def spec_default(path: str, sdk: dict[str, Any]) -> Any:
    """The default together.yaml documents for a create-body field (``a.b`` nested)."""
    doc = document("together")
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/fine-tunes"]["post"]["requestBody"]["content"]["application/json"]
    node: dict[str, Any] = body["schema"]
    head, _, rest = path.partition(".")
    node = node["properties"][head]
    if rest:
        # the nested object's own schema: the variant the SDK's body names
        variants = {
            "training_method": f"TrainingMethod{str(sdk[head].get('method', '')).upper()}",
            "training_type": "LoRATrainingType",
        }
        if head not in variants:
            return ABSENT
        node = schemas[variants[head]]["properties"][rest]
    return node.get("default", ABSENT)


def differences(ours: dict[str, Any], sdk: dict[str, Any]) -> list[str]:
    """Every difference the lists above do not explain, one line each."""
    flat_ours, flat_sdk = _flatten(ours), _flatten(sdk)
    out = []
    for path in sorted(set(flat_ours) | set(flat_sdk)):
        mine, theirs = flat_ours.get(path, ABSENT), flat_sdk.get(path, ABSENT)
        if _same(mine, theirs):
            continue
        if path in ALLOWED and ALLOWED[path][0](mine, None if theirs is ABSENT else theirs):
            continue
        if mine is ABSENT and path in SDK_ONLY_DEFAULTS:
            if _same(theirs, SDK_ONLY_DEFAULTS[path][0]):
                continue
        elif mine is ABSENT and _same(spec_default(path, sdk), theirs):
            continue  # the SDK spells out the spec's documented default; we leave it unsaid
        out.append(f"{path}: reconciler {_show(mine)}, SDK {_show(theirs)}")
    return out


def _same(a: Any, b: Any) -> bool:
    # compared as JSON: in Python 32 == 32.0 == True, on the wire they differ
    return a is not ABSENT and b is not ABSENT and json.dumps(a) == json.dumps(b)


def _flatten(body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, dict) and key != "lr_scheduler":  # a scheduler is one value
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value)


@pytest.fixture(autouse=True)
def _quiet_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the SDK reads its base URL and key from the environment when not given: keep it out
    for var in ("TOGETHER_API_KEY", "TOGETHER_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    require_specs("together")  # the documented defaults come from together.yaml
    yield


@pytest.mark.parametrize("name", sorted(CASES))
def test_reconciler_sends_what_the_sdk_sends(name: str) -> None:
    kwargs, spec, from_output, vision = CASES[name]
    capture = Capture(vision=vision)
    sdk = sdk_body(capture, kwargs)
    ours = our_body(capture, spec, from_output)
    assert differences(ours, sdk) == [], json.dumps({"reconciler": ours, "sdk": sdk}, indent=1)


def test_the_cases_cover_the_issue() -> None:
    """At least the 18 configurations of issue #13, and the comparison is not vacuous."""
    assert len(CASES) >= 18
    sdk = {"training_file": TRAIN, "model": MODEL, "n_epochs": 1, "suffix": "s"}
    assert differences({**sdk, "suffix": f"s-{TAG}"}, sdk) == []
    assert differences({**sdk, "suffix": f"s-{TAG}", "n_epochs": 2}, sdk) == [
        "n_epochs: reconciler 2, SDK 1"
    ]
    # a field the SDK sends with no documented default is a difference when we omit it
    assert differences({"training_file": TRAIN, "n_epochs": 1, "suffix": f"s-{TAG}"}, sdk) == [
        f"model: reconciler (absent), SDK {json.dumps(MODEL)}"
    ]


def test_the_sdk_refuses_a_model_next_to_a_checkpoint() -> None:
    """Why reconciler sends no model with ``from``: the SDK will not send the pair."""
    with pytest.raises(ValueError, match="not both"):
        sdk_body(Capture(), {"model": MODEL, "from_checkpoint": "ft-0000aaaa"})


def test_no_secret_in_the_spec_side() -> None:
    """The W&B key and the HF token reach the body only from the environment."""
    _, spec, _, _ = CASES["wandb"]
    job = JobSpec.model_validate(
        {"provider": "together", "model": MODEL, "training_file": "train.jsonl", **spec}
    )
    request = create_request("parity", job, tag=TAG, training_file_id=TRAIN)
    assert ENV["WANDB_API_KEY"] not in json.dumps(request.wandb)
    assert resolve_request(request, ENV).wandb == {
        **(request.wandb or {}),
        "api_key": ENV["WANDB_API_KEY"],
    }
