"""Together AI's create body (``POST /fine-tunes``, providers.md §3.4), pure: what a
request sends, and what Together cannot express. Each choice matches what the official
SDK (3.1.1, ``create_finetune_request``) sends for the same settings; the parity test
compares the two bodies field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ... import tags
from ...model import CreateRequest
from ..wire import merge as _merge

LR_SCHEDULERS: tuple[str, ...] = ("linear", "cosine")
# Options that would override a first-class field; `suffix` carries the crash-safety tag.
RESERVED_OPTIONS: tuple[str, ...] = ("suffix", "model", "training_file", "validation_file")
# Options a spec key now says, with the key to use instead (one way to say one thing).
SPEC_KEY_OPTIONS: dict[str, str] = {
    "wandb_key": "wandb.api_key",
    "wandb_base_url": "wandb.base_url",
    "wandb_project_name": "wandb.project",
    "wandb_name": "wandb.name",
    "wandb_entity": "wandb.entity",
    "multimodal_params": "train_vision",
    "from_hf_model": "huggingface.model",
    "hf_model_revision": "huggingface.revision",
    "hf_output_repo_name": "huggingface.output_repo",
    "hf_api_token": "huggingface.token",
}
# Older spellings still read from options: the spec's name for the W&B key (the SDK and
# the service take ``wandb_key``), and the deprecated top-level ``train_on_inputs``.
_OPTION_ALIASES: dict[str, str] = {"wandb_api_key": "wandb_key"}

TAG_LENGTH = tags.LENGTH  # 18: "rc" + namespace code + "-" + 11 hex
MAX_SUFFIX = 40  # the SDK's documented limit (the spec states none)
# The user's suffix gets "-<tag>" appended, so it may use what is left of the 40.
MAX_USER_SUFFIX = MAX_SUFFIX - 1 - TAG_LENGTH  # 21

_HP_TO_WIRE: dict[str, str] = {
    "epochs": "n_epochs",
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "warmup_ratio": "warmup_ratio",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "max_seq_length": "max_seq_length",
    "n_checkpoints": "n_checkpoints",
    "n_evals": "n_evals",
    "seed": "random_seed",
}
_DPO_TO_WIRE: dict[str, str] = {
    "beta": "dpo_beta",
    "rpo_alpha": "rpo_alpha",
    "simpo_gamma": "simpo_gamma",
    "normalize_logratios_by_length": "dpo_normalize_logratios_by_length",
    "reference_free": "dpo_reference_free",
}
_WANDB_TO_WIRE: dict[str, str] = {
    "api_key": "wandb_key",  # the spec says wandb_api_key; the SDK (and the service) wandb_key
    "base_url": "wandb_base_url",
    "project": "wandb_project_name",
    "name": "wandb_name",
    "entity": "wandb_entity",
}
_HF_TO_WIRE: dict[str, str] = {
    "model": "from_hf_model",
    "revision": "hf_model_revision",
    "output_repo": "hf_output_repo_name",
    "token": "hf_api_token",
}
# The project's hyperparameter names (DESIGN §2) this driver knows how to send.
HYPERPARAMETERS: tuple[str, ...] = (*_HP_TO_WIRE, "lr_scheduler", "min_lr_ratio", "num_cycles")
LORA_KEYS: tuple[str, ...] = ("r", "alpha", "dropout", "trainable_modules")
DPO_KEYS: tuple[str, ...] = tuple(_DPO_TO_WIRE)
# what POST /fine-tunes/estimate-price accepts of a create body
_ESTIMATE_KEYS = frozenset(("training_file", "validation_file", "model", "n_epochs", "n_evals"))
_ESTIMATE_KEYS |= {"training_method", "training_type", "from_checkpoint"}


def compose_suffix(user_suffix: str | None, tag: str) -> str:
    """The wire ``suffix``: the tag alone, or ``<user suffix>-<tag>`` (user part ≤ 21 chars)."""
    return tag if not user_suffix else f"{user_suffix}-{tag}"


def _lr_scheduler(hp: Mapping[str, Any]) -> dict[str, Any]:
    # no scheduler set: the SDK's default, which it always sends (cosine, 0.0, 0.5)
    kind = str(hp.get("lr_scheduler") or "cosine").lower()
    min_lr, cycles = hp.get("min_lr_ratio"), hp.get("num_cycles")
    args: dict[str, Any] = {"min_lr_ratio": 0.0 if min_lr is None else min_lr}
    if kind == "cosine":
        args["num_cycles"] = 0.5 if cycles is None else cycles
    return {"lr_scheduler_type": kind, "lr_scheduler_args": args}


def _train_on_inputs(req: CreateRequest) -> Any:
    if req.train_on_inputs is not None:
        return req.train_on_inputs
    legacy = req.options.get("train_on_inputs")  # the deprecated top-level field
    return "auto" if legacy is None else legacy  # "auto": the spec's default, the SDK's too


def _training_method(req: CreateRequest) -> dict[str, Any]:
    if req.method == "sft":
        return {"method": "sft", "train_on_inputs": _train_on_inputs(req)}
    if req.method != "dpo":
        raise ValueError(f"together: unsupported method {req.method!r} (sft or dpo)")
    dpo = req.dpo or {}
    method: dict[str, Any] = {"method": "dpo"}
    for ours, theirs in _DPO_TO_WIRE.items():
        if dpo.get(ours) is not None:
            method[theirs] = dpo[ours]
    gamma = dpo.get("simpo_gamma")
    if isinstance(gamma, int | float) and gamma > 0:
        # SimPO is reference-free with length normalisation (the SDK forces both)
        method.setdefault("dpo_reference_free", True)
        method.setdefault("dpo_normalize_logratios_by_length", True)
    return method


def _whole(value: Any) -> Any:
    """32.0 as 32: the wire's lora_alpha is an integer (spec and SDK)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _training_type(lora: Mapping[str, Any] | bool | None) -> dict[str, Any] | None:
    if lora is False:
        return {"type": "Full"}
    if lora is None or lora is True or not lora:
        # omitted = the server's default LoRA (or the parent's type with from_checkpoint),
        # as the SDK leaves it when `lora` is not given
        return None
    out: dict[str, Any] = {"type": "Lora"}
    r, alpha = lora.get("r"), lora.get("alpha")
    if r is not None:
        out["lora_r"] = r
        if alpha is None and isinstance(r, int):
            alpha = 2 * r  # the SDK's default; the spec requires lora_alpha with lora_r
    if alpha is not None:
        out["lora_alpha"] = _whole(alpha)
    if lora.get("dropout") is not None:
        out["lora_dropout"] = lora["dropout"]
    modules = lora.get("trainable_modules")
    if modules is not None:
        # the wire field is one string; a list is sent comma-separated
        out["lora_trainable_modules"] = (
            modules if isinstance(modules, str) else ",".join(str(m) for m in modules)
        )
    return out


