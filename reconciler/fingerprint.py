"""Fingerprints: what defines a training run, hashed; and the field-level diff of two runs.

The inputs are the provider, model, method, hyperparameters, LoRA, DPO settings,
suffix, options, ``train_on_inputs``, ``train_vision``, the Hugging Face repo and revision
started from, the *content hash* of each data file, and the upstream job's output (and
step) for ``from``. Labels, policy, ``suspend``, W&B reporting and the Hugging Face
output repo and token are not inputs: changing them never retrains anything. Pure module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .spec import JobSpec


@dataclass(frozen=True)
class FieldChange:
    """One training-defining field that differs: ``path`` old → new."""

    path: str
    old: Any
    new: Any

    def render(self) -> str:
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return value[:12] + "…"  # a content hash: the prefix is enough to tell
        return value
    return json.dumps(value, sort_keys=True)


def training_inputs(
    spec: JobSpec,
    training_sha256: str,
    validation_sha256: str | None,
    from_output: str | None,
) -> dict[str, Any]:
    """The canonical, JSON-ready inputs of one training run."""
    lora: Any
    if isinstance(spec.lora, bool):
        lora = spec.lora
    else:
        lora = spec.lora.model_dump(exclude_none=True) or True  # `lora: {}` is the default LoRA
    inputs: dict[str, Any] = {
        "provider": spec.provider,
        "model": spec.model,
        "method": spec.method,
        "lora": lora,
        "hyperparameters": spec.hyperparameters.model_dump(exclude_none=True),
        "training_file": {"sha256": training_sha256},
    }
    if validation_sha256 is not None:
        inputs["validation_file"] = {"sha256": validation_sha256}
    if spec.dpo is not None:
        inputs["dpo"] = spec.dpo.model_dump(exclude_none=True)
    if spec.suffix is not None:
        inputs["suffix"] = spec.suffix
    if spec.options:
        inputs["options"] = spec.options
    if from_output is not None:
        inputs["from"] = from_output
    if spec.from_ is not None and spec.from_.step is not None:
        inputs["from_step"] = spec.from_.step
    for key in ("train_on_inputs", "train_vision"):
        if (value := getattr(spec, key)) is not None:
            inputs[key] = value
    if spec.huggingface is not None and spec.huggingface.model is not None:
        # where training starts defines it; where the result is pushed does not
        inputs["huggingface"] = spec.huggingface.model_dump(
            include={"model", "revision"}, exclude_none=True
        )
    return inputs


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def fingerprint(inputs: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the inputs (hex)."""
    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in value:
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    """Leaf-level differences between two inputs dicts, sorted by path."""
    flat_old: dict[str, Any] = {}
    flat_new: dict[str, Any] = {}
    _flatten(old, "", flat_old)
    _flatten(new, "", flat_new)
    paths = sorted(set(flat_old) | set(flat_new))
    # compare as JSON: in Python 1 == 1.0 == True, in a fingerprint they differ
    return tuple(
        FieldChange(p, flat_old.get(p), flat_new.get(p))
        for p in paths
        if canonical_json(flat_old.get(p)) != canonical_json(flat_new.get(p))
    )
