"""The Together create-job body: its schema (and the price estimate's), and the server's
checks and defaults that turn it into a job whose whole future is planned."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import Response

from ..core import (
    FILE,
    JOB,
    Emulator,
    haystack,
    job_files,
    new_uuid,
    plan_fault_failure,
    steps_between,
)
from ..lifecycle import new_life, plan_failure
from ..schema import BOOL, INT, NUM, STR, Node, Problem, check, nullable
from ..store import Row
from .dialect import NAME, error, file_not_found, validation_error
from .files import processing_status
from .jobs import (
    KIND,
    MODELS,
    OWNER_ADDRESS,
    PHASES,
    PHASES_AFTER,
    USER_ID,
    limits,
    output_name,
    price_per_million,
    train_seconds,
)

_SCHEDULER: Node = {
    "type": "object",
    "required": ["lr_scheduler_type"],
    "properties": {
        "lr_scheduler_type": {"enum": ["linear", "cosine"]},
        "lr_scheduler_args": {
            "type": "object",
            "properties": {
                "min_lr_ratio": {"type": "number", "minimum": 0, "maximum": 1},
                "num_cycles": {"type": "number", "exclusiveMinimum": 0},
            },
        },
    },
}
TRAINING_METHOD: Node = {
    "type": "object",
    "discriminator": "method",
    "cases": {
        "sft": {
            "properties": {"method": STR, "train_on_inputs": {"anyOf": [BOOL, {"enum": ["auto"]}]}}
        },
        "dpo": {
            "properties": {
                "method": STR,
                "dpo_beta": NUM,
                "rpo_alpha": {"type": "number", "minimum": 0},
                "dpo_normalize_logratios_by_length": BOOL,
                "dpo_reference_free": BOOL,
                "simpo_gamma": {"type": "number", "minimum": 0},
            }
        },
    },
}
TRAINING_TYPE: Node = {
    "type": "object",
    "discriminator": "type",
    "cases": {
        "Lora": {
            "required": ["lora_r", "lora_alpha"],
            "properties": {
                "type": STR,
                "lora_r": {"type": "integer", "minimum": 1},
                "lora_alpha": {"type": "integer", "minimum": 1},  # an integer (spec, SDK)
                "lora_dropout": {"type": "number", "minimum": 0, "maximum": 0.999999},
                "lora_trainable_modules": STR,
            },
        },
        "Full": {"properties": {"type": STR}},
    },
}
CREATE: Node = {
    "type": "object",
    "required": ["training_file"],
    "properties": {
        "training_file": STR,
        "validation_file": STR,
        "model": STR,
        "packing": BOOL,
        "max_seq_length": INT,
        "n_epochs": {"type": "integer", "minimum": 1},
        "n_checkpoints": {"type": "integer", "minimum": 1},
        "n_evals": {"type": "integer", "minimum": 0},
        "batch_size": {"anyOf": [{"type": "integer", "minimum": 1}, {"enum": ["max"]}]},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "lr_scheduler": _SCHEDULER,
        "warmup_ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "max_grad_norm": {"type": "number", "minimum": 0},
        "weight_decay": {"type": "number", "minimum": 0},
        "random_seed": nullable(INT),
        "suffix": {"type": "string", "maxLength": 40},
        "train_on_inputs": {"anyOf": [BOOL, {"enum": ["auto"]}]},
        "training_method": TRAINING_METHOD,
        "training_type": nullable(TRAINING_TYPE),
        "multimodal_params": {"type": "object", "properties": {"train_vision": BOOL}},
        "from_checkpoint": STR,
        "from_hf_model": STR,
        "hf_model_revision": STR,
        "hf_api_token": STR,
        "hf_output_repo_name": STR,
        # the spec names the W&B key wandb_api_key; the SDK sends wandb_key: both are taken
        "wandb_api_key": STR,
        "wandb_key": STR,
        "wandb_base_url": STR,
        "wandb_project_name": STR,
        "wandb_name": STR,
        "wandb_entity": STR,
        # sent by the SDK, absent from the spec snapshot
        "gradient_accumulation_steps": {"type": "integer", "minimum": 0},
        "early_stopping_enabled": BOOL,
        "early_stopping_patience": {"type": "integer", "minimum": 1},
        "early_stopping_min_delta": {"type": "number", "minimum": 0},
        "early_stopping_warmup_evals": {"type": "integer", "minimum": 0},
    },
}
ESTIMATE: Node = {
    "type": "object",
    "required": ["training_file"],
    "properties": {
        "training_file": STR,
        "validation_file": STR,
        "model": STR,
        "n_epochs": {"type": "integer", "minimum": 1},
        "n_evals": {"type": "integer", "minimum": 0},
        "training_method": TRAINING_METHOD,
        "training_type": nullable(TRAINING_TYPE),
        "from_checkpoint": STR,
    },
}


def _ready_file(emu: Emulator, file_id: str, param: str) -> Row | Response:
    row = emu.store.get(FILE, file_id, NAME)
    if row is None:
        return file_not_found(file_id, param)
    status = processing_status(emu, row)
    if status != "COMPLETED":
        return error(
            400,
            f"{param}: file {file_id} is not ready (processing_status {status})",
            param=param,
            code="file_not_processed",
        )
    return row


def checkpoint_model(emu: Emulator, from_checkpoint: str) -> str | None:
    """The base model of the job a ``from_checkpoint`` (job id or output name, ``:STEP``
    or not) names; None when there is no such job."""
    parent = _parent(emu, from_checkpoint)
    return str(parent.data["job"]["model"]) if parent is not None else None


def _parent(emu: Emulator, from_checkpoint: str) -> Row | None:
    source = from_checkpoint.split(":")[0]
    return emu.store.get(JOB, source, NAME) or next(
        (r for r in emu.store.all(JOB, NAME) if r.data["job"]["model_output_name"] == source),
        None,
    )


def _resolve(emu: Emulator, body: dict[str, Any]) -> dict[str, Any] | Response:
    """Defaults filled and limits checked: the job's public fields, or a 400."""
    model = body.get("model") or None
    if model is None:
        source = str(body.get("from_checkpoint") or "").split(":")[0]
        if not source:
            return error(
                400, "model: is required", param="model", code="missing_required_parameter"
            )
        model = checkpoint_model(emu, source)
        if model is None:
            return error(400, f"from_checkpoint: {source} not found", param="from_checkpoint")
    if model not in MODELS:
        return error(
            400,
            f"model: {model} is not available for fine-tuning "
            "(see GET /fine-tunes/models/supported)",
            param="model",
        )
    lim = limits(model)
    method = dict(body.get("training_method") or {"method": "sft"})
    if method["method"] == "sft":
        method.setdefault("train_on_inputs", body.get("train_on_inputs", "auto"))
    else:
        method = {
            "dpo_beta": 0.1,
            "rpo_alpha": 0.0,
            "dpo_normalize_logratios_by_length": False,
            "dpo_reference_free": False,
            "simpo_gamma": 0.0,
            **method,
        }
    dpo = method["method"] == "dpo"
    ttype = body.get("training_type")
    parent = _parent(emu, str(body.get("from_checkpoint") or ""))
    if ttype is None and parent is not None:
        ttype = parent.data["job"]["training_type"]  # inherited from the checkpoint's job
    if ttype is None:
        rank = lim["lora_training"]["default_rank"]
        ttype = {"type": "Lora", "lora_r": rank, "lora_alpha": 2 * rank}
    ttype = dict(ttype)
    if ttype["type"] == "Lora":
        ttype.setdefault("lora_dropout", 0.0)
        ttype.setdefault("lora_trainable_modules", "all-linear")
        if ttype["lora_r"] > lim["lora_training"]["max_rank"]:
            return error(
                400,
                f"training_type.lora_r: at most {lim['lora_training']['max_rank']}",
                param="training_type.lora_r",
            )
        bounds = lim["lora_training"]
    elif lim["full_training"] is None:
        return error(400, f"full fine-tuning is not supported for {model}", param="training_type")
    else:
        bounds = lim["full_training"]
    top = bounds["max_batch_size_dpo" if dpo else "max_batch_size"]
    batch = body.get("batch_size", "max")
    batch = top if batch == "max" else batch
    if not bounds["min_batch_size"] <= batch <= top:
        return error(
            400,
            f"batch_size: must be between {bounds['min_batch_size']} and {top}",
            param="batch_size",
        )
    n_epochs, n_evals = body.get("n_epochs", 1), body.get("n_evals", 0)
    n_checkpoints = body.get("n_checkpoints", 1)
    lr = body.get("learning_rate", 1e-5)
    seq = body.get("max_seq_length", lim["max_seq_length_dpo" if dpo else "max_seq_length_sft"])
    for name, value, low, high in (
        ("n_epochs", n_epochs, 1, lim["max_num_epochs"]),
        ("n_evals", n_evals, 0, lim["max_num_evals"]),
        ("n_checkpoints", n_checkpoints, 1, lim["max_num_checkpoints"]),
        ("learning_rate", lr, lim["min_learning_rate"], lim["max_learning_rate"]),
        (
            "max_seq_length",
            seq,
            lim["min_max_seq_length"],
            lim["max_seq_length_dpo" if dpo else "max_seq_length_sft"],
        ),
    ):
        if not low <= value <= high:
            return error(400, f"{name}: must be between {low} and {high}", param=name)
    if (body.get("multimodal_params") or {}).get("train_vision") and not lim["supports_vision"]:
        return error(
            400, f"multimodal_params.train_vision: {model} is not a vision model", param="model"
        )
    if n_evals and not body.get("validation_file"):
        return error(400, "n_evals: evaluations need a validation_file", param="n_evals")
    scheduler = body.get("lr_scheduler") or {
        "lr_scheduler_type": "linear",
        "lr_scheduler_args": {"min_lr_ratio": 0.0},
    }
    args = {"min_lr_ratio": 0.0, **(scheduler.get("lr_scheduler_args") or {})}
    if scheduler["lr_scheduler_type"] == "cosine":
        args.setdefault("num_cycles", 0.5)
    job: dict[str, Any] = {
        "model": model,
        "n_epochs": n_epochs,
        "n_evals": n_evals,
        "n_checkpoints": n_checkpoints,
        "batch_size": batch,
        "learning_rate": lr,
        "lr_scheduler": {
            "lr_scheduler_type": scheduler["lr_scheduler_type"],
            "lr_scheduler_args": args,
        },
        "warmup_ratio": body.get("warmup_ratio", 0.0),
        "max_grad_norm": body.get("max_grad_norm", 1.0),
        "weight_decay": body.get("weight_decay", 0.0),
        "random_seed": body.get("random_seed"),
        "packing": body.get("packing", True),
        "max_seq_length": seq,
        "training_method": method,
        "training_type": ttype,
        "train_on_inputs": method.get("train_on_inputs", "auto"),
        "wandb_project_name": body.get("wandb_project_name", "together"),
        "user_id": USER_ID,
        "owner_address": OWNER_ADDRESS,
        "queue_depth": 0,
    }
    for name in (
        "suffix",
        "from_checkpoint",
        "from_hf_model",
        "hf_model_revision",
        "wandb_name",
        "multimodal_params",
        "hf_output_repo_name",
        "gradient_accumulation_steps",
        "early_stopping_enabled",
        "early_stopping_patience",
    ):
        if body.get(name) is not None:
            job[name] = body[name]
    return job