def _flat(block: Mapping[str, Any] | None, names: Mapping[str, str]) -> dict[str, Any]:
    given = block or {}
    return {wire: given[ours] for ours, wire in names.items() if given.get(ours)}


def from_checkpoint(req: CreateRequest) -> str | None:
    """``from_checkpoint`` for ``from:``: the upstream's result, ``:STEP`` for a step."""
    if not req.from_output:
        return None
    return f"{req.from_output}:{req.from_step}" if req.from_step else req.from_output


def create_payload(req: CreateRequest) -> dict[str, Any]:
    """The JSON body of ``POST /fine-tunes`` for a request; only keys that are set.

    With ``from_checkpoint`` there is no ``model``: the job inherits the checkpoint's, and
    the SDK refuses the two together (the spec's ``required: model`` notwithstanding).
    """
    hp = req.hyperparameters
    body: dict[str, Any] = {"training_file": req.training_file_id, "model": req.model}
    if req.validation_file_id:
        body["validation_file"] = req.validation_file_id
    for ours, theirs in _HP_TO_WIRE.items():
        if hp.get(ours) is not None:
            body[theirs] = hp[ours]
    body["lr_scheduler"] = _lr_scheduler(hp)
    body["training_method"] = _training_method(req)
    if (training_type := _training_type(req.lora)) is not None:
        body["training_type"] = training_type
    if req.train_vision is not None:
        body["multimodal_params"] = {"train_vision": req.train_vision}
    if (checkpoint := from_checkpoint(req)) is not None:
        body["from_checkpoint"] = checkpoint
    body |= _flat(req.huggingface, _HF_TO_WIRE) | _flat(req.wandb, _WANDB_TO_WIRE)
    body["suffix"] = compose_suffix(req.suffix, req.tag)
    options = {_OPTION_ALIASES.get(k, k): v for k, v in req.options.items()}
    options.pop("train_on_inputs", None)  # sent inside training_method (see above)
    body = _merge(body, options)
    if body.get("from_checkpoint"):
        body.pop("model", None)
    return body


def estimate_payload(training_file_id: str, req: CreateRequest) -> dict[str, Any]:
    """The body of ``POST /fine-tunes/estimate-price``: the create fields it accepts."""
    body = create_payload(replace(req, training_file_id=training_file_id))
    return {k: v for k, v in body.items() if k in _ESTIMATE_KEYS}


