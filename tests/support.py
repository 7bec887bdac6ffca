"""Test support: a specs tree written on demand, a fake clock, a sentinel key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

SENTINEL_KEY = "tg-SENTINEL-KEY-5f1d0c9b8a7e6d5c4b3a"

CONVERSATION = {
    "messages": [
        {"role": "system", "content": "You are a support bot."},
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Settings, Security, Reset password."},
    ]
}


def spec_yaml(name: str, **spec: Any) -> str:
    body: dict[str, Any] = {
        "provider": "together",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "training_file": "data/train.jsonl",
        "hyperparameters": {"epochs": 3, "learning_rate": 1e-5},
    }
    body.update(spec)
    doc = {
        "apiVersion": "reconciler/v1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": body,
    }
    return json.dumps(doc, indent=2)  # JSON is YAML, and keeps the fixture exact


class SpecTree:
    """A specs folder in tmp_path, with helpers to write specs and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.data("data/train.jsonl", [CONVERSATION] * 3)

    def data(self, rel: str, records: list[dict[str, Any]]) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path

    def spec(self, name: str, **spec: Any) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(spec_yaml(name, **spec))
        return path

    def raw(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def remove(self, name: str) -> None:
        (self.root / f"{name}.yaml").unlink()


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def no_nulls(value: Any) -> bool:
    """True when no value in a (nested) payload is None: drivers send only keys that are set."""
    if isinstance(value, dict):
        return all(v is not None and no_nulls(v) for v in value.values())
    return value is not None
