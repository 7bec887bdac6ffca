"""What every provider package of the emulator shares: the ``Emulator`` context (store,
clock, faults), ids, timestamps, training-data inspection and job bookkeeping."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from .clock import Clock
from .faults import FailRule, Faults
from .lifecycle import JobKind, Snapshot, plan_failure, request_cancel, snapshot
from .store import Row, Store

JOB = "job"
FILE = "file"
UPLOAD = "upload"
PART = "part"
SLOT = "slot"  # a pre-signed storage URL waiting for (or holding) bytes


@dataclass
class Emulator:
    """The state one emulator serves; handed to every route."""

    store: Store
    clock: Clock
    faults: Faults
    keys: frozenset[str] | None = None  # accepted bearer tokens; None: any non-empty one
    file_processing_seconds: float = 2.0  # Together: upload → processing_status COMPLETED
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))

    def now(self) -> float:
        return self.clock.now()


class ProviderApi(Protocol):
    """What a provider package offers the app (packages satisfy it structurally)."""

    NAME: str
    KIND: JobKind
    HOLDABLE: tuple[str, ...]  # the statuses a ``stuck`` fault can hold a job in

    def routes(self, emu: Emulator) -> list[BaseRoute]: ...

    def error(
        self,
        status: int,
        message: str,
        *,
        type: str = ...,
        param: str | None = ...,
        code: str | None = ...,
    ) -> Response: ...

    def job_summary(self, emu: Emulator, row: Row) -> dict[str, Any]: ...


# ---------------------------------------------------------------- ids and time


def new_uuid() -> str:
    return str(uuid.uuid4())


def token(n: int = 24) -> str:
    """Random letters and digits (OpenAI-style ids)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def digest(*parts: Any, n: int = 8) -> str:
    """A short stable hex hash (ids of derived objects must not change between reads)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:n]


def iso(t: float) -> str:
    """ISO 8601 in UTC with milliseconds, as Together writes timestamps."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float | None:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


