"""Backoff schedules, as data, in one place.

A schedule says how many times to try, how long to wait between tries (exponential
with full jitter), and the longest wait it will honour from a ``Retry-After``.
Callers pass ``sleep`` and ``rand`` in, so tests run without a clock. ``retrying`` is
the one loop that applies a schedule: the HTTP layer, the signed-URL upload and the
webhooks all go through it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 6  # total tries, the first included
    base: float = 0.5  # seconds before the second try (before jitter)
    factor: float = 2.0
    cap: float = 30.0  # longest computed wait
    max_retry_after: float = 120.0  # a Retry-After above this is clamped to it

    def delay(self, retry: int, rand: float | None = None) -> float:
        """Wait before retry number ``retry`` (1-based): full jitter over the exponential."""
        ceiling = min(self.cap, self.base * self.factor ** (retry - 1))
        r = random.random() if rand is None else rand
        # never zero: a storm of immediate retries is what backoff exists to avoid
        return max(ceiling * r, ceiling * 0.1)

    def wait_for(self, retry: int, retry_after: float | None, rand: float | None = None) -> float:
        """The wait before retry ``retry``: the server's Retry-After when it gave one."""
        if retry_after is not None and retry_after >= 0:
            r = random.random() if rand is None else rand
            # a little jitter on top, so many clients told "1 s" do not return together
            return min(retry_after, self.max_retry_after) + 0.1 * r
        return self.delay(retry, rand)


# HTTP calls that are safe to repeat (GET, list, cancel, upload with content dedup)
HTTP_RETRY = Backoff()
# A create is posted once; only a 429 (a refusal) is waited out and re-posted
CREATE_RATE_LIMIT_RETRY = Backoff(attempts=8, base=1.0, cap=60.0)
# Webhook notifications: a few quick tries, never long enough to stall the daemon
WEBHOOK_RETRY = Backoff(attempts=3, base=1.0, cap=10.0, max_retry_after=30.0)
# Re-creating a failed job whose cause is retryable (DESIGN §3 "retry, with backoff")
ATTEMPT_RETRY = Backoff(attempts=1_000_000, base=30.0, factor=2.0, cap=3600.0)


def attempt_retry_delay(failed_attempts: int) -> float:
    """Seconds to wait after the n-th failed attempt before creating the next (no jitter)."""
    return min(
        ATTEMPT_RETRY.cap, ATTEMPT_RETRY.base * ATTEMPT_RETRY.factor ** max(0, failed_attempts - 1)
    )


@dataclass(frozen=True)
class Failure(Generic[E]):
    """One try that did not succeed: what went wrong, and whether trying again may help."""

    error: E
    retryable: bool
    retry_after: float | None = None  # the server's Retry-After, in seconds


def retrying(
    try_once: Callable[[int], T | Failure[E]],
    schedule: Backoff,
    *,
    sleep: Callable[[float], None],
    on_retry: Callable[[Failure[E], float, int], None] | None = None,
) -> T | Failure[E]:
    """Call ``try_once(attempt)`` until it succeeds, fails for good, or ``schedule`` runs
    out; returns the success or the last failure. The one retry loop of the project."""
    for attempt in range(1, schedule.attempts + 1):
        result = try_once(attempt)
        if not isinstance(result, Failure):
            return result
        if not result.retryable or attempt == schedule.attempts:
            return result
        wait = schedule.wait_for(attempt, result.retry_after)
        if on_retry is not None:
            on_retry(result, wait, attempt)
        sleep(wait)
    raise AssertionError("a schedule has at least one attempt")  # pragma: no cover
