"""One exception tree for everything reconciler raises on purpose.

    ReconcilerError                 any error a user can act on (one line, exit 1)
    ├── SpecError                   a spec or data file is wrong: file, line, field
    │   └── SpecErrors              several SpecErrors found in one pass
    ├── LedgerError                 the ledger cannot be read or written
    │   ├── LockedError             another apply/watch holds the writer lock
    │   ├── EmptyLedgerError        the file exists but has no schema yet
    │   └── LedgerAccessError       a full disk, a read-only file or folder, a folder
    │                               given as the file: the path and what to do
    ├── StalePlanError              a saved plan no longer matches ledger or specs
    ├── ConfigError                 a missing environment variable or bad option
    └── ProviderError               a provider API call failed (provider, status, kind)

The CLI has one funnel (``cli.main``, through ``cli._report``) that turns these into a
single line and an exit code; ``-v`` adds the traceback. Anything else is a bug and is
shown as one. Errors raised while handling another keep it as their ``__cause__``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ReconcilerError(Exception):
    """Base of every error reconciler reports to a user."""


@dataclass(frozen=True)
class Location:
    """Where in a user's file a problem is: file, 1-based line, dotted field path."""

    file: Path | str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


class SpecError(ReconcilerError):
    """A problem in a spec or a data file; rendered as ``file:line: field: message``."""

    def __init__(
        self, message: str, file: Path | str, line: int | None = None, field: str | None = None
    ) -> None:
        self.message = " ".join(message.split())  # always one line
        self.location = Location(file, line, field)
        super().__init__(self.render())

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by its fields (fanout.py)
        loc = self.location
        return (type(self), (self.message, loc.file, loc.line, loc.field))

    @property
    def file(self) -> Path | str:
        return self.location.file

    @property
    def line(self) -> int | None:
        return self.location.line

    @property
    def field(self) -> str | None:
        return self.location.field

    def render(self) -> str:
        where = str(self.location)
        if self.location.field:
            return f"{where}: {self.location.field}: {self.message}"
        return f"{where}: {self.message}"


class SpecErrors(SpecError):
    """Several spec problems found in one pass; ``str()`` is the first, ``errors`` all."""

    def __init__(self, errors: list[SpecError]) -> None:
        if not errors:
            raise ValueError("SpecErrors needs at least one error")
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, first.file, first.line, first.field)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))

    def render(self) -> str:
        lines = [e.render() for e in getattr(self, "errors", [])]
        return "\n".join(lines) if lines else super().render()


class LedgerError(ReconcilerError):
    """The ledger could not be opened, migrated, read or written."""


class LockedError(LedgerError):
    """Another process holds the single-writer lock of the ledger."""


class EmptyLedgerError(LedgerError):
    """A ledger file with no schema yet (another process is creating it): read as empty."""


class LedgerAccessError(LedgerError):
    """The ledger's file cannot be read or written where it is (a full disk, permissions,
    a folder in its place); the message names the path and what to do."""

    def __init__(self, message: str, path: Path | str) -> None:
        self.path = path
        super().__init__(message)


class StalePlanError(ReconcilerError):
    """A saved plan was computed against a ledger serial or specs that have moved."""


class ConfigError(ReconcilerError):
    """A missing environment variable, an unusable option or path."""


class ErrorKind(enum.StrEnum):
    """How a provider error should be handled."""

    AUTH = "auth"  # bad or missing key: stop, tell the user which variable
    PERMANENT = "permanent"  # the request itself is wrong: do not retry
    RETRYABLE = "retryable"  # 5xx, timeout, dropped connection: back off and retry
    RATE_LIMITED = "rate_limited"  # 429: wait Retry-After, then retry
    NOT_FOUND = "not_found"  # 404: the object is gone (or never existed)


class ProviderError(ReconcilerError):
    """A provider API call failed.

    ``ambiguous`` is true when the request may have reached the provider and had an
    effect (a timeout or dropped connection on a POST): a create in that state is
    resolved by looking the tag up, never by posting again.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        kind: ErrorKind,
        status: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        self.provider = provider
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.ambiguous = ambiguous
        self.message = message
        code = f" (HTTP {status})" if status else ""
        super().__init__(f"{provider}: {message}{code}")

    @property
    def retryable(self) -> bool:
        return self.kind in (ErrorKind.RETRYABLE, ErrorKind.RATE_LIMITED)
