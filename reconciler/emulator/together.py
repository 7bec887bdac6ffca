"""Together AI under ``/together/v1`` (providers.md §3): files (``together_files``) and
fine-tune jobs: create with the server's checks and defaults, list, get, cancel
(``cancel_requested`` → ``cancelled``), delete, events, checkpoints, metrics, price
estimates and the model catalogue the SDK reads before every create."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import together_jobs as tj
from .core import (
    FILE,
    JOB,
    Emulator,
    haystack,
    job_snapshot,
    json_body,
    listed,
    new_uuid,
    plan_fault_failure,
    steps_between,
)
from .lifecycle import new_life, plan_failure, request_cancel
from .schema import check
from .store import Row
from .together_files import (
    PREFIX,
    error,
    file_routes,
    not_found,
    problem_error,
    processing_status,
    storage_routes,
)

NAME = "together"
KIND = tj.KIND
__all__ = ["KIND", "NAME", "error", "job_summary", "routes", "storage_routes"]


def routes(emu: Emulator) -> list[BaseRoute]:
    return [*file_routes(emu), *job_routes(emu)]


def _ready_file(emu: Emulator, file_id: str, param: str) -> Row | Response:
    row = emu.store.get(FILE, file_id, NAME)
    if row is None:
        return error(400, f"{param}: file {file_id} not found", param=param, code="file_not_found")
    status = processing_status(emu, row)
    if status != "COMPLETED":
        return error(
            400,
            f"{param}: file {file_id} is not ready (processing_status {status})",
            param=param,
            code="file_not_processed",
        )
    return row


def _resolve(emu: Emulator, body: dict[str, Any]) -> dict[str, Any] | Response:
    """Defaults filled and limits checked: the job's public fields, or a 400."""
    model = body.get("model") or None
    if model is None:
        source = str(body.get("from_checkpoint") or "").split(":")[0]
        if not source:
            return error(
                400, "model: is required", param="model", code="missing_required_parameter"
            )
        parent = emu.store.get(JOB, source, NAME) or next(
            (r for r in emu.store.all(JOB, NAME) if r.data["job"]["model_output_name"] == source),
            None,
        )
        if parent is None:
            return error(400, f"from_checkpoint: {source} not found", param="from_checkpoint")
        model = parent.data["job"]["model"]
    if model not in tj.MODELS:
        return error(
            400,
            f"model: {model} is not available for fine-tuning "
            "(see GET /fine-tunes/models/supported)",
            param="model",
        )
    lim = tj.limits(model)
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
        "user_id": tj.USER_ID,
        "owner_address": tj.OWNER_ADDRESS,
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


