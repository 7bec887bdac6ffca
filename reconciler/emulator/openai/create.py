"""The OpenAI create-job body: its schema, hyperparameter resolution, and the service's
checks (data problems fail the job while validating files) that turn it into a job."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import Response

from ..core import FILE, JOB, Emulator, digest, haystack, job_files, plan_fault_failure, token
from ..lifecycle import new_life, plan_failure
from ..schema import STR, Node, check, nullable
from ..store import Row
from .host import Host
from .jobs import MIN_EXAMPLES, OPENAI, fine_tuned_model, tuned_jobs


def _auto(node: Node) -> Node:
    return {"anyOf": [{"enum": ["auto"]}, node]}


EPOCHS = _auto({"type": "integer", "minimum": 1, "maximum": 50})
BATCH = _auto({"type": "integer", "minimum": 1, "maximum": 256})
LR = _auto({"type": "number", "exclusiveMinimum": 0})
HP_SFT: Node = {
    "type": "object",
    "properties": {"n_epochs": EPOCHS, "batch_size": BATCH, "learning_rate_multiplier": LR},
}
HP_DPO: Node = {
    "type": "object",
    "properties": {
        **HP_SFT["properties"],
        "beta": _auto({"type": "number", "exclusiveMinimum": 0, "maximum": 2}),
    },
}
HP_RFT: Node = {
    "type": "object",
    "properties": {
        **HP_SFT["properties"],
        "reasoning_effort": {"enum": ["default", "low", "medium", "high"]},
        "compute_multiplier": _auto({"type": "number", "exclusiveMinimum": 1e-5, "maximum": 10}),
        "eval_interval": _auto({"type": "integer", "minimum": 1}),
        "eval_samples": _auto({"type": "integer", "minimum": 1}),
    },
}
METHOD: Node = {
    "type": "object",
    "discriminator": "type",
    "cases": {
        "supervised": {
            "properties": {
                "type": STR,
                "supervised": {"type": "object", "properties": {"hyperparameters": HP_SFT}},
            }
        },
        "dpo": {
            "properties": {
                "type": STR,
                "dpo": {"type": "object", "properties": {"hyperparameters": HP_DPO}},
            }
        },
        "reinforcement": {
            "required": ["reinforcement"],
            "properties": {
                "type": STR,
                "reinforcement": {
                    "type": "object",
                    "required": ["grader"],
                    "properties": {"grader": {"type": "object"}, "hyperparameters": HP_RFT},
                },
            },
        },
    },
}
WANDB: Node = {
    "type": "object",
    "required": ["project"],
    "properties": {
        "project": STR,
        "name": nullable(STR),
        "entity": nullable(STR),
        "tags": {"type": "array", "items": STR},
    },
}
CREATE: Node = {
    "type": "object",
    "required": ["model", "training_file"],
    "properties": {
        "model": STR,
        "training_file": STR,
        "validation_file": nullable(STR),
        "suffix": nullable({"type": "string", "minLength": 1, "maxLength": 64}),
        "seed": nullable({"type": "integer", "minimum": 0, "maximum": 2147483647}),
        "metadata": nullable(
            {"type": "object", "maxProperties": 16, "values": {"type": "string", "maxLength": 512}}
        ),
        "integrations": nullable(
            {
                "type": "array",
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "required": ["type", "wandb"],
                    "properties": {"type": {"enum": ["wandb"]}, "wandb": WANDB},
                },
            }
        ),
        "hyperparameters": HP_SFT,
        "method": METHOD,
    },
}


def schema_for(host: Host, dated: bool = False) -> Node:
    """OpenAI's create schema within the host's rules (suffix length, metadata, methods,
    hyperparameters, fields of its own and of its dated surface)."""
    if host is OPENAI:
        return CREATE
    props = dict(CREATE["properties"])
    props["suffix"] = nullable({"type": "string", "minLength": 1, "maxLength": host.max_suffix})
    if not host.metadata:
        del props["metadata"]
    sft = {"type": "object", "properties": {**HP_SFT["properties"], **host.extra_hyperparameters}}
    cases = dict(METHOD["cases"])
    cases["supervised"] = {
        "properties": {
            "type": STR,
            "supervised": {"type": "object", "properties": {"hyperparameters": sft}},
        }
    }
    props["hyperparameters"] = sft
    props["method"] = {**METHOD, "cases": {k: v for k, v in cases.items() if k in host.methods}}
    props.update(host.extra_fields)
    if dated:
        props.update(host.dated_fields)
    return {**CREATE, "properties": props}


def resolved(method: dict[str, Any], lines: int) -> dict[str, Any]:
    """The method with every "auto" replaced by what the service picks."""
    kind = method["type"]
    hp = dict((method.get(kind) or {}).get("hyperparameters") or {})
    picks: dict[str, Any] = {
        "n_epochs": 3 if lines >= 100 else 4,
        "batch_size": max(1, min(256, lines // 100)),
        "learning_rate_multiplier": 1.8 if kind == "supervised" else 1.0,
    }
    if kind == "dpo":
        picks["beta"] = 0.1
    if kind == "reinforcement":
        picks.update(compute_multiplier=1.0, eval_interval=1, eval_samples=1)
        hp.setdefault("reasoning_effort", "default")
    for key, pick in picks.items():
        if hp.get(key, "auto") == "auto":
            hp[key] = pick
    out = {"type": kind, kind: {**(method.get(kind) or {}), "hyperparameters": hp}}
    return out


def _file_for(emu: Emulator, file_id: str, param: str, host: Host) -> Row | Response:
    error = host.error
    row = emu.store.get(FILE, file_id, host.name)
    if row is None:
        return error(400, f"invalid {param}: {file_id}", param=param, code="invalid_file")
    if row.data["purpose"] != "fine-tune":
        return error(
            400,
            f"File {file_id} has purpose '{row.data['purpose']}'; fine-tuning "
            "needs purpose 'fine-tune'.",
            param=param,
            code="invalid_file",
        )
    return row


def fine_tunable(emu: Emulator, model: str, host: Host = OPENAI) -> bool:
    return model in host.models or any(
        r.data["fine_tuned_model"] == model for r, _ in tuned_jobs(emu, host)
    )


def create(
    emu: Emulator, body: dict[str, Any], host: Host = OPENAI, *, dated: bool = False
) -> Row | Response:
    """Check and record a new job (its whole future is planned here); ``dated``: posted
    to a surface that takes the host's ``dated_fields``."""
    error, kind = host.error, host.kind
    if (problem := check(body, schema_for(host, dated))) is not None:
        return host.problem_error(problem)
    for key in body.get("metadata") or {}:
        if len(key) > 64:
            return error(
                400, "Invalid 'metadata': keys are at most 64 characters.", param="metadata"
            )
    model = body["model"]
    if not fine_tunable(emu, model, host):
        return error(
            400,
            f"Model {model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    if body.get("hyperparameters") and body.get("method"):
        return error(
            400,
            "Specify hyperparameters in 'method', not both 'hyperparameters' and 'method'.",
            param="hyperparameters",
        )
    method = body.get("method") or {
        "type": "supervised",
        "supervised": {"hyperparameters": body.get("hyperparameters") or {}},
    }
    base = model.split(":")[1] if model.startswith("ft:") else model
    if method["type"] == "reinforcement" and base not in host.rft_models:
        return error(
            400,
            f"Model {model} does not support reinforcement fine-tuning.",
            param="model",
            code="model_not_available",
        )
    files = job_files(body, lambda file_id, param: _file_for(emu, file_id, param, host))
    if isinstance(files, Response):
        return files
    train, valid = files
    job_id = f"ftjob-{token(24)}"
    lines = max(1, int(train.data["lines"]))
    final = resolved(method, lines)
    hp = final[method["type"]]["hyperparameters"]
    epochs, batch = int(hp["n_epochs"]), int(hp["batch_size"])
    per_epoch = max(1, math.ceil(lines / batch))
    total = per_epoch * epochs
    trained = int(train.data["tokens"]) * epochs
    phases = list(host.phases)
    run = [status for status, _ in phases].index("running")
    phases[run] = ("running", float(min(3600.0, 40.0 + trained / 2000.0)))
    life = new_life(phases)
    reason = _data_problem(train, method["type"], base, host)
    if reason:
        plan_failure(life, kind, retryable=False, message=reason)
    hay = haystack(
        body.get("suffix"),
        model,
        job_id,
        train.data["filename"],
        *(body.get("metadata") or {}).values(),
    )
    plan_fault_failure(emu, kind, life, hay)
    data = {
        "model": model,
        "training_file": train.id,
        "validation_file": valid.id if valid else None,
        "suffix": body.get("suffix"),
        "metadata": body.get("metadata"),
        "integrations": body.get("integrations"),
        "seed": body["seed"] if body.get("seed") is not None else int(digest(job_id), 16) % 2**31,
        "method": {
            "type": method["type"],
            method["type"]: {
                **(method.get(method["type"]) or {}),
                "hyperparameters": {
                    k: "auto" for k in ("n_epochs", "batch_size", "learning_rate_multiplier")
                }
                | dict((method.get(method["type"]) or {}).get("hyperparameters") or {}),
            },
        },
        "method_resolved": final,
        "fine_tuned_model": fine_tuned_model(model, body.get("suffix"), job_id, host),
        "extra": {k: body[k] for k in (*host.extra_fields, *host.dated_fields) if k in body},
        "trained_tokens": trained,
        "total_steps": total,
        "checkpoint_steps": [per_epoch * e for e in range(max(1, epochs - 2), epochs + 1)],
        "life": life,
        "haystack": hay,
    }
    return emu.store.insert(JOB, host.name, job_id, emu.now(), data)


def _data_problem(train: Row, method: str, base: str, host: Host = OPENAI) -> str | None:
    """Why the training data cannot train this method, as validation reports it."""
    d = train.data
    if d.get("error"):
        return f"The training file {train.id} is not valid JSONL: {d['error']}."
    wanted = {"supervised": "CONVERSATION", "dpo": "PREFERENCE", "reinforcement": "CONVERSATION"}
    expected = "INSTRUCTION" if base in host.completion_models else wanted[method]
    if method == "supervised" and d.get("format") in host.sft_formats:
        expected = d["format"]
    if d.get("format") != expected:
        return (
            f"The training file {train.id} has {str(d.get('format')).lower()} examples; "
            f"{method} fine-tuning of {base} needs {expected.lower()} examples."
        )
    if int(d.get("lines", 0)) < MIN_EXAMPLES:
        return (
            f"Training file {train.id} has {d['lines']} example(s), but must have at least "
            f"{MIN_EXAMPLES} examples."
        )
    return None
