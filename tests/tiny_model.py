"""The local tests' data, and the package's tiny random Llama with a tokenizer trained on
it: real TRL + peft training on the CPU in seconds, with no download. Imported only by
tests that have the `local` extra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
