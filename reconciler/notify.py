"""Webhook notifications when a job reaches a terminal state (Slack-compatible body).

Configured without code: ``RECONCILER_WEBHOOK_URL`` in the environment. A webhook URL
is a secret (Slack's path is the credential), so only ``scheme://host`` is ever logged
and the full URL is registered with ``redact``. ``Notifier.send`` never raises: a lost
notification is a warning, never a reason for the daemon to stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import __version__
from .clock import steady_sleep
from .errors import ConfigError
from .log import get as get_logger
from .providers.http import parse_retry_after
from .redact import register, scrub
from .retry import WEBHOOK_RETRY, Backoff, Failure, retrying

log = get_logger("reconciler.notify")

URL_VAR = "RECONCILER_WEBHOOK_URL"
# few tries and short waits: the daemon's loop waits while a notification is sent
STATUS_WORDS = {"succeeded": "Succeeded", "failed": "Failed", "cancelled": "Cancelled"}
MAX_ERROR = 500  # characters of a provider's error message kept in a notification


@dataclass(frozen=True)
class JobFinished:
    """One job's current attempt reached a terminal phase."""

    name: str
    provider: str
    phase: str  # "succeeded" | "failed" | "cancelled" (a terminal ``Phase`` works too)
    remote_id: str
    fine_tuned_model: str | None = None
    error: str | None = None
    git_commit: str | None = None
    spec_path: str | None = None

    def __post_init__(self) -> None:
        if str(self.phase) not in STATUS_WORDS:
            raise ValueError(f"JobFinished.phase must be terminal, not {self.phase!r}")


def _text(value: str, limit: int = 300) -> str:
    """One line, secrets scrubbed, escaped for Slack's mrkdwn (``& < >`` only)."""
    line = " ".join(scrub(value).split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def short_commit(recorded: str) -> str:
    """A recorded commit with its hash cut to 12 characters and whatever follows it
    (``-dirty``: the spec file had uncommitted changes) kept as recorded."""
    head, sep, mark = recorded.partition("-")
    if len(head) > 12 and all(c in "0123456789abcdefABCDEF" for c in head):
        head = head[:12]
    return head + sep + mark


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def slack_body(event: JobFinished) -> dict[str, Any]:
    """A Slack incoming-webhook body: a one-line ``text`` and plain section blocks."""
    word = STATUS_WORDS[str(event.phase)]
    name, provider, job_id = _text(event.name), _text(event.provider), _text(event.remote_id)
    summary = f"{word}: {name} ({provider} job {job_id})"
    if event.fine_tuned_model:
        summary += f", model {_text(event.fine_tuned_model)}"
    elif event.error:
        summary += f": {_text(event.error, 200)}"
    fields = [_field("Job", name), _field("Provider", provider), _field("Provider job", job_id)]
    if event.fine_tuned_model:
        fields.append(_field("Model", _text(event.fine_tuned_model)))
    if event.git_commit:
        fields.append(_field("Commit", _text(short_commit(event.git_commit))))
    if event.spec_path:
        fields.append(_field("Spec", _text(event.spec_path)))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{word}*: fine-tune {name}"}},
        {"type": "section", "fields": fields},
    ]
    if event.error:
        error = _text(event.error, MAX_ERROR)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n{error}"}})
    return {"text": summary, "blocks": blocks}


def webhook_origin(url: str) -> str:
    """``scheme://host[:port]`` of a webhook URL: the only part of it safe to log."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(invalid URL)"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


class Notifier:
    """Posts ``JobFinished`` events to one webhook, with a few retries."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = steady_sleep,
        backoff: Backoff = WEBHOOK_RETRY,
    ) -> None:
        # whatever echoes the URL or its path (an exception, a debug line) gets scrubbed
        register(url)
        with contextlib.suppress(httpx.InvalidURL):
            register(httpx.URL(url).raw_path.decode("ascii", "replace"))
        self.url = url
        self.origin = webhook_origin(url)
        self.timeout = timeout
        self.sleep = sleep
        self.backoff = backoff
        self._own_client = client is None
        self.client = client or httpx.Client(
            headers={"User-Agent": f"reconciler/{__version__}"}, follow_redirects=False
        )

    def send(self, event: JobFinished) -> bool:
        """Post one notification; True when the webhook accepted it. Never raises."""
        try:
            return self._send(event)
        except Exception as exc:  # a notification must never take the daemon down
            log.warning(
                "notification failed",
                job=event.name,
                webhook=self.origin,
                error=f"{type(exc).__name__}: {scrub(str(exc))[:200]}",
            )
            return False

    def _send(self, event: JobFinished) -> bool:
        body = slack_body(event)

        tries = 0

        def once(attempt: int) -> bool | Failure[str]:
            nonlocal tries
            tries = attempt
            try:
                response = self.client.post(self.url, json=body, timeout=self.timeout)
            except httpx.TransportError as exc:  # timeouts included
                return Failure(f"{type(exc).__name__}: {scrub(str(exc))[:200]}", True)
            status = response.status_code
            if status < 300:
                return True
            detail = scrub(response.text.strip())[:200] or response.reason_phrase
            retry_after = parse_retry_after(response.headers) if status in (429, 503) else None
            return Failure(
                f"HTTP {status}: {detail}", status in (408, 429) or status >= 500, retry_after
            )

        def on_retry(failure: Failure[str], wait: float, attempt: int) -> None:
            log.info(
                "notification retry",
                job=event.name,
                webhook=self.origin,
                error=failure.error,
                wait_s=round(wait, 2),
                attempt=attempt,
            )

        result = retrying(once, self.backoff, sleep=self.sleep, on_retry=on_retry)
        if isinstance(result, Failure):
            log.warning(
                "notification failed",
                job=event.name,
                webhook=self.origin,
                error=result.error,
                attempts=tries,
            )
            return False
        log.info("notified", job=event.name, phase=event.phase, webhook=self.origin)
        return True

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def notifier_from_env(env: Mapping[str, str]) -> Notifier | None:
    """A notifier for ``RECONCILER_WEBHOOK_URL``; None when it is unset or empty."""
    url = (env.get(URL_VAR) or "").strip()
    if not url:
        return None
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        # the value is not echoed: it is a secret, and may be one pasted in the wrong place
        raise ConfigError(f"{URL_VAR} is not an http(s) URL")
    return Notifier(url)
