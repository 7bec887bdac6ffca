"""Realistic spec trees for the benchmarks: one ``FineTuneJob`` per file, shaped like
``examples/quickstart``, names and hyperparameters varied, all pointing at a few small
JSONL files copied from the quickstart under ``ROOT/data``."""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUICKSTART_DATA = REPO / "examples" / "quickstart" / "data"

PROVIDERS = ("together", "openai", "mistral")
TEAMS = ("support", "search", "growth", "risk", "infra", "analytics")
TOGETHER_MODELS = (
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "Qwen/Qwen2.5-7B-Instruct",
)


def _together(name: str, rng: random.Random) -> str:
    lr = rng.choice(("1.0e-5", "2.0e-5", "5.0e-5", "1.0e-4"))
    epochs, batch = rng.randint(1, 5), rng.choice((8, 16, 32))
    if rng.random() < 0.8:  # chat data with a validation set and LoRA, like support-bot
        return f"""\
# Conversational SFT with LoRA on Together AI, with a validation set.
apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: {name}
  labels: {{team: {rng.choice(TEAMS)}, stage: {rng.choice(("dev", "prod"))}}}
spec:
  provider: together
  model: {TOGETHER_MODELS[0]}
  training_file: data/support.jsonl
  validation_file: data/support-val.jsonl
  method: sft
  lora: {{r: {rng.choice((8, 16, 32))}, alpha: {rng.choice((16, 32, 64))}, dropout: 0.05, \
trainable_modules: all-linear}}
  hyperparameters: {{epochs: {epochs}, learning_rate: {lr}, batch_size: {batch}, \
warmup_ratio: 0.1, n_evals: 2}}
  suffix: {name[-20:]}
  policy: {{max_attempts: 3, on_delete: cancel}}
"""
    return f"""\
# Instruction (prompt/completion) data, full fine-tune.
apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: {name}
  labels: {{team: {rng.choice(TEAMS)}}}
spec:
  provider: together
  model: {TOGETHER_MODELS[1]}
  training_file: data/summaries.jsonl
  lora: false
  hyperparameters: {{epochs: {epochs}, learning_rate: {lr}, lr_scheduler: cosine, \
num_cycles: 0.5}}
  policy: {{on_delete: orphan}}
"""


def _openai(name: str, rng: random.Random) -> str:
    return f"""\
# The same support data at OpenAI.
apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: {name}
  labels: {{team: {rng.choice(TEAMS)}}}
spec:
  provider: openai
  model: gpt-4.1-mini-2025-04-14
  training_file: data/support.jsonl
  hyperparameters: {{epochs: {rng.randint(1, 4)}, \
learning_rate_multiplier: {rng.choice((0.5, 1.0, 1.8, 2.0))}, batch_size: {rng.choice((1, 4, 8))}}}
  suffix: {name[-18:]}
"""


def _mistral(name: str, rng: random.Random) -> str:
    return f"""\
# Mistral: created parked after validation, then started.
apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: {name}
  labels: {{team: {rng.choice(TEAMS)}}}
spec:
  provider: mistral
  model: open-mistral-7b
  training_file: data/support.jsonl
  hyperparameters: {{epochs: {rng.randint(1, 3)}, \
learning_rate: {rng.choice(("1.0e-4", "5.0e-5"))}, warmup_ratio: 0.05}}
"""


RENDER = {"together": _together, "openai": _openai, "mistral": _mistral}


def spec_text(name: str, provider: str, rng: random.Random) -> str:
    return RENDER[provider](name, rng)


def copy_data(root: Path) -> None:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for src in QUICKSTART_DATA.glob("*.jsonl"):
        shutil.copyfile(src, data / src.name)


def write_tree(
    root: Path,
    count: int,
    providers: Sequence[str] = PROVIDERS,
    *,
    weights: Sequence[float] | None = None,
    prefix: str = "job",
    suspend: bool = False,
    seed: int = 20_240_601,
) -> list[Path]:
    """``count`` spec files under ``root/specs-NNN/`` (100 a folder) plus ``root/data``.

    With ``weights`` the provider of each spec is drawn; without, specs cycle through
    ``providers`` so each gets an equal share. ``suspend`` writes ``suspend: true``
    (the spec is loaded and planned, but never acted on).
    """
    rng = random.Random(seed)
    copy_data(root)
    paths = []
    for i in range(count):
        if weights is None:
            provider = providers[i % len(providers)]
        else:
            provider = rng.choices(list(providers), weights=list(weights))[0]
        name = f"{prefix}-{provider[:2]}-{i:05d}"
        folder = root / f"specs-{i // 100:03d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        text = spec_text(name, provider, rng).replace("data/", "../data/")
        path.write_text(text + ("  suspend: true\n" if suspend else ""))
        paths.append(path)
    return paths


def write_spec(root: Path, name: str, provider: str = "together", seed: int = 0) -> Path:
    """One more spec directly under ``root`` (whose ``data/`` must exist)."""
    path = root / f"{name}.yaml"
    path.write_text(spec_text(name, provider, random.Random(seed)))
    return path
