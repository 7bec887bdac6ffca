"""The Fireworks create-job bodies (SFT flat, DPO with ``trainingConfig`` and
``lossConfig``), the server's checks and defaults, and the client-chosen id: a second
create with an id in use (a deleted job's too) is ALREADY_EXISTS."""

from __future__ import annotations

import math
import re
from typing import Any

from starlette.responses import Response

from ..core import JOB, Emulator, haystack, new_uuid, plan_fault_failure
from ..lifecycle import plan_failure
from ..schema import BOOL, INT, NUM, STR, Node, check
from ..store import Row
from .dialect import NAME, error, problem_error
from .files import ready_dataset
from .jobs import KIND, MODELS, life_for, output_of, price_per_million, training

ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
SFT = "supervisedFineTuningJobs"
DPO = "dpoJobs"
MAX_LORA_RANK = 32
_TRAINING: dict[str, Node] = {
    "baseModel": STR,
    "warmStartFrom": STR,
    "outputModel": STR,
    "epochs": {"type": "integer", "minimum": 1},
    "learningRate": {"type": "number", "exclusiveMinimum": 0},
    "loraRank": {"type": "integer", "minimum": 1},
    "maxContextLength": {"type": "integer", "minimum": 1},
    "batchSizeSamples": {"type": "integer", "minimum": 1},
    "learningRateWarmupSteps": {"type": "integer", "minimum": 0},
    "optimizerWeightDecay": {"type": "number", "minimum": 0},
    "gradientAccumulationSteps": INT,
    "batchSize": INT,
    "jinjaTemplate": STR,
}
_COMMON: dict[str, Node] = {
    "dataset": STR,
    "displayName": STR,
    "wandbConfig": {"type": "object"},
    "awsS3Config": {"type": "object"},
    "azureBlobStorageConfig": {"type": "object"},
    "purpose": {"enum": ["PURPOSE_UNSPECIFIED", "PURPOSE_PILOT"]},
}
_SCHEDULER: Node = {"type": "object", "maxProperties": 1, "extra": True}
SFT_BODY: Node = {
    "type": "object",
    "required": ["dataset"],
    "extra": True,  # read-only fields sent back are ignored, as the gateway does
    "properties": {
        **_COMMON,
        **_TRAINING,
        "evaluationDataset": STR,
        "evalAutoCarveout": BOOL,
        "isTurbo": BOOL,
        "earlyStop": BOOL,
        "lrScheduler": _SCHEDULER,
    },
}
DPO_BODY: Node = {
    "type": "object",
    "required": ["dataset"],
    "extra": True,
    "properties": {
        **_COMMON,
        "trainingConfig": {
            "type": "object",
            "properties": {**_TRAINING, "loraAlpha": INT, "loraDropout": NUM},
            "extra": True,
        },
        "lossConfig": {
            "type": "object",
            "properties": {
                "method": {"enum": ["METHOD_UNSPECIFIED", "GRPO", "DAPO", "DPO", "ORPO"]},
                "klBeta": NUM,
                "dpo": {"type": "object", "properties": {"beta": NUM}, "extra": True},
            },
            "extra": True,
        },
    },
}
_READ_ONLY = frozenset(
    {"name", "state", "status", "createTime", "updateTime", "completedTime", "createdBy"}
) | {"jobProgress", "estimatedCost", "trainerLogsSignedUrl"}


def _model(emu: Emulator, account: str, config: dict[str, Any]) -> str | Response:
    """The base model the job trains: named, or the one under ``warmStartFrom``."""
    base, warm = config.get("baseModel"), config.get("warmStartFrom")
    if bool(base) == bool(warm):
        return error(400, "exactly one of baseModel and warmStartFrom must be set")
    if base:
        if base not in MODELS:
            return error(400, f"baseModel: {base} is not a model Fireworks fine-tunes")
        return str(base)
    for row in emu.store.all(JOB, NAME):
        if output_of(row) == warm:
            return str(row.data["base_model"])
    return error(404, f"warmStartFrom: model {warm} not found")