def _problems(body: dict[str, Any]) -> list[Problem]:
    """Every top-level field's first problem against the schema (not only the body's)."""
    props: dict[str, Node] = CREATE["properties"]
    found = [Problem((k,), "missing", "is required") for k in CREATE["required"] if k not in body]
    for key, value in body.items():
        sub = props.get(key)
        if sub is None:
            found.append(Problem((key,), "extra", "is not a known field"))
        elif (problem := check(value, sub, (key,))) is not None:
            found.append(problem)
    return found


# what the service refuses in combination (the SDK checks the same before it sends)
_EXCLUSIVE: tuple[tuple[str, str, str], ...] = (
    (
        "model",
        "from_checkpoint",
        "give a model or a checkpoint to start from, not both: a job from a checkpoint "
        "takes the checkpoint's model",
    ),
    (
        "from_hf_model",
        "from_checkpoint",
        "give a Hugging Face model or a checkpoint to start from, not both",
    ),
)


def _violations(body: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(p.param, p.message) for p in _problems(body)]
    for one, other, message in _EXCLUSIVE:
        if body.get(one) and body.get(other):
            out.append((one, message))
    if body.get("from_hf_model") and not body.get("model"):
        out.append(("model", "a job from a Hugging Face model needs its base model"))
    method = body.get("training_method")
    if isinstance(method, dict) and method.get("method") != "sft" and "train_on_inputs" in body:
        out.append(("train_on_inputs", "only for SFT training"))
    return out