def create(emu: Emulator, body: dict[str, Any]) -> Row | Response:
    """Check and record a new job (its whole future is planned here)."""
    if (problem := check(body, tj.CREATE)) is not None:
        return problem_error(problem)
    train = _ready_file(emu, body["training_file"], "training_file")
    if isinstance(train, Response):
        return train
    valid: Row | None = None
    if body.get("validation_file"):
        found = _ready_file(emu, body["validation_file"], "validation_file")
        if isinstance(found, Response):
            return found
        valid = found
    job = _resolve(emu, body)
    if isinstance(job, Response):
        return job
    job_id = f"ft-{new_uuid()}"
    data_tokens, lines = int(train.data["tokens"]), max(1, int(train.data["lines"]))
    eval_tokens = int(valid.data["tokens"]) if valid else 0
    token_count = data_tokens * job["n_epochs"]
    full = job["training_type"]["type"] == "Full"
    dpo = job["training_method"]["method"] == "dpo"
    rate = tj.price_per_million(job["model"], full=full, dpo=dpo)
    price = (token_count + eval_tokens * job["n_evals"]) * rate / 1e6
    steps = max(1, math.ceil(lines / job["batch_size"])) * job["n_epochs"]
    name = tj.output_name(job["model"], job.get("suffix"), job_id)
    job.update(
        training_file=train.id,
        model_output_name=name,
        model_output_path=f"s3://together-emulator/finetune/{job_id}/{name}/ft-output",
        token_count=token_count,
        total_price=round(price * 100),
        param_count=int(tj.MODELS[job["model"]] * 1e9),
        trainingfile_numlines=lines,
        trainingfile_size=int(train.data["bytes"]),
        eval_steps=(steps // job["n_evals"]) if job["n_evals"] else 0,
        job_id=job_id,
    )
    if valid is not None:
        job["validation_file"] = valid.id
    phases = [*tj.PHASES, *tj.PHASES_AFTER]
    phases[2] = ("running", tj.train_seconds(token_count))
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
    if life["fail"] is None:
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


def job_summary(emu: Emulator, row: Row) -> dict[str, Any]:
    job = row.data["job"]
    return {
        "status": job_snapshot(emu, KIND, row).status,
        "model": job["model"],
        "suffix": job.get("suffix"),
        "training_file": job["training_file"],
        "fine_tuned_model": job["model_output_name"],
    }


def job_routes(emu: Emulator) -> list[BaseRoute]:
    def job_row(request: Request) -> Row | None:
        return emu.store.get(JOB, request.path_params["id"], NAME)

    async def create_job(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "the request body must be a JSON object")
        row = create(emu, body)
        if isinstance(row, Response):
            return row
        return JSONResponse(tj.view(emu, row, truncated=True))

    async def list_jobs(request: Request) -> Response:
        now = emu.now()
        rows = [r for r in emu.store.all(JOB, NAME) if listed(emu, r, now)]
        return JSONResponse({"data": [tj.view(emu, r, truncated=True) for r in rows]})

    async def get_job(request: Request) -> Response:
        row = job_row(request)
        if row is None:
            return not_found("fine-tune job", request.path_params["id"])
        return JSONResponse(tj.view(emu, row))

    async def delete_job(request: Request) -> Response:
        row = job_row(request)
        if row is None:
            return not_found("fine-tune job", request.path_params["id"])
        if not job_snapshot(emu, KIND, row).terminal:
            return error(400, f"job {row.id} is still active: cancel it first", param="id")
        emu.store.delete(JOB, row.id)
        return JSONResponse({"message": f"fine-tune job {row.id} deleted"})

    async def cancel(request: Request) -> Response:
        row = job_row(request)
        if row is None:
            return not_found("fine-tune job", request.path_params["id"])
        snap = job_snapshot(emu, KIND, row)
        if snap.terminal:
            return error(400, f"job {row.id} cannot be cancelled: it is {snap.status}", param="id")
        if row.data["life"]["cancel_at"] is None:
            request_cancel(row.data["life"], snap, emu.now())
            emu.store.update(row)
        return JSONResponse(tj.view(emu, row, truncated=True))

    async def events(request: Request) -> Response:
        row = job_row(request)
        if row is None:
            return not_found("fine-tune job", request.path_params["id"])
        return JSONResponse({"data": tj.view(emu, row)["events"]})

    async def checkpoints(request: Request) -> Response:
        row = job_row(request)
        if row is None:
            return not_found("fine-tune job", request.path_params["id"])
        return JSONResponse({"data": tj.checkpoints(emu, row)})

    async def metrics(request: Request) -> Response:
        row = job_row(request)
        if row is None:
            return not_found("fine-tune job", request.path_params["id"])
        return JSONResponse({"metrics": tj.metrics(emu, row)})

    async def estimate(request: Request) -> Response:
        body, bad = await json_body(request)
        if bad or not isinstance(body, dict):
            return error(400, bad or "the request body must be a JSON object")
        if (problem := check(body, tj.ESTIMATE)) is not None:
            return problem_error(problem)
        return _estimate(emu, body)

    async def supported(request: Request) -> Response:
        return JSONResponse({"models": sorted(tj.MODELS)})

    async def model_limits(request: Request) -> Response:
        model = request.query_params.get("model_name")
        if not model:
            return error(400, "model_name: is required", param="model_name")
        if model not in tj.MODELS:
            return JSONResponse({"message": f"model {model} not found"}, status_code=404)
        return JSONResponse(tj.limits(model))

    return [
        Route(f"{PREFIX}/fine-tunes", create_job, methods=["POST"]),
        Route(f"{PREFIX}/fine-tunes", list_jobs, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/estimate-price", estimate, methods=["POST"]),
        Route(f"{PREFIX}/fine-tunes/models/supported", supported, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/models/limits", model_limits, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}", get_job, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}", delete_job, methods=["DELETE"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/cancel", cancel, methods=["POST"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/events", events, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/checkpoints", checkpoints, methods=["GET"]),
        Route(f"{PREFIX}/fine-tunes/{{id}}/metrics", metrics, methods=["GET"]),
    ]


def _estimate(emu: Emulator, body: dict[str, Any]) -> Response:
    train = emu.store.get(FILE, body["training_file"], NAME)
    if train is None:
        return error(
            400,
            f"training_file: file {body['training_file']} not found",
            param="training_file",
            code="file_not_found",
        )
    status = processing_status(emu, train)
    if status != "COMPLETED":
        reason = "train_file_invalid" if status == "INVALID_FORMAT" else "train_file_not_validated"
        return JSONResponse({"estimation_available": False, "unavailable_reason": reason})
    valid = (
        emu.store.get(FILE, body["validation_file"], NAME) if body.get("validation_file") else None
    )
    epochs, evals = body.get("n_epochs", 1), body.get("n_evals", 0)
    train_tokens = int(train.data["tokens"]) * epochs
    eval_tokens = (int(valid.data["tokens"]) if valid else 0) * evals
    ttype = body.get("training_type") or {}
    method = body.get("training_method") or {}
    rate = tj.price_per_million(
        str(body.get("model") or ""),
        full=ttype.get("type") == "Full",
        dpo=method.get("method") == "dpo",
    )
    return JSONResponse(
        {
            "estimation_available": True,
            "estimated_total_price": (train_tokens + eval_tokens) * rate / 1e6,
            "allowed_to_proceed": True,
            "user_limit": 1000.0,
            "estimated_train_token_count": float(train_tokens),
            "estimated_eval_token_count": float(eval_tokens),
        }
    )
