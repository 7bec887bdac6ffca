"""The shared HTTP layer: endpoints and keys from the environment, error words and
classification, Retry-After, and the retry rules of ApiClient. No network."""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterator

import httpx
import pytest

from reconciler import redact
from reconciler.errors import ConfigError, ErrorKind, ProviderError
from reconciler.providers import CATALOG
from reconciler.providers.http import (
    ApiClient,
    api_key,
    base_url,
    classify,
    error_message,
    make_http_client,
    parse_retry_after,
)
from reconciler.retry import Backoff

SECRET = "sk-test-SENTINEL-0123456789abcdef"


@pytest.fixture(autouse=True)
def _forget_keys() -> Iterator[None]:
    yield
    redact.clear()


# ---------------------------------------------------------------- endpoints and keys

HOSTS = {
    "together": "https://api.together.ai",
    "openai": "https://api.openai.com",
    "mistral": "https://api.mistral.ai",
}


@pytest.mark.parametrize("provider", sorted(HOSTS))
@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "  "])
def test_base_url_with_or_without_v1(provider: str, suffix: str) -> None:
    var = CATALOG[provider].endpoint.url_var
    assert base_url(CATALOG[provider], {var: HOSTS[provider] + suffix}) == HOSTS[provider] + "/v1"


@pytest.mark.parametrize("provider", sorted(HOSTS))
def test_base_url_default_and_empty(provider: str) -> None:
    var = CATALOG[provider].endpoint.url_var
    assert base_url(CATALOG[provider], {}) == HOSTS[provider] + "/v1"
    assert base_url(CATALOG[provider], {var: ""}) == HOSTS[provider] + "/v1"


@pytest.mark.parametrize("provider", sorted(HOSTS))
@pytest.mark.parametrize("path", ["", "/", "/v1", "/v1/"])
def test_base_url_emulator_prefix(provider: str, path: str) -> None:
    var = CATALOG[provider].endpoint.url_var
    got = base_url(CATALOG[provider], {var: f"http://127.0.0.1:8765/{provider}{path}"})
    assert got == f"http://127.0.0.1:8765/{provider}/v1"


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="TOGETHER_BASE_URL"):
        base_url(CATALOG["together"], {"TOGETHER_BASE_URL": "api.together.ai"})


@pytest.mark.parametrize("provider", sorted(HOSTS))
def test_client_paths_join_under_v1(provider: str) -> None:
    ep = CATALOG[provider].endpoint
    env = {ep.key_var: SECRET, ep.url_var: HOSTS[provider]}
    with make_http_client(CATALOG[provider], env) as client:
        assert str(client.build_request("GET", "files").url) == HOSTS[provider] + "/v1/files"
        assert client.headers["Authorization"] == f"Bearer {SECRET}"
        assert client.follow_redirects is False


@pytest.mark.parametrize("provider", sorted(HOSTS))
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_key_names_the_variable(provider: str, value: str | None) -> None:
    var = CATALOG[provider].endpoint.key_var
    env = {} if value is None else {var: value}
    with pytest.raises(ConfigError, match=var):
        api_key(CATALOG[provider], env)
    with pytest.raises(ConfigError, match=var):
        make_http_client(CATALOG[provider], env)


def test_key_is_needed_only_for_its_provider() -> None:
    assert api_key(CATALOG["together"], {"TOGETHER_API_KEY": f" {SECRET} "}) == SECRET


def test_reading_a_key_registers_it_for_scrubbing() -> None:
    api_key(CATALOG["openai"], {"OPENAI_API_KEY": SECRET})
    assert redact.scrub(f"header Bearer {SECRET}") == f"header Bearer {redact.MASK}"


# ---------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),  # ms wins
        ({"retry-after-ms": "soon", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "whenever"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers)) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_750_000_000.0
    future = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": future}), now=now) == 30.0
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": past}), now=now) == 0.0


# ---------------------------------------------------------------- error words and kinds


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://x.test/v1/a"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"json": {"error": {"message": "bad model", "type": "invalid_request_error"}}},
            "bad model",
        ),
        ({"json": {"error": "plain words"}}, "plain words"),
        ({"json": {"message": "Model not supported"}}, "Model not supported"),
        ({"json": {"detail": "Not Found"}}, "Not Found"),
        (
            {
                "json": {
                    "detail": [
                        {"loc": ["body", "model"], "msg": "field required", "type": "missing"},
                        {"loc": ["body", "hyperparameters", "n_epochs"], "msg": "too big"},
                    ]
                }
            },
            "model: field required; hyperparameters.n_epochs: too big",
        ),
        ({"text": "upstream connect error\n"}, "upstream connect error"),
        ({"text": ""}, "Bad Request"),
    ],
)
def test_error_message_shapes(kwargs: dict[str, object], expected: str) -> None:
    assert error_message(_response(400, **kwargs)) == expected


def test_error_message_is_bounded() -> None:
    assert len(error_message(_response(500, text="x" * 5000))) <= 300


