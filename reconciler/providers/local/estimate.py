"""What ``plan`` says of a local job instead of a list price: where it would run (device,
dtype), roughly how long it would take, and what that costs at the project's price per
slot-hour (``reconciler.yaml`` ``local.gpu_hour_usd``; 0 USD without one).

The time is arithmetic, not a measurement: training FLOPs (6 × parameters × tokens for a
full fine-tune, 4 × for LoRA, whose frozen weights need no gradient; DPO adds the frozen
reference's forward pass) over an assumed throughput per device, plus the trainer's
start. The parameter count is read from the model's ``config.json`` (its folder, or the
Hugging Face cache) and else from its name. Pure: no torch, nothing reaches a network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...catalog import model_size_b
from ...model import model_on_disk
from .runs import gpu_count, read_json

if TYPE_CHECKING:
    from ...spec import JobSpec

CPU_FLOPS = 2e10  # what two to eight cores sustain in float32 training, about
GPU_FLOPS = 4e13  # a data-centre GPU in bfloat16 at a realistic utilisation
START_S = 20.0  # importing torch and transformers, loading the model


class Settings:
    """The project's ``local:`` price (set by ``source.use_project`` for each run)."""

    gpu_hour_usd: float = 0.0


def configure(gpu_hour_usd: float | None) -> None:
    Settings.gpu_hour_usd = gpu_hour_usd or 0.0


def device(env: Mapping[str, str]) -> tuple[str, str]:
    """(device, dtype) a trainer would use on this machine."""
    gpus = gpu_count(env)
    if gpus:
        return (f"cuda ({gpus} GPU{'s' if gpus > 1 else ''})", "bfloat16")
    return ("cpu", "float32")


def model_config(model: str, env: Mapping[str, str], spec_file: str) -> dict[str, Any] | None:
    """The model's ``config.json``: in its folder, or in the Hugging Face cache."""
    folder = model_on_disk(model, spec_file)
    if folder is not None:
        return read_json(folder / "config.json")
    home = Path(env.get("HF_HOME") or "~/.cache/huggingface").expanduser()
    hub = Path(env.get("HF_HUB_CACHE") or home / "hub").expanduser()
    snapshots = hub / f"models--{model.replace('/', '--')}" / "snapshots"
    for config in sorted(snapshots.glob("*/config.json")):
        return read_json(config)
    return None


def parameters(config: Mapping[str, Any]) -> int | None:
    """A decoder's parameter count from its config (Llama, Qwen, Mistral, Gemma shapes)."""
    config = config.get("text_config") or config
    try:
        h = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        vocab = int(config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None
    inner = int(config.get("intermediate_size") or 4 * h)
    heads = int(config.get("num_attention_heads") or 1)
    kv = int(config.get("num_key_value_heads") or heads)
    head = int(config.get("head_dim") or h // heads)
    attention = 2 * h * heads * head + 2 * h * kv * head
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings", True) else 2)
    return layers * (attention + 3 * h * inner) + embeddings


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(
    spec: JobSpec, training_tokens: int, validation_tokens: int | None, spec_file: str
) -> tuple[float, int, str]:
    """(US dollars, tokens trained, one line: device, dtype, time and how it was reached)."""
    from .mapping import DEFAULT_EPOCHS

    env = os.environ
    where, dtype = device(env)
    epochs = spec.hyperparameters.epochs or DEFAULT_EPOCHS
    tokens = training_tokens * epochs
    config = model_config(spec.model, env, spec_file)
    params = parameters(config) if config else None
    if params is None and (size := model_size_b(spec.model)) is not None:
        params = int(size * 1e9)
    head = f"local: {where}, {dtype}"
    if params is None:
        why = "the model's size is unknown here (no config.json in its folder or the cache)"
        return 0.0, tokens, f"{head}, time unknown: {why}"
    per_token = 6 if spec.lora is False else 4
    if spec.method == "dpo":
        per_token += 2  # the frozen reference model's forward pass
    # each evaluation is a forward pass over the validation file (one per epoch by default)
    evals = (validation_tokens or 0) * (spec.hyperparameters.n_evals or epochs)
    flops = per_token * params * tokens + 2 * params * evals
    speed = GPU_FLOPS if gpu_count(env) else CPU_FLOPS
    seconds = START_S + flops / speed
    usd = seconds / 3600 * Settings.gpu_hour_usd
    price = (
        f"${Settings.gpu_hour_usd:g}/slot-hour"
        if Settings.gpu_hour_usd
        else "no local.gpu_hour_usd set"
    )
    basis = (
        f"{head}, ~{duration(seconds)} (~{tokens:,} tokens, {_count(params)} params, "
        f"assumed {speed:.0e} FLOP/s); {price}"
    ).replace("e+", "e")
    return round(usd, 4), tokens, basis
