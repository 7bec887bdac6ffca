"""Logging through structlog, to stderr, with API keys scrubbed from every event.

Console lines for people; JSON lines (``json=True``) for daemons. Tracebacks never
render frame locals: a frame holding an API key would otherwise print it (DESIGN §10).

structlog is imported on the first event, not at start-up: with ``rich`` installed (it
comes with the local-training extras) the import costs 0.2 s, and most commands (plan,
status, validate) log nothing.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from .redact import scrub

_settings: dict[str, Any] | None = None  # the last configure(), applied on first use
_applied = False


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
    global _settings, _applied
    _settings = {"verbose": verbose, "json": json, "stream": stream, "interactive": interactive}
    _applied = False
    if "structlog" in sys.modules:  # already in use: configure at once
        _apply()


def _apply() -> None:
    global _applied
    _applied = True
    if _settings is not None:
        _configure(**_settings)


def _configure(verbose: int, *, json: bool, stream: Any, interactive: bool) -> None:
    import structlog

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


class _Logger:
    """A structlog logger that imports structlog (and applies ``configure``) when the
    first event is logged."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import structlog

        if not _applied:
            _apply()
        return getattr(structlog.get_logger(self._name), attr)


def get(name: str = "reconciler") -> Any:
    return _Logger(name)