def request_problems(req: CreateRequest) -> list[str]:
    """What Together cannot express in a request (for spec validation), and what the SDK
    refuses before sending; empty when fine."""
    problems: list[str] = []
    if req.method not in ("sft", "dpo"):
        problems.append(f"method: together supports sft and dpo, not {req.method!r}")
    for key in req.hyperparameters:
        if key not in HYPERPARAMETERS:
            problems.append(f"hyperparameters.{key}: no equivalent at together")
    scheduler = req.hyperparameters.get("lr_scheduler")
    if scheduler is not None and str(scheduler).lower() not in LR_SCHEDULERS:
        problems.append(
            f"hyperparameters.lr_scheduler: must be linear or cosine, not {scheduler!r}"
        )
    if req.hyperparameters.get("num_cycles") is not None and scheduler == "linear":
        problems.append("hyperparameters.num_cycles: only applies to the cosine scheduler")
    batch = req.hyperparameters.get("batch_size")
    if (
        batch is not None
        and batch != "max"
        and (isinstance(batch, bool) or not isinstance(batch, int))
    ):
        problems.append("hyperparameters.batch_size: an integer or 'max'")
    problems += _lora_problems(req.lora)
    problems += _dpo_problems(req)
    if req.suffix is not None and len(req.suffix) > MAX_USER_SUFFIX:
        problems.append(
            f"suffix: at most {MAX_USER_SUFFIX} characters at together "
            f"(the tag is appended and the whole must stay within {MAX_SUFFIX})"
        )
    problems += _start_problems(req)
    for key in RESERVED_OPTIONS:
        if key in req.options:
            problems.append(f"options.{key}: set by reconciler, use the spec field instead")
    for key, spec_key in SPEC_KEY_OPTIONS.items():
        if key in req.options:
            problems.append(f"options.{key}: use the spec key {spec_key} instead")
    if "wandb_api_key" in req.options and (req.wandb or {}).get("api_key") is not None:
        problems.append("options.wandb_api_key: wandb.api_key is set too; keep one")
    if "train_on_inputs" in req.options and req.train_on_inputs is not None:
        problems.append("options.train_on_inputs: the spec key train_on_inputs is set too")
    return problems


def _lora_problems(lora: Mapping[str, Any] | bool | None) -> list[str]:
    if not isinstance(lora, Mapping):
        return []
    problems = [f"lora.{key}: no equivalent at together" for key in lora if key not in LORA_KEYS]
    if lora and lora.get("r") is None:
        problems.append("lora.r: together requires the rank when LoRA settings are given")
    alpha = lora.get("alpha")
    if isinstance(alpha, float) and not alpha.is_integer():
        problems.append(f"lora.alpha: together takes a whole number, not {alpha}")
    return problems


def _dpo_problems(req: CreateRequest) -> list[str]:
    dpo = req.dpo or {}
    problems = ["dpo: only with method: dpo"] if req.dpo and req.method != "dpo" else []
    problems += [f"dpo.{key}: no equivalent at together" for key in dpo if key not in DPO_KEYS]
    gamma = dpo.get("simpo_gamma")
    if isinstance(gamma, int | float) and gamma > 0:
        # the SDK turns both on for SimPO whatever it is given: false would not be obeyed
        for key in ("reference_free", "normalize_logratios_by_length"):
            if dpo.get(key) is False:
                problems.append(f"dpo.{key}: SimPO (simpo_gamma > 0) needs it true")
    return problems


def _start_problems(req: CreateRequest) -> list[str]:
    """Where a job starts: a Together checkpoint or a Hugging Face repo, not both (SDK)."""
    problems: list[str] = []
    option = req.options.get("from_checkpoint")
    if option is not None:
        if req.from_output or req.from_step:
            problems.append("options.from_checkpoint: from: is set too; keep one")
        source, colon, step = str(option).partition(":")
        if not isinstance(option, str) or not source or (colon and not step.isdigit()):
            problems.append(
                "options.from_checkpoint: JOB_ID or OUTPUT_MODEL_NAME, optionally :STEP "
                f"(a whole number), not {option!r}"
            )
        if (req.huggingface or {}).get("model"):
            problems.append(
                "huggingface.model: a job starts from a Hugging Face repo or from a "
                "checkpoint (options.from_checkpoint), not both"
            )
    if (req.huggingface or {}).get("revision") and not (req.huggingface or {}).get("model"):
        problems.append("huggingface.revision: needs huggingface.model")
    return problems
