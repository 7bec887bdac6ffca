"""Faults on demand: what the emulator does wrong, and when.

A ``FaultConfig`` is plain data, read from CLI options or ``POST /_emulator/faults``:

- ``latency_ms``: added before every matching provider request.
- ``spike_rate`` / ``spike_ms``: that fraction of matching requests waits ``spike_ms`` more
  (latency spikes; drawn from their own random stream, so other faults stay repeatable).
- ``error_rate``: fraction of matching requests answered 5xx (before any effect).
- ``error_next``: the next N matching requests are answered 5xx (deterministic).
- ``drop_rate`` / ``drop_next``: close the connection without a complete answer;
  ``drop_mode`` "after" (default: the request took effect, the answer is lost — the
  ambiguous case) or "before" (nothing happened).
- ``methods`` / ``path_contains``: which requests the four faults above apply to.
- ``rpm``: requests per (emulated) minute per provider; more are answered 429 with
  ``Retry-After`` and ``x-ratelimit-*`` headers.
- ``list_lag_seconds``: a new job stays out of list answers for this long.
- ``wrong_job_id``: a GET of one job answers with another job's ``id`` (an answer not to
  be trusted blindly).
- ``list_total``: numbered list answers (Mistral's) claim this ``total`` and answer the
  first page whatever page is asked for (null: the truth).
- ``fail_jobs``: ``[{match, provider?, retryable=true, message?, at_progress=0.5}]``:
  jobs whose suffix/model/metadata/id contains ``match`` fail, each provider its way.
- ``stuck``: ``[{status, match="", provider?}]``: matching jobs never leave ``status``.
- ``seed``: makes every random choice repeatable.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DROP_MODES = ("after", "before")


@dataclass(frozen=True)
class FailRule:
    match: str = ""
    provider: str | None = None
    retryable: bool = True
    message: str | None = None
    at_progress: float = 0.5

    def applies(self, provider: str, haystack: str) -> bool:
        return (self.provider in (None, provider)) and self.match in haystack


@dataclass(frozen=True)
class StuckRule:
    status: str
    match: str = ""
    provider: str | None = None

    def applies(self, provider: str, haystack: str) -> bool:
        return (self.provider in (None, provider)) and self.match in haystack


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: float = 0.0
    spike_rate: float = 0.0
    spike_ms: float = 0.0
    error_rate: float = 0.0
    error_next: int = 0
    drop_rate: float = 0.0
    drop_next: int = 0
    drop_mode: str = "after"
    methods: tuple[str, ...] = ()
    path_contains: str | None = None
    rpm: int | None = None
    list_lag_seconds: float = 0.0
    wrong_job_id: bool = False
    list_total: int | None = None
    fail_jobs: tuple[FailRule, ...] = ()
    stuck: tuple[StuckRule, ...] = ()
    seed: int | None = None

    def merged(self, changes: dict[str, Any]) -> FaultConfig:
        """This config with ``changes`` applied; ValueError names the first bad key."""
        current = self.to_json()
        for key in changes:
            if key not in current:
                raise ValueError(f"unknown fault option {key!r} (known: {', '.join(current)})")
        current.update(changes)
        # the one-shot counters are armed only by the request that names them
        for name in ("error_next", "drop_next"):
            current[name] = changes.get(name, 0)
        return FaultConfig.from_json(current)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault option {unknown[0]!r} (known: {', '.join(known)})")
        out: dict[str, Any] = {}
        for name in (
            "latency_ms",
            "spike_rate",
            "spike_ms",
            "error_rate",
            "drop_rate",
            "list_lag_seconds",
        ):
            if data.get(name) is not None:
                out[name] = _number(data[name], name)
        for name in ("error_rate", "drop_rate", "spike_rate"):
            if not 0.0 <= out.get(name, 0.0) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("error_next", "drop_next"):
            if data.get(name) is not None:
                out[name] = int(_number(data[name], name))
        if data.get("rpm") is not None:
            out["rpm"] = int(_number(data["rpm"], "rpm"))
            if out["rpm"] < 1:
                raise ValueError("rpm must be at least 1 (null: no limit)")
        if data.get("drop_mode") is not None:
            if data["drop_mode"] not in DROP_MODES:
                raise ValueError(f"drop_mode must be one of {DROP_MODES}")
            out["drop_mode"] = data["drop_mode"]
        if data.get("methods"):
            out["methods"] = tuple(str(m).upper() for m in data["methods"])
        if data.get("path_contains"):
            out["path_contains"] = str(data["path_contains"])
        if data.get("seed") is not None:
            out["seed"] = int(data["seed"])
        out["wrong_job_id"] = bool(data.get("wrong_job_id"))
        if data.get("list_total") is not None:
            out["list_total"] = int(_number(data["list_total"], "list_total"))
        out["fail_jobs"] = tuple(
            _rule(FailRule, r, "fail_jobs") for r in data.get("fail_jobs") or ()
        )
        out["stuck"] = tuple(_rule(StuckRule, r, "stuck") for r in data.get("stuck") or ())
        return cls(**out)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = list(self.methods)
        data["fail_jobs"] = [asdict(r) for r in self.fail_jobs]
        data["stuck"] = [asdict(r) for r in self.stuck]
        return data


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number")
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number") from exc


def _rule(cls: type[Any], raw: Any, name: str) -> Any:
    if isinstance(raw, str):  # a bare string is a match (fail_jobs) or a status (stuck)
        raw = {"match": raw} if cls is FailRule else {"status": raw}
    if not isinstance(raw, dict):
        raise ValueError(f"{name}: each rule is an object")
    allowed = {f.name for f in fields(cls)}
    if unknown := sorted(set(raw) - allowed):
        raise ValueError(f"{name}: unknown key {unknown[0]!r} (known: {', '.join(allowed)})")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from exc


@dataclass
class Decision:
    """What to do with one request."""

    latency: float = 0.0  # real seconds to wait first
    error: int | None = None  # answer this 5xx status
    drop: str | None = None  # "before" or "after"
    retry_after: float | None = None  # emulated seconds until a slot frees (429)
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # emulated seconds until the window is full again


@dataclass
class Faults:
    """The live fault state: config, seeded randomness, rate windows, counters."""

    config: FaultConfig = field(default_factory=FaultConfig)
    initial: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._spike_rng = random.Random(self.config.seed)
        self._windows: dict[str, deque[float]] = {}
        self._error_next = self.config.error_next
        self._drop_next = self.config.drop_next

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            if config.seed != self.config.seed or config.rpm != self.config.rpm:
                self._windows.clear()
            if config.seed is not None and config.seed != self.config.seed:
                self._rng = random.Random(config.seed)
                self._spike_rng = random.Random(config.seed)
            self.config = config
            self._error_next = config.error_next
            self._drop_next = config.drop_next

    def reset(self) -> None:
        """Back to the startup configuration, with fresh randomness and windows."""
        with self._lock:
            self.config = self.initial
            self._rng = random.Random(self.initial.seed)
            self._spike_rng = random.Random(self.initial.seed)
            self._windows.clear()
            self._error_next = self.initial.error_next
            self._drop_next = self.initial.drop_next

    def decide(self, provider: str, method: str, path: str, now: float) -> Decision:
        """The faults for one provider request; draws randomness in request order."""
        with self._lock:
            cfg = self.config
            decision = Decision()
            if cfg.rpm is not None:
                window = self._windows.setdefault(provider, deque())
                while window and window[0] <= now - 60.0:
                    window.popleft()
                decision.limit = cfg.rpm
                if len(window) >= cfg.rpm:
                    decision.retry_after = window[0] + 60.0 - now
                    decision.remaining = 0
                    decision.reset = decision.retry_after
                    return decision
                window.append(now)
                decision.remaining = cfg.rpm - len(window)
                decision.reset = window[0] + 60.0 - now
            if cfg.methods and method.upper() not in cfg.methods:
                return decision
            if cfg.path_contains and cfg.path_contains not in path:
                return decision
            decision.latency = cfg.latency_ms / 1000.0
            if cfg.spike_rate and self._spike_rng.random() < cfg.spike_rate:
                decision.latency += cfg.spike_ms / 1000.0
            # draw both numbers every time, so one fault's rate never shifts the other's
            error_draw, drop_draw = self._rng.random(), self._rng.random()
            if self._error_next > 0 or error_draw < cfg.error_rate:
                self._error_next = max(0, self._error_next - 1)
                decision.error = 503 if self._rng.random() < 0.5 else 500
            elif self._drop_next > 0 or drop_draw < cfg.drop_rate:
                self._drop_next = max(0, self._drop_next - 1)
                decision.drop = cfg.drop_mode
            return decision

    def fail_rule(self, provider: str, haystack: str) -> FailRule | None:
        return next((r for r in self.config.fail_jobs if r.applies(provider, haystack)), None)

    def stuck_status(self, provider: str, haystack: str) -> str | None:
        rule = next((r for r in self.config.stuck if r.applies(provider, haystack)), None)
        return rule.status if rule else None
