"""The thin HTTP layer every driver shares: endpoints and keys from the environment,
error classification, and retries with backoff that honour ``Retry-After``.

Drivers receive an ``ApiClient`` wrapping an ``httpx.Client`` built here (tests hand
in their own transport). A create passes ``create=True``: it is posted once and only
re-posted after a 429, which proves the provider refused it.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..errors import ConfigError, ErrorKind, ProviderError
from ..log import get as get_logger
from ..redact import register, scrub
from ..retry import CREATE_RATE_LIMIT_RETRY, HTTP_RETRY, Backoff, Failure, retrying
from . import CATALOG

if TYPE_CHECKING:
    from ..catalog import ProviderInfo

log = get_logger("reconciler.http")


def base_url(info: ProviderInfo, env: Mapping[str, str]) -> str:
    """The provider's base URL ending in ``/v1``, accepted with or without it (DESIGN §6).

    With the endpoint's ``version_var`` set (a dated API), it ends in the ``root`` instead
    (``https://RES.openai.azure.com/openai``), the version going in the query string."""
    ep = info.endpoint
    url = (env.get(ep.url_var) or ep.default_url).strip().rstrip("/")
    if not url:
        raise ConfigError(
            f"{ep.url_var} is not set: the {info.name} provider needs the address of its account"
        )
    if not url.startswith(("http://", "https://")):
        # the value is not echoed: a key pasted into the wrong variable must not print
        raise ConfigError(f"{ep.url_var} is not an http(s) URL")
    url = url.removesuffix("/v1")
    if ep.root and not url.endswith(ep.root):
        url += ep.root
    return url if api_version(info, env) else url + "/v1"


def api_version(info: ProviderInfo, env: Mapping[str, str]) -> str | None:
    """The dated API version the environment asks for, where the provider has them."""
    var = info.endpoint.version_var
    return ((env.get(var) or "").strip() or None) if var else None


def auth_headers(info: ProviderInfo, key: str) -> dict[str, str]:
    """The header that carries the key, in the provider's own style."""
    ep = info.endpoint
    return {ep.auth_header: f"{ep.auth_scheme} {key}" if ep.auth_scheme else key}


def api_key(info: ProviderInfo, env: Mapping[str, str]) -> str:
    ep = info.endpoint
    key = (env.get(ep.key_var) or "").strip()
    if not key:
        why = ep.missing or f"the {info.name} provider needs an API key in the environment"
        raise ConfigError(f"{ep.key_var} is not set: {why}")
    register(key)
    return key


def make_http_client(
    info: ProviderInfo,
    env: Mapping[str, str],
    *,
    timeout: float = 60.0,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client for one provider: base URL, key header, fixed query parameters
    (a dated ``api-version``), no redirects followed."""
    version = api_version(info, env)
    return httpx.Client(
        base_url=base_url(info, env) + "/",
        headers={
            **auth_headers(info, api_key(info, env)),
            "User-Agent": f"reconciler/{__version__}",
        },
        params={"api-version": version} if version else None,
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


def transport_error(provider: str, method: str, exc: httpx.TransportError) -> ProviderError:
    """A request that got no answer; ``ambiguous`` when it may have reached the server."""
    if isinstance(exc, httpx.TimeoutException):
        err = ProviderError(
            provider,
            f"no answer in time ({type(exc).__name__})",
            kind=ErrorKind.RETRYABLE,
            ambiguous=method != "GET",
        )
    else:
        # a refused connection never reached the server; anything else may have
        err = ProviderError(
            provider,
            f"connection failed ({type(exc).__name__}: {scrub(str(exc))[:200]})",
            kind=ErrorKind.RETRYABLE,
            ambiguous=method != "GET" and not isinstance(exc, httpx.ConnectError),
        )
    err.__cause__ = exc
    return err


def classify(provider: str, response: httpx.Response) -> ProviderError:
    """Map an HTTP error answer onto an ``ErrorKind``."""
    status = response.status_code
    message = error_message(response)
    if status in (401, 403):
        kind = ErrorKind.AUTH
        info = CATALOG.get(provider)
        var = info.endpoint.key_var if info is not None else "the API key"
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
        self.server_time: float | None = None  # the provider's clock at its last answer

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
        if not retry:
            schedule = replace(schedule, attempts=1)

        def once(_attempt: int) -> httpx.Response | Failure[ProviderError]:
            self.calls += 1
            try:
                response = self.http.request(method, path.lstrip("/"), **kwargs)
            except httpx.TransportError as exc:
                err = transport_error(self.provider, method, exc)
            else:
                self._note_time(response)
                log.debug(
                    "http",
                    provider=self.provider,
                    method=method,
                    path=path,
                    status=response.status_code,
                    request_id=response.headers.get("x-request-id")
                    or response.headers.get("apim-request-id"),  # Azure's
                )
                if response.status_code < 400 or response.status_code in ok:
                    return response
                err = classify(self.provider, response)
                # a 5xx answer to a POST may still have created the object
                err.ambiguous = method != "GET" and err.kind is ErrorKind.RETRYABLE
            self.errors += 1
            may_retry = err.kind is ErrorKind.RATE_LIMITED if create else err.retryable
            return Failure(err, may_retry, err.retry_after)

        def on_retry(failure: Failure[ProviderError], wait: float, attempt: int) -> None:
            log.info(
                "retrying",
                provider=self.provider,
                method=method,
                path=path,
                error=failure.error.message,
                kind=failure.error.kind.value,
                wait_s=round(wait, 2),
                attempt=attempt,
            )

        result = retrying(once, schedule, sleep=self.sleep, on_retry=on_retry)
        if isinstance(result, Failure):
            raise result.error
        return result

    def put_signed(self, url: str, data: bytes, *, what: str) -> None:
        """PUT bytes to a pre-signed URL (often another host): never with our key,
        following redirects, retried on the same schedule as any idempotent call."""
        host = urlsplit(url).hostname or "storage"

        def once(_attempt: int) -> Failure[ProviderError] | None:
            request = self.http.build_request(
                "PUT", url, content=data, timeout=httpx.Timeout(600.0, connect=10.0)
            )
            # the signed URL is often a third-party storage host: our key must not go there
            request.headers.pop("Authorization", None)
            request.headers.pop("api-key", None)
            self.calls += 1
            try:
                response = self.http.send(request, follow_redirects=True)
            except httpx.TransportError as exc:
                err = ProviderError(
                    self.provider,
                    f"{what} to {host} failed ({type(exc).__name__})",
                    kind=ErrorKind.RETRYABLE,
                )
                err.__cause__ = exc
                self.errors += 1
                return Failure(err, True)
            if response.is_success:
                return None
            status = response.status_code
            retryable = status in (408, 429) or status >= 500
            # the URL's signature stays out of the message: host only
            err = ProviderError(
                self.provider,
                f"{what} to {host} refused: {scrub(response.text.strip()[:200])}",
                kind=ErrorKind.RETRYABLE if retryable else ErrorKind.PERMANENT,
                status=status,
            )
            self.errors += 1
            return Failure(err, retryable, parse_retry_after(response.headers))

        result: Failure[ProviderError] | None = retrying(once, self.backoff, sleep=self.sleep)
        if isinstance(result, Failure):
            raise result.error

    def _note_time(self, response: httpx.Response) -> None:
        """The provider's own clock, from the ``Date`` of its answer (lag is measured on it,
        so a step of our clock changes nothing)."""
        value = response.headers.get("date")
        if not value:
            return
        with contextlib.suppress(TypeError, ValueError):
            self.server_time = email.utils.parsedate_to_datetime(value).timestamp()

    def counts(self) -> tuple[int, int]:
        """(calls, errors) so far."""
        return self.calls, self.errors

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