def _checked(
    emu: Emulator, account: str, collection: str, body: dict[str, Any]
) -> tuple[dict[str, Any], Row, str] | Response:
    """(the job's stored fields, its dataset, its base model), or the refusal."""
    if (problem := check(body, SFT_BODY if collection == SFT else DPO_BODY)) is not None:
        return problem_error(problem)
    job = {k: v for k, v in body.items() if k not in _READ_ONLY}
    if collection == DPO:
        job["trainingConfig"] = dict(job.get("trainingConfig") or {})
        job["lossConfig"] = job.get("lossConfig") or {"method": "DPO", "dpo": {"beta": 0.1}}
    config = training(job)
    model = _model(emu, account, config)
    if isinstance(model, Response):
        return model
    dataset = ready_dataset(emu, str(job["dataset"]), "dataset")
    if isinstance(dataset, Response):
        return dataset
    if job.get("evaluationDataset"):
        evaluation = ready_dataset(emu, str(job["evaluationDataset"]), "evaluationDataset")
        if isinstance(evaluation, Response):
            return evaluation
    rank = config.setdefault("loraRank", 8)
    if rank > MAX_LORA_RANK or rank & (rank - 1):
        return error(400, f"loraRank: must be a power of 2 up to {MAX_LORA_RANK}, not {rank}")
    for field in ("batchSize", "gradientAccumulationSteps"):
        if config.get(field):  # Training V2 refuses the deprecated fields
            return error(400, f"{field}: not supported by Training V2 models; leave it unset")
    config.setdefault("epochs", 1)
    config.setdefault("learningRate", 1e-4)
    config.setdefault("maxContextLength", 32768)
    config.setdefault("batchSizeSamples", 32 if collection == SFT else 4)
    return job, dataset, model


def estimate(emu: Emulator, account: str, body: dict[str, Any]) -> float | Response:
    """What ``:estimateCost`` answers in dollars for an SFT body."""
    checked = _checked(emu, account, SFT, {**body})
    if isinstance(checked, Response):
        return checked
    job, dataset, model = checked
    tokens = int(dataset.data["tokens"]) * int(training(job)["epochs"])
    return tokens * price_per_million(model) / 1e6


def create(
    emu: Emulator, account: str, collection: str, body: dict[str, Any], job_id: str | None
) -> Row | Response:
    """Check and record a new job under ``job_id`` (a random one when not given)."""
    job_id = job_id or f"j{new_uuid().replace('-', '')[:20]}"
    if not ID.match(job_id):
        return error(400, f"invalid job id {job_id!r}: 1-63 of a-z, 0-9, '-', from a letter")
    name = f"accounts/{account}/{collection}/{job_id}"
    if emu.store.get(JOB, name) is not None:  # checked first: a retried create is told so
        return error(409, f"job {name} already exists")
    checked = _checked(emu, account, collection, body)
    if isinstance(checked, Response):
        return checked
    job, dataset, model = checked
    config = training(job)
    config.setdefault("outputModel", job_id)
    output = f"accounts/{account}/models/{config['outputModel']}"
    if not ID.match(str(config["outputModel"])):
        return error(400, f"invalid outputModel {config['outputModel']!r}")
    if any(output_of(row) == output for row in emu.store.all(JOB, NAME)):
        return error(409, f"model {output} already exists")
    tokens = int(dataset.data["tokens"]) * int(config["epochs"])
    life = life_for(tokens)
    fmt, dpo = dataset.data.get("format"), collection == DPO
    if dpo != (fmt == "PREFERENCE"):
        wanted = "preference pairs (input, preferred_output)" if dpo else "chat (messages)"
        plan_failure(
            life,
            KIND,
            retryable=False,
            message=f"dataset {dataset.id} is {fmt} data; this job needs {wanted}",
        )
    hay = haystack(job_id, model, job.get("displayName"), dataset.data["filename"])
    plan_fault_failure(emu, KIND, life, hay)
    data = {
        "job": job,
        "life": life,
        "haystack": hay,
        "base_model": model,
        "tokens": tokens,
        "cost_usd": round(tokens * price_per_million(model) / 1e6, 6),
        "steps": max(1, math.ceil(int(dataset.data["lines"]) / int(config["batchSizeSamples"]))),
    }
    return emu.store.insert(JOB, NAME, name, emu.now(), data)
