"""Logging through structlog, to stderr, with API keys scrubbed from every event.

Console lines for people; JSON lines (``json=True``) for daemons. Tracebacks never
render frame locals: a frame holding an API key would otherwise print it (DESIGN §10).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from .redact import scrub


def _scrub_event(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub(value)
        elif isinstance(value, (list, tuple, dict)) and scrub(repr(value)) != repr(value):
            event[key] = scrub(repr(value))
    return event


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(
    verbose: int = 0, *, json: bool = False, stream: Any = None, interactive: bool = False
) -> None:
    """``interactive``: a command that prints its own outcome lines (apply, plan, …); its
    log stays quiet below errors unless ``-v``, so a failure is not said twice."""
    quiet = logging.ERROR if interactive else logging.WARNING
    level = quiet if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            _scrub_event,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [
            _scrub_event,
            structlog.dev.ConsoleRenderer(
                colors=False,
                exception_formatter=structlog.dev.plain_traceback,
            ),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or _Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get(name: str = "reconciler") -> Any:
    return structlog.get_logger(name)
