"""Local training's vocabulary (providers-next.md §4): the spec's fields as TRL's
``SFTConfig`` / ``DPOConfig`` and peft's ``LoraConfig`` arguments, the data formats as
the records TRL reads, and a run folder's facts as a phase. Pure: no torch here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...model import CreateRequest, Phase, unexpressed

PROVIDER = "local"
DEFAULT_EPOCHS = 3  # TRL's num_train_epochs default
DEFAULT_CHECKPOINTS = 10  # a died trainer loses at most a tenth of its run
SCHEDULERS = {"linear": "linear", "cosine": "cosine"}

# options passed through to SFTConfig / DPOConfig as they are, with the type each must have
OPTIONS: dict[str, type | tuple[type, ...]] = {
    "max_steps": int,
    "save_steps": (int, float),
    "logging_steps": (int, float),
    "gradient_accumulation_steps": int,
    "gradient_checkpointing": bool,
    "packing": bool,
    "assistant_only_loss": bool,
    "completion_only_loss": bool,
    "bf16": bool,
    "fp16": bool,
    "use_cpu": bool,
    "optim": str,
    "save_total_limit": int,
    "dataloader_num_workers": int,
}
SFT_ONLY = ("packing", "assistant_only_loss", "completion_only_loss")


def request_problems(req: CreateRequest) -> list[str]:
    """``field: message`` for what local training with TRL cannot express."""
    hp = req.hyperparameters
    out = unexpressed(req, PROVIDER, (), ())
    # unexpressed refuses train_on_inputs and from.step; local maps them
    # (completion_only_loss; the upstream run's checkpoint-<step> folder)
    out = [p for p in out if not p.startswith(("train_on_inputs:", "from.step:"))]
    if "learning_rate_multiplier" in hp:
        out.append(
            "hyperparameters.learning_rate_multiplier: local takes an absolute "
            "learning_rate (TRL's default: 2e-5 for sft, 1e-6 for dpo)"
        )
    if hp.get("batch_size") == "max":
        out.append("hyperparameters.batch_size: local needs a number (no 'max')")
    if "min_lr_ratio" in hp and hp.get("lr_scheduler") != "cosine":
        out.append("hyperparameters.min_lr_ratio: local applies it to lr_scheduler: cosine only")
    if "num_cycles" in hp and hp.get("lr_scheduler") != "cosine":
        out.append("hyperparameters.num_cycles: local applies it to lr_scheduler: cosine only")
    if hp.get("n_evals") and req.validation_file_id is None:
        out.append("hyperparameters.n_evals: needs a validation_file")
    dpo = req.dpo or {}
    if req.method != "dpo" and dpo:
        out.append("dpo: only with method: dpo")
    if dpo.get("reference_free") and not dpo.get("simpo_gamma"):
        out.append("dpo.reference_free: local trains reference-free only as SimPO (simpo_gamma)")
    if req.train_vision is not None:
        out = [p for p in out if not p.startswith("train_vision:")]
        out.append("train_vision: local trains text models only")
    for key, value in req.options.items():
        kind = OPTIONS.get(key)
        if kind is None:
            out.append(f"options.{key}: no equivalent at local (known: {', '.join(OPTIONS)})")
        elif (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            out.append(f"options.{key}: expected {_kind_name(kind)}, not {value!r}")
        elif key in SFT_ONLY and req.method != "sft":
            out.append(f"options.{key}: sft only")
    return out


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _ratio(count: int) -> float:
    """A count of events over a run as transformers' step ratio (a float under 1)."""
    return round(1.0 / max(count, 2), 6)


def training_args(req: CreateRequest, output_dir: str) -> dict[str, Any]:
    """The ``SFTConfig`` / ``DPOConfig`` keyword arguments of ``req`` (names of trl 1.16 /
    transformers 5.x: ``max_length``, ``warmup_steps`` as a ratio)."""
    hp = req.hyperparameters
    args: dict[str, Any] = {
        "output_dir": output_dir,
        "run_name": req.tag,
        "report_to": "none",
        "num_train_epochs": float(hp.get("epochs", DEFAULT_EPOCHS)),
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": _ratio(hp.get("n_checkpoints", DEFAULT_CHECKPOINTS)),
        "disable_tqdm": True,
    }
    if "learning_rate" in hp:
        args["learning_rate"] = hp["learning_rate"]
    if "batch_size" in hp:
        args["per_device_train_batch_size"] = hp["batch_size"]
        args["per_device_eval_batch_size"] = hp["batch_size"]
    if "warmup_ratio" in hp:
        args["warmup_steps"] = min(float(hp["warmup_ratio"]), 0.999)
    for ours in ("weight_decay", "max_grad_norm", "seed"):
        if ours in hp:
            args[ours] = hp[ours]
    if "max_seq_length" in hp:
        args["max_length"] = hp["max_seq_length"]
    scheduler = hp.get("lr_scheduler")
    if scheduler:
        args["lr_scheduler_type"] = SCHEDULERS[scheduler]
        kwargs: dict[str, Any] = {}
        if "num_cycles" in hp:
            kwargs["num_cycles"] = hp["num_cycles"]
        if "min_lr_ratio" in hp:
            args["lr_scheduler_type"] = "cosine_with_min_lr"
            kwargs["min_lr_rate"] = hp["min_lr_ratio"]
        if kwargs:
            args["lr_scheduler_kwargs"] = kwargs
    if req.validation_file_id is not None:
        evals = hp.get("n_evals")
        if evals:
            args |= {"eval_strategy": "steps", "eval_steps": _ratio(evals)}
        elif evals is None:
            args["eval_strategy"] = "epoch"
    if req.method == "sft" and req.train_on_inputs in (True, False):
        args["completion_only_loss"] = not req.train_on_inputs
    if req.method == "dpo":
        args |= _dpo_args(req.dpo or {})
    return args | {k: v for k, v in req.options.items() if k in OPTIONS}


