"""The thin HTTP layer every driver shares: endpoints and keys from the environment,
error classification, and retries with backoff that honour ``Retry-After``.

Drivers receive an ``ApiClient`` wrapping an ``httpx.Client`` built here (tests hand
in their own transport). A create passes ``create=True``: it is posted once and only
re-posted after a 429, which proves the provider refused it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .. import __version__
from ..errors import ConfigError, ErrorKind, ProviderError
from ..log import get as get_logger
from ..redact import register, scrub
from ..retry import CREATE_RATE_LIMIT_RETRY, HTTP_RETRY, Backoff

log = get_logger("reconciler.http")


@dataclass(frozen=True)
class Endpoint:
    key_var: str
    url_var: str
    default_url: str


ENDPOINTS: dict[str, Endpoint] = {
    "together": Endpoint("TOGETHER_API_KEY", "TOGETHER_BASE_URL", "https://api.together.ai/v1"),
    "openai": Endpoint("OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
    "mistral": Endpoint("MISTRAL_API_KEY", "MISTRAL_BASE_URL", "https://api.mistral.ai/v1"),
}


def base_url(provider: str, env: Mapping[str, str]) -> str:
    """The provider's base URL ending in ``/v1``, accepted with or without it (DESIGN §6)."""
    ep = ENDPOINTS[provider]
    url = (env.get(ep.url_var) or ep.default_url).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        # the value is not echoed: a key pasted into the wrong variable must not print
        raise ConfigError(f"{ep.url_var} is not an http(s) URL")
    if not url.endswith("/v1"):
        url += "/v1"
    return url


def api_key(provider: str, env: Mapping[str, str]) -> str:
    ep = ENDPOINTS[provider]
    key = (env.get(ep.key_var) or "").strip()
    if not key:
        raise ConfigError(
            f"{ep.key_var} is not set: the {provider} provider needs an API key in the environment"
        )
    register(key)
    return key


def make_http_client(
    provider: str,
    env: Mapping[str, str],
    *,
    timeout: float = 60.0,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client for one provider: base URL, bearer key, no redirects followed."""
    return httpx.Client(
        base_url=base_url(provider, env) + "/",
        headers={
            "Authorization": f"Bearer {api_key(provider, env)}",
            "User-Agent": f"reconciler/{__version__}",
        },
        timeout=httpx.Timeout(timeout, connect=10.0),
        follow_redirects=False,
        transport=transport,
    )


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_message(response: httpx.Response) -> str:
    """The provider's own words from an error body, whatever shape it uses."""
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text.strip()
        return scrub(text)[:300] if text else response.reason_phrase
    message: Any = body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail") or inner
        elif isinstance(inner, str):
            message = inner
        if "detail" in body and not body.get("error"):
            message = body["detail"]
        if isinstance(message, list):  # pydantic-style detail lists (Mistral 422)
            parts = []
            for item in message[:3]:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg")))
                else:
                    parts.append(str(item))
            message = "; ".join(parts)
    return scrub(str(message))[:300]


def classify(provider: str, response: httpx.Response) -> ProviderError:
    """Map an HTTP error answer onto an ``ErrorKind``."""
    status = response.status_code
    message = error_message(response)
    if status in (401, 403):
        kind = ErrorKind.AUTH
        var = ENDPOINTS[provider].key_var if provider in ENDPOINTS else "the API key"
        message = f"authentication failed, check {var}: {message}"
    elif status == 404:
        kind = ErrorKind.NOT_FOUND
    elif status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status == 408 or status >= 500:
        kind = ErrorKind.RETRYABLE
    else:
        kind = ErrorKind.PERMANENT
    return ProviderError(
        provider,
        message,
        kind=kind,
        status=status,
        retry_after=parse_retry_after(response.headers) if status in (429, 503) else None,
    )


class ApiClient:
    """Requests with classification and retry; counts calls for metrics and benchmarks."""

    def __init__(
        self,
        provider: str,
        http: httpx.Client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff = HTTP_RETRY,
        create_backoff: Backoff = CREATE_RATE_LIMIT_RETRY,
    ) -> None:
        self.provider = provider
        self.http = http
        self.sleep = sleep
        self.backoff = backoff
        self.create_backoff = create_backoff
        self.calls = 0
        self.errors = 0

    def request(
        self,
        method: str,
        path: str,
        *,
        create: bool = False,
        retry: bool = True,
        ok: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; raise ``ProviderError`` on failure after the retries allowed.

        ``ok`` lists extra status codes the caller handles itself (e.g. a 409 dedup).
        """
        schedule = self.create_backoff if create else self.backoff
        tries = schedule.attempts if retry else 1
        for attempt in range(1, tries + 1):
            self.calls += 1
            try:
                response = self.http.request(method, path.lstrip("/"), **kwargs)
            except httpx.TimeoutException as exc:
                err = ProviderError(
                    self.provider,
                    f"no answer in time ({type(exc).__name__})",
                    kind=ErrorKind.RETRYABLE,
                    ambiguous=method != "GET",
                )
            except httpx.TransportError as exc:
                # a refused connection never reached the server; anything else may have
                ambiguous = method != "GET" and not isinstance(exc, httpx.ConnectError)
                err = ProviderError(
                    self.provider,
                    f"connection failed ({type(exc).__name__}: {scrub(str(exc))[:200]})",
                    kind=ErrorKind.RETRYABLE,
                    ambiguous=ambiguous,
                )
            else:
                log.debug(
                    "http",
                    provider=self.provider,
                    method=method,
                    path=path,
                    status=response.status_code,
                    request_id=response.headers.get("x-request-id"),
                )
                if response.status_code < 400 or response.status_code in ok:
                    return response
                err = classify(self.provider, response)
                # a 5xx answer to a POST may still have created the object
                err.ambiguous = method != "GET" and err.kind is ErrorKind.RETRYABLE
            self.errors += 1
            may_retry = err.kind is ErrorKind.RATE_LIMITED if create else err.retryable
            if not may_retry or attempt == tries:
                raise err
            wait = schedule.wait_for(attempt, err.retry_after)
            log.info(
                "retrying",
                provider=self.provider,
                method=method,
                path=path,
                error=err.message,
                kind=err.kind.value,
                wait_s=round(wait, 2),
                attempt=attempt,
            )
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                self.provider,
                f"{method} {path}: answer is not JSON",
                kind=ErrorKind.RETRYABLE,
                status=response.status_code,
                # a 2xx to a POST we cannot read may still have created something
                ambiguous=method != "GET",
            ) from exc

    def close(self) -> None:
        self.http.close()
