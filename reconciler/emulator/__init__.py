"""The provider emulator (DESIGN §7): Together, OpenAI and Mistral files and fine-tuning
endpoints on one local HTTP server, with a clock, faults on demand and SQLite state.

Public API: ``serve`` (blocking), ``EmulatorThread`` (in-process, for tests),
``add_arguments`` / ``run`` (CLI glue) and ``create_app`` (the ASGI app). Importing this
package is cheap: the web stack loads only when a server is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .server import DEFAULT_PORT, EmulatorThread, add_arguments, run, serve

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["DEFAULT_PORT", "EmulatorThread", "add_arguments", "create_app", "run", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
