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
- ``stuck``: ``[{status, match="", provider?}]``: matching jobs never leave ``status`` (one
  their provider's jobs pass through on the way to success).
- A rule may also be a string in the CLI's syntax: ``"STATUS[:MATCH]"`` for ``stuck``,
  ``"MATCH[:permanent|:retryable]"`` for ``fail_jobs``.
- ``seed``: makes every random choice repeatable.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Collection, Mapping
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

    def merged(
        self, changes: dict[str, Any], *, statuses: Mapping[str, Collection[str]]
    ) -> FaultConfig:
        """This config with ``changes`` applied; a FaultError names the first bad entry."""
        current = self.to_json()
        for key in changes:
            if key not in current:
                raise FaultError(key, f"unknown fault option (known: {', '.join(current)})")
        current.update(changes)
        # the one-shot counters are armed only by the request that names them
        for name in ("error_next", "drop_next"):
            current[name] = changes.get(name, 0)
        return FaultConfig.from_json(current, statuses=statuses)

    @classmethod
    def from_json(
        cls, data: dict[str, Any], *, statuses: Mapping[str, Collection[str]]
    ) -> FaultConfig:
        """A config from its JSON form, every key and value checked; ``statuses`` are the
        ones a ``stuck`` rule may hold, by provider (``app.HOLDABLE``)."""
        if not isinstance(data, dict):
            raise FaultError("body", "a JSON object of fault options is required")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise FaultError(str(key), f"unknown fault option (known: {', '.join(known)})")
        out: dict[str, Any] = {}
        for name in ("latency_ms", "spike_ms", "list_lag_seconds"):
            if data.get(name) is not None:
                out[name] = _number(data[name], name, low=0.0)
        for name in ("error_rate", "drop_rate", "spike_rate"):
            if data.get(name) is not None:
                out[name] = _number(data[name], name, low=0.0, high=1.0)
        for name, low in (("error_next", 0), ("drop_next", 0), ("rpm", 1), ("list_total", 0)):
            if data.get(name) is not None:
                out[name] = _integer(data[name], name, low=low)
        if data.get("seed") is not None:
            out["seed"] = _integer(data["seed"], "seed")
        if data.get("drop_mode") is not None:
            if data["drop_mode"] not in DROP_MODES:
                raise FaultError("drop_mode", f"{data['drop_mode']!r} is not one of {DROP_MODES}")
            out["drop_mode"] = data["drop_mode"]
        out["methods"] = tuple(
            _method(m, f"methods[{i}]") for i, m in enumerate(_list(data, "methods"))
        )
        if data.get("path_contains") is not None:
            if not isinstance(data["path_contains"], str):
                raise FaultError("path_contains", "a string is required")
            out["path_contains"] = data["path_contains"] or None
        if data.get("wrong_job_id") is not None:
            if not isinstance(data["wrong_job_id"], bool):
                raise FaultError("wrong_job_id", "true or false is required")
            out["wrong_job_id"] = data["wrong_job_id"]
        vocabulary = statuses
        out["fail_jobs"] = tuple(
            _fail_rule(r, f"fail_jobs[{i}]", vocabulary)
            for i, r in enumerate(_list(data, "fail_jobs"))
        )
        out["stuck"] = tuple(
            _stuck_rule(r, f"stuck[{i}]", vocabulary) for i, r in enumerate(_list(data, "stuck"))
        )
        return cls(**out)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = list(self.methods)
        data["fail_jobs"] = [asdict(r) for r in self.fail_jobs]
        data["stuck"] = [asdict(r) for r in self.stuck]
        return data


class FaultError(ValueError):
    """A fault option that cannot be used; ``field`` names the offending entry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FAIL_MODES = {"permanent": False, "retryable": True}


def parse_stuck(text: str, field: str = "stuck") -> dict[str, str]:
    """``STATUS[:MATCH]`` (the ``--stuck`` syntax, also a bare string in the JSON form):
    jobs whose suffix/model/metadata/id contains MATCH (all jobs without it) stay in STATUS."""
    status, colon, match = text.partition(":")
    if not status.strip() or (colon and not match):
        raise FaultError(field, f"{text!r} is not STATUS or STATUS:MATCH")
    return {"status": status.strip(), "match": match}


def parse_fail(text: str, field: str = "fail_jobs") -> dict[str, Any]:
    """``MATCH[:permanent|:retryable]`` (the ``--fail-jobs`` syntax, also a bare string in
    the JSON form); a MATCH holding ':' needs the object form ``{"match": …}``."""
    match, colon, mode = text.rpartition(":")
    if not colon:
        return {"match": text, "retryable": True}
    if mode not in FAIL_MODES:
        raise FaultError(
            field,
            f"{text!r}: after ':' comes 'permanent' or 'retryable', not {mode!r} "
            "(a match holding ':' needs the form {\"match\": ...})",
        )
    return {"match": match, "retryable": FAIL_MODES[mode]}


def _list(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise FaultError(name, "a list is required")
    return list(value)


def _number(value: Any, name: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise FaultError(name, f"{value!r} is not a number")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise FaultError(name, f"{value!r} is out of range: must be {span}")
    return float(value)


def _integer(value: Any, name: str, *, low: int | None = None) -> int:
    number = _number(value, name)
    if not number.is_integer():
        raise FaultError(name, f"{value!r} is not a whole number")
    if low is not None and number < low:
        raise FaultError(name, f"{value!r} is out of range: must be at least {low}")
    return int(number)


def _method(value: Any, field: str) -> str:
    if not isinstance(value, str) or value.upper() not in HTTP_METHODS:
        raise FaultError(field, f"{value!r} is not an HTTP method ({', '.join(HTTP_METHODS)})")
    return value.upper()


def _object(raw: Any, field: str, cls: type[Any]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise FaultError(field, "each rule is a string or an object")
    allowed = [f.name for f in fields(cls)]
    if unknown := [k for k in raw if k not in allowed]:
        raise FaultError(f"{field}.{unknown[0]}", f"unknown key (known: {', '.join(allowed)})")
    return raw


def _text(raw: dict[str, Any], key: str, field: str, *, optional: bool = False) -> None:
    value = raw.get(key)
    if not (isinstance(value, str) or (optional and value is None)):
        raise FaultError(f"{field}.{key}", f"{value!r} is not a string")


def _provider(raw: dict[str, Any], field: str, vocabulary: Mapping[str, Any]) -> str | None:
    provider = raw.get("provider")
    if provider is not None and provider not in vocabulary:
        raise FaultError(
            f"{field}.provider", f"{provider!r} is not a provider ({', '.join(vocabulary)})"
        )
    return provider


def _fail_rule(raw: Any, field: str, vocabulary: Mapping[str, Any]) -> FailRule:
    rule = parse_fail(raw, field) if isinstance(raw, str) else _object(raw, field, FailRule)
    _text(rule, "match", field, optional="match" not in rule)
    _provider(rule, field, vocabulary)
    _text(rule, "message", field, optional=True)
    if not isinstance(rule.get("retryable", True), bool):
        raise FaultError(f"{field}.retryable", "true or false is required")
    at = rule.get("at_progress", 0.5)
    _number(at, f"{field}.at_progress", low=0.0, high=1.0)
    return FailRule(
        match=rule.get("match") or "",
        provider=rule.get("provider"),
        retryable=rule.get("retryable", True),
        message=rule.get("message"),
        at_progress=float(at),
    )


def _stuck_rule(raw: Any, field: str, vocabulary: Mapping[str, Collection[str]]) -> StuckRule:
    rule = parse_stuck(raw, field) if isinstance(raw, str) else _object(raw, field, StuckRule)
    if "status" not in rule:
        raise FaultError(f"{field}.status", "is required")
    _text(rule, "status", field)
    _text(rule, "match", field, optional="match" not in rule)
    provider = _provider(rule, field, vocabulary)
    status = rule["status"]
    scope = {provider: vocabulary[provider]} if provider else vocabulary
    if not any(status in known for known in scope.values()):
        whose = f"a {provider} job" if provider else "any provider's job"
        held = "; ".join(f"{p}: {', '.join(known)}" for p, known in scope.items())
        raise FaultError(f"{field}.status", f"{status!r} is not a status {whose} can hold ({held})")
    return StuckRule(status=status, match=rule.get("match") or "", provider=provider)


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