def create(emu: Emulator, body: dict[str, Any]) -> Row | Response:
    """Check and record a new job (its whole future is planned here)."""
    if violations := _violations(body):
        return validation_error(violations)
    files = job_files(body, lambda file_id, param: _ready_file(emu, file_id, param))
    if isinstance(files, Response):
        return files
    train, valid = files
    job = _resolve(emu, body)
    if isinstance(job, Response):
        return job
    job_id = f"ft-{new_uuid()}"
    data_tokens, lines = int(train.data["tokens"]), max(1, int(train.data["lines"]))
    eval_tokens = int(valid.data["tokens"]) if valid else 0
    token_count = data_tokens * job["n_epochs"]
    full = job["training_type"]["type"] == "Full"
    dpo = job["training_method"]["method"] == "dpo"
    rate = price_per_million(job["model"], full=full, dpo=dpo)
    price = (token_count + eval_tokens * job["n_evals"]) * rate / 1e6
    steps = max(1, math.ceil(lines / job["batch_size"])) * job["n_epochs"]
    name = output_name(job["model"], job.get("suffix"), job_id)
    job.update(
        training_file=train.id,
        model_output_name=name,
        model_output_path=f"s3://together-emulator/finetune/{job_id}/{name}/ft-output",
        token_count=token_count,
        total_price=round(price * 100),
        param_count=int(MODELS[job["model"]] * 1e9),
        trainingfile_numlines=lines,
        trainingfile_size=int(train.data["bytes"]),
        eval_steps=(steps // job["n_evals"]) if job["n_evals"] else 0,
        job_id=job_id,
    )
    if valid is not None:
        job["validation_file"] = valid.id
    phases = [*PHASES, *PHASES_AFTER]
    phases[2] = ("running", train_seconds(token_count))
    life = new_life(phases)
    fmt = train.data.get("format")
    if dpo != (fmt == "PREFERENCE"):
        wanted = "preference (DPO)" if dpo else "a non-preference"
        plan_failure(
            life,
            KIND,
            retryable=False,
            message=f"training file {train.id} is {fmt} data; {wanted} format is "
            f"required for {job['training_method']['method']}",
        )
    hay = haystack(
        job.get("suffix"), job["model"], job_id, train.data["filename"], job.get("wandb_name")
    )
    plan_fault_failure(emu, KIND, life, hay)
    data = {
        "job": job,
        "life": life,
        "haystack": hay,
        "total_steps": steps,
        "checkpoint_steps": steps_between(steps, job["n_checkpoints"]),
        "output_path": job["model_output_path"],
        "param_count": job["param_count"],
        "lora": not full,
    }
    return emu.store.insert(JOB, NAME, job_id, emu.now(), data)