async def json_body(request: Request) -> tuple[Any, str | None]:
    """The parsed JSON body, or an error text when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        return None, "the request body is empty"
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the request body is not valid JSON ({exc})"


# ---------------------------------------------------------------- training data


@dataclass(frozen=True)
class DataInfo:
    """What the emulator learns from a JSONL training file."""

    bytes: int
    lines: int
    format: str | None  # CONVERSATION | INSTRUCTION | GENERAL | PREFERENCE
    error: str | None

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def tokens(self) -> int:
        """Roughly four bytes a token: enough to make prices and progress plausible."""
        return max(1, math.ceil(self.bytes / 4)) if self.bytes else 0


_FORMATS = (
    ("PREFERENCE", ("input", "preferred_output", "non_preferred_output")),
    ("CONVERSATION", ("messages",)),
    ("INSTRUCTION", ("prompt", "completion")),
    ("GENERAL", ("text",)),
)


_BOM = "\ufeff"


def inspect_jsonl(content: bytes, *, leading_bom: bool = False) -> DataInfo:
    """Check a JSONL file: UTF-8, one JSON object a line, one known format throughout.

    ``leading_bom``: read past a UTF-8 byte-order mark at the very start, as OpenAI does;
    elsewhere (or where the provider's reader trips on it) the line is not valid JSON."""
    size = len(content)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return DataInfo(size, 0, None, "the file is not valid UTF-8")
    if leading_bom:
        text = text.removeprefix(_BOM)
    found: str | None = None
    lines = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        lines += 1
        try:
            record = json.loads(line)
        except ValueError:
            why = " (it starts with a UTF-8 byte-order mark)" if line.startswith(_BOM) else ""
            return DataInfo(size, lines, None, f"line {number}: not valid JSON{why}")
        if not isinstance(record, dict):
            return DataInfo(size, lines, None, f"line {number}: not a JSON object")
        kinds = [name for name, keys in _FORMATS if all(k in record for k in keys)]
        if not kinds:
            return DataInfo(size, lines, None, f"line {number}: no known dataset format")
        if len(kinds) > 1 and kinds[0] != "PREFERENCE":
            return DataInfo(size, lines, None, f"line {number}: matches several formats")
        if found and kinds[0] != found:
            return DataInfo(size, lines, None, f"line {number}: {kinds[0]} after {found} lines")
        found = kinds[0]
    if lines == 0:
        return DataInfo(size, 0, None, "the file has no examples")
    return DataInfo(size, lines, found, None)


def content_facts(content: bytes, *, leading_bom: bool = False) -> dict[str, Any]:
    """What a file's record keeps of its bytes: size, checksum and what inspection finds
    (``leading_bom`` as for ``inspect_jsonl``)."""
    info = inspect_jsonl(content, leading_bom=leading_bom)
    return {
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "lines": info.lines,
        "tokens": info.tokens,
        "format": info.format,
        "error": info.error,
    }


# ---------------------------------------------------------------- jobs


def haystack(*parts: Any) -> str:
    """The text fault rules match against (suffix, model, metadata values, ids, names)."""
    return " ".join(str(p) for p in parts if p not in (None, ""))


def plan_fault_failure(emu: Emulator, kind: JobKind, life: dict[str, Any], hay: str) -> None:
    """At creation: schedule the failure a ``fail_jobs`` rule asks for, if one matches and
    the job's data has not doomed it already."""
    if life["fail"] is not None:
        return
    rule = emu.faults.fail_rule(kind.provider, hay)
    if rule is not None:
        _apply(rule, kind, life, 0.0)


def _apply(rule: FailRule, kind: JobKind, life: dict[str, Any], not_before: float) -> None:
    message = rule.message or (
        "internal error while training; please retry"
        if rule.retryable
        else "the training data was rejected by validation"
    )
    plan_failure(
        life,
        kind,
        retryable=rule.retryable,
        message=message,
        at_progress=rule.at_progress,
        not_before=not_before,
    )


def apply_rules_to_existing(emu: Emulator, kinds: dict[str, JobKind]) -> int:
    """After faults change at run time: jobs still active that a rule matches fail too
    (from now on, never in their past). Answers how many jobs were touched."""
    touched = 0
    now = emu.now()
    for row in emu.store.all(JOB):
        kind = kinds.get(row.provider)
        if kind is None:
            continue
        hay = row.data.get("haystack", "")
        rule = emu.faults.fail_rule(row.provider, hay)
        life = row.data["life"]
        if rule is None or life.get("fail") is not None:
            continue
        snap = snapshot(life, kind, row.created_at, now)
        if snap.terminal:
            continue
        _apply(rule, kind, life, snap.t)
        emu.store.update(row)
        touched += 1
    return touched


def job_files(
    body: dict[str, Any], vet: Callable[[str, str], Row | Response]
) -> tuple[Row, Row | None] | Response:
    """The training file and the optional validation file a create body names, each
    vetted by ``vet(file_id, param)`` (the row, or the provider's refusal)."""
    train = vet(body["training_file"], "training_file")
    if isinstance(train, Response):
        return train
    if not body.get("validation_file"):
        return train, None
    valid = vet(body["validation_file"], "validation_file")
    return valid if isinstance(valid, Response) else (train, valid)


def cancel_job(emu: Emulator, kind: JobKind, row: Row) -> str | None:
    """Ask a job to cancel (once); answers its status instead when it has already ended."""
    snap = job_snapshot(emu, kind, row)
    if snap.terminal:
        return snap.status
    if row.data["life"].get("cancel_at") is None:
        request_cancel(row.data["life"], snap, emu.now())
        emu.store.update(row)
    return None


def job_snapshot(emu: Emulator, kind: JobKind, row: Row, now: float | None = None) -> Snapshot:
    """The job now, with any ``stuck`` fault applied."""
    stuck = emu.faults.stuck_status(kind.provider, row.data.get("haystack", ""))
    return snapshot(
        row.data["life"], kind, row.created_at, emu.now() if now is None else now, stuck=stuck
    )


def listed(emu: Emulator, row: Row, now: float) -> bool:
    """False while the list-lag fault still hides a new job."""
    return row.created_at <= now - emu.faults.config.list_lag_seconds


def steps_between(total: int, count: int) -> list[int]:
    """``count`` steps spread evenly up to ``total`` (checkpoints, metric events)."""
    count = max(0, min(count, total))
    return sorted({max(1, round(total * (i + 1) / count)) for i in range(count)}) if count else []


def loss_at(step: int, total: int, seed: str) -> float:
    """A plausible, deterministic training loss curve."""
    jitter = int(digest(seed, step, n=4), 16) / 0xFFFF * 0.05
    return round(2.2 * math.exp(-2.0 * step / max(total, 1)) + 0.3 + jitter, 4)
