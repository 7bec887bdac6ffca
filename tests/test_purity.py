"""The functional core loads no I/O library, even transitively (STYLE.md, issue #10).

Each module is imported in a fresh interpreter and ``sys.modules`` is read after the
import: an indirect import through a package ``__init__`` counts as much as a direct one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IO_LIBRARIES = ("httpx", "structlog", "sqlite3", "sqlite_utils", "watchfiles", "rich")
PURE = (
    "reconciler.model",
    "reconciler.plan",
    "reconciler.health",
    "reconciler.removals",
    "reconciler.targets",
    "reconciler.moves",
    "reconciler.fingerprint",
    "reconciler.spec",
    "reconciler.cost",
    "reconciler.catalog",
    "reconciler.datarules",
    "reconciler.datafiles",
    "reconciler.records",
    "reconciler.providers",
    "reconciler.providers.together.mapping",
    "reconciler.providers.together.payload",
    "reconciler.providers.openai.mapping",
    "reconciler.providers.mistral.mapping",
    "reconciler.providers.azure_openai.mapping",
    "reconciler.providers.nebius.mapping",
    "reconciler.providers.fireworks.mapping",
    "reconciler.providers.local.mapping",
    "reconciler.providers.local.entry",
)
PROBE = (
    "import importlib, json, sys\n"
    "importlib.import_module(sys.argv[1])\n"
    f"print(json.dumps([m for m in {IO_LIBRARIES!r} if m in sys.modules]))\n"
)


pytestmark = pytest.mark.process


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_loads_no_io_library(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [], f"{module} loads {out.stdout.strip()}"


def test_the_probe_sees_a_transitive_import() -> None:
    """The check itself can fail: the HTTP layer does load httpx."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "reconciler.providers.http"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "httpx" in json.loads(out.stdout)