def test_error_message_scrubs_a_registered_key() -> None:
    redact.register(SECRET)
    for kwargs in (
        {"json": {"error": {"message": f"Invalid key {SECRET}"}}},
        {"json": {"detail": [{"loc": ["header"], "msg": f"bad {SECRET}"}]}},
        {"text": f"denied for {SECRET}"},
    ):
        message = error_message(_response(401, **kwargs))
        assert SECRET not in message and redact.MASK in message


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ErrorKind.PERMANENT),
        (401, ErrorKind.AUTH),
        (402, ErrorKind.PERMANENT),
        (403, ErrorKind.AUTH),
        (404, ErrorKind.NOT_FOUND),
        (408, ErrorKind.RETRYABLE),
        (409, ErrorKind.PERMANENT),
        (422, ErrorKind.PERMANENT),
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.RETRYABLE),
        (502, ErrorKind.RETRYABLE),
        (503, ErrorKind.RETRYABLE),
        (504, ErrorKind.RETRYABLE),
    ],
)
def test_classify(status: int, kind: ErrorKind) -> None:
    err = classify("together", _response(status, json={"error": {"message": "m"}}))
    assert err.kind is kind and err.status == status and err.provider == "together"


@pytest.mark.parametrize("provider", sorted(HOSTS))
def test_auth_error_names_the_variable_not_the_key(provider: str) -> None:
    redact.register(SECRET)
    err = classify(provider, _response(401, json={"error": {"message": f"bad key {SECRET}"}}))
    assert CATALOG[provider].endpoint.key_var in str(err) and SECRET not in str(err)


def test_retry_after_kept_for_429_and_503_only() -> None:
    headers = {"Retry-After": "4"}
    assert classify("openai", _response(429, headers=headers)).retry_after == 4.0
    assert classify("openai", _response(503, headers=headers)).retry_after == 4.0
    assert classify("openai", _response(500, headers=headers)).retry_after is None


# ---------------------------------------------------------------- ApiClient retries


def _api(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[ApiClient, list[float]]:
    sleeps: list[float] = []
    http = httpx.Client(base_url="https://api.test/v1/", transport=httpx.MockTransport(handler))
    api = ApiClient(
        "mistral",
        http,
        sleep=sleeps.append,
        backoff=Backoff(attempts=3),
        create_backoff=Backoff(attempts=4),
    )
    return api, sleeps


def _sequence(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(responses)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


def test_get_retries_then_raises_the_last_error() -> None:
    handler = _sequence(httpx.Response(500, text="boom"))
    api, sleeps = _api(handler)
    with pytest.raises(ProviderError) as info:
        api.request("GET", "jobs")
    assert len(handler.seen) == 3 and len(sleeps) == 2  # type: ignore[attr-defined]
    assert info.value.kind is ErrorKind.RETRYABLE and info.value.ambiguous is False
    assert api.calls == 3 and api.errors == 3


def test_permanent_errors_are_not_retried() -> None:
    handler = _sequence(httpx.Response(400, json={"message": "bad"}))
    api, sleeps = _api(handler)
    with pytest.raises(ProviderError, match="bad"):
        api.request("POST", "jobs", json={})
    assert len(handler.seen) == 1 and sleeps == []  # type: ignore[attr-defined]


def test_connect_error_on_post_is_not_ambiguous() -> None:
    handler = _sequence(httpx.ConnectError("refused"))
    api, _ = _api(handler)
    with pytest.raises(ProviderError) as info:
        api.request("POST", "jobs", create=True)
    assert info.value.ambiguous is False and len(handler.seen) == 1  # type: ignore[attr-defined]


def test_dropped_connection_on_create_is_ambiguous_and_not_reposted() -> None:
    handler = _sequence(httpx.RemoteProtocolError("server hung up"))
    api, sleeps = _api(handler)
    with pytest.raises(ProviderError) as info:
        api.request("POST", "jobs", create=True)
    assert info.value.ambiguous is True and len(handler.seen) == 1 and sleeps == []  # type: ignore[attr-defined]


def test_create_gives_up_after_its_rate_limit_budget() -> None:
    handler = _sequence(httpx.Response(429, headers={"Retry-After": "2"}))
    api, sleeps = _api(handler)
    with pytest.raises(ProviderError) as info:
        api.request("POST", "jobs", create=True)
    assert info.value.kind is ErrorKind.RATE_LIMITED and info.value.ambiguous is False
    assert len(handler.seen) == 4 and len(sleeps) == 3  # type: ignore[attr-defined]
    assert all(2.0 <= s <= 2.1 for s in sleeps)


def test_ok_statuses_are_returned_to_the_caller() -> None:
    handler = _sequence(httpx.Response(409, json={"file_id": "f"}))
    api, _ = _api(handler)
    assert api.request("POST", "files", ok=(409,)).status_code == 409


def test_retry_false_sends_once() -> None:
    handler = _sequence(httpx.Response(503))
    api, sleeps = _api(handler)
    with pytest.raises(ProviderError):
        api.request("GET", "jobs", retry=False)
    assert len(handler.seen) == 1 and sleeps == []  # type: ignore[attr-defined]


def test_json_answer_that_is_not_json() -> None:
    api, _ = _api(_sequence(httpx.Response(200, text="<html>")))
    with pytest.raises(ProviderError, match="not JSON"):
        api.json("GET", "jobs")


def test_leading_slash_stays_under_the_base_path() -> None:
    handler = _sequence(httpx.Response(200, json={}))
    api, _ = _api(handler)
    api.json("GET", "/jobs")
    assert str(handler.seen[0].url) == "https://api.test/v1/jobs"  # type: ignore[attr-defined]
