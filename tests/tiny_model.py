"""The local tests' data, and the package's tiny random Llama with a tokenizer trained on
it: real TRL + peft training on the CPU in seconds, with no download. Imported only by
tests that have the `local` extra."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

from reconciler.providers.local.runs import is_alive, read_json
from reconciler.providers.local.tiny import build, texts_of

ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"what colour is thing {i}"},
            {"role": "assistant", "content": "the sky is blue"},
        ]
    }
    for i in range(8)
]


PREFERENCES = [
    {
        "input": {"messages": [{"role": "user", "content": f"what colour is thing {i}"}]},
        "preferred_output": [{"role": "assistant", "content": "the sky is blue"}],
        "non_preferred_output": [{"role": "assistant", "content": "thing is red"}],
    }
    for i in range(8)
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def build_tiny_model(folder: Path) -> None:
    """The package's tiny random Llama, its tokenizer trained on this module's data."""
    build(folder, [t for row in ROWS + PREFERENCES for t in texts_of(row)])


def stop_every_trainer(root: Path) -> None:
    """No trainer outlives the tests (one a deselected or failed test left running)."""
    for record in root.glob("**/attempts/*/process.json"):
        found = read_json(record) or {}
        if is_alive(found):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(found["pid"], signal.SIGKILL)