def trainer_kind(req: CreateRequest) -> str:
    """TRL's trainer: SFT, DPO, or CPO for SimPO (``dpo.simpo_gamma``: TRL keeps SimPO in
    ``trl.experimental.cpo``, reference-free and length-normalised by design)."""
    if req.method != "dpo":
        return "SFT"
    return "CPO" if (req.dpo or {}).get("simpo_gamma") else "DPO"


def _dpo_args(dpo: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "beta" in dpo:
        out["beta"] = dpo["beta"]
    if dpo.get("simpo_gamma"):
        # SimPO: the margin gamma; rpo_alpha is CPO's behaviour-cloning (sft) weight
        alpha = float(dpo.get("rpo_alpha") or 0.0)
        return out | {"loss_type": "simpo", "simpo_gamma": dpo["simpo_gamma"], "cpo_alpha": alpha}
    first = "sigmoid_norm" if dpo.get("normalize_logratios_by_length") else "sigmoid"
    if dpo.get("rpo_alpha"):
        # trl 1.x dropped rpo_alpha: the same loss is a weighted sft term
        out |= {"loss_type": [first, "sft"], "loss_weights": [1.0, float(dpo["rpo_alpha"])]}
    elif first != "sigmoid":
        out["loss_type"] = [first]
    return out


def lora_args(req: CreateRequest) -> dict[str, Any] | None:
    """peft ``LoraConfig`` arguments; None for a full fine-tune (``lora: false``)."""
    if req.lora is False:
        return None
    settings = req.lora if isinstance(req.lora, dict) else {}
    out: dict[str, Any] = {"task_type": "CAUSAL_LM"}
    for ours, theirs in (("r", "r"), ("alpha", "lora_alpha"), ("dropout", "lora_dropout")):
        if settings.get(ours) is not None:
            out[theirs] = settings[ours]
    modules = settings.get("trainable_modules")
    if modules:
        out["target_modules"] = (
            modules if modules == "all-linear" else [m.strip() for m in modules.split(",")]
        )
    return out


def _messages(value: Any) -> Any:
    return value.get("messages") if isinstance(value, Mapping) else value


def trl_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One validated data record as TRL reads it: conversational, prompt/completion and
    text records as they are; a preference record as ``prompt`` / ``chosen`` /
    ``rejected`` message lists."""
    if "preferred_output" in record:
        return {
            "prompt": _messages(record.get("input")),
            "chosen": record["preferred_output"],
            "rejected": record["non_preferred_output"],
        }
    if "messages" in record:
        out: dict[str, Any] = {"messages": record["messages"]}
        if record.get("tools"):
            out["tools"] = record["tools"]
        return out
    if "prompt" in record:
        return {"prompt": record["prompt"], "completion": record["completion"]}
    return {"text": record["text"]}


# -- a run's state, as the run folder shows it ---------------------------------------

START_GRACE_S = 120.0  # an attempt folder with no process after this never started
RELAUNCH_AFTER_S = 10.0  # …and after this the driver starts its trainer (once) itself
CANCEL_GRACE_S = 30.0  # SIGTERM, then SIGKILL after this


@dataclass(frozen=True)
class RunFacts:
    """What one attempt's folder and the process table say (read by the client)."""

    result: Mapping[str, Any] | None  # result.json, written by the trainer as it ends
    started: bool  # a process record exists
    alive: bool  # that process (pid and start time) is still running
    cancel_requested: bool
    age_s: float  # since the attempt folder was made
    slotted: bool = True  # the trainer holds a slot (False: waiting in the queue)


def phase_of(facts: RunFacts) -> tuple[Phase, str, str | None, bool]:
    """(phase, status string, error, retryable) of one attempt."""
    if facts.result is not None:
        status = str(facts.result.get("status") or "failed")
        phase = {"succeeded": Phase.SUCCEEDED, "cancelled": Phase.CANCELLED}.get(
            status, Phase.FAILED
        )
        error = facts.result.get("error") if phase is Phase.FAILED else None
        return phase, status, error, bool(facts.result.get("retryable"))
    if facts.alive:
        if facts.cancel_requested:
            return Phase.CANCELLING, "cancelling", None, False
        if not facts.slotted:
            return Phase.QUEUED, "queued", None, False
        return Phase.RUNNING, "running", None, False
    if facts.cancel_requested:
        return Phase.CANCELLED, "cancelled", None, False
    if facts.started:
        why = "the trainer exited without a result (killed, out of memory or a reboot)"
        return Phase.FAILED, "died", why, True
    if facts.age_s < START_GRACE_S:
        return Phase.QUEUED, "starting", None, False
    return Phase.FAILED, "never-started", "the trainer process never started", True


def progress_text(metrics: Sequence[Mapping[str, Any]], now: float) -> str | None:
    """``step 3/6, loss 1.234, ETA 12s`` from one run's metrics lines (oldest first)."""
    steps = [m for m in metrics if isinstance(m.get("step"), int)]
    if not steps:
        return None
    last = steps[-1]
    total = last.get("max_steps")
    text = f"step {last['step']}/{total}" if total else f"step {last['step']}"
    losses = [m["loss"] for m in steps if isinstance(m.get("loss"), int | float)]
    if losses:
        text += f", loss {losses[-1]:.4g}"
    same = [m for m in steps if m.get("attempt") == last.get("attempt")]
    first = same[0]
    done = last["step"] - first["step"]
    elapsed = float(last.get("time", now)) - float(first.get("time", now))
    if total and done > 0 and elapsed > 0 and last["step"] < total:
        text += f", ETA {round(elapsed / done * (total - last['step']))}s"
    return text
