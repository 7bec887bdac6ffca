"""Print the JSON Schema of the spec format: ``python -m reconciler.schema``.

The committed copy is ``schema/finetunejob-v1.json``; a test fails when it is stale.
"""

from __future__ import annotations

import json

from .spec import json_schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
