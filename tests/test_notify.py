"""Webhook notifications: the Slack body, retries and giving up without raising, and the
webhook URL kept out of logs. The webhook is a respx router handed in as a transport."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
import structlog

from reconciler import log, redact
from reconciler.errors import ConfigError
from reconciler.model import Phase
from reconciler.notify import JobFinished, Notifier, notifier_from_env, slack_body

# a Slack-shaped URL whose path is the secret; distinctive so a leak is easy to spot
SECRET_PATH = "/services/T0SENTINEL/B0SENTINEL/xoxSENTINELsecret123"
URL = "https://hooks.slack.test" + SECRET_PATH
KEY = "tgp_v1_SENTINEL-notify-0123456789"

SUCCEEDED = JobFinished(
    name="support-bot",
    provider="together",
    phase="succeeded",
    remote_id="ft-123",
    fine_tuned_model="acct/Meta-Llama-3.1-8B-support-bot-1a2b",
    git_commit="0123456789abcdef0123",
    spec_path="specs/support-bot.yaml",
)
FAILED = JobFinished(
    name="support-bot",
    provider="openai",
    phase=Phase.FAILED,
    remote_id="ftjob-abc",
    error="training file\ninvalid <line 3> & more",
)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    stream = io.StringIO()
    log.configure(verbose=1, stream=stream)
    try:
        yield stream
    finally:
        structlog.configure(**saved)


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False)


def notifier(router: respx.MockRouter, sleeps: list[float]) -> Notifier:
    client = httpx.Client(transport=httpx.MockTransport(router.handler))
    return Notifier(URL, client=client, sleep=sleeps.append)


def test_body_for_a_success() -> None:
    body = slack_body(SUCCEEDED)
    assert body["text"] == (
        "Succeeded: support-bot (together job ft-123), "
        "model acct/Meta-Llama-3.1-8B-support-bot-1a2b"
    )
    assert "\n" not in body["text"]
    head, details = body["blocks"]
    assert head == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Succeeded*: fine-tune support-bot"},
    }
    assert details["type"] == "section"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in details["fields"]}
    assert fields == {
        "*Job*": "support-bot",
        "*Provider*": "together",
        "*Provider job*": "ft-123",
        "*Model*": "acct/Meta-Llama-3.1-8B-support-bot-1a2b",
        "*Commit*": "0123456789ab",
        "*Spec*": "specs/support-bot.yaml",
    }
    assert all(f["type"] == "mrkdwn" for f in details["fields"])
    json.dumps(body)  # plain JSON, nothing exotic


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        ("0123456789abcdef0123456789abcdef01234567-dirty", "0123456789ab-dirty"),
        ("0123456789abcdef0123456789abcdef01234567", "0123456789ab"),
        ("abc1234-dirty", "abc1234-dirty"),
        ("not-a-commit", "not-a-commit"),
    ],
)
def test_the_commit_is_shown_with_its_dirty_mark(recorded: str, shown: str) -> None:
    body = slack_body(dataclasses.replace(SUCCEEDED, git_commit=recorded))
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert f"*Commit*\n{shown}" in fields


def test_body_for_a_failure_is_one_line_escaped_and_scrubbed() -> None:
    redact.register(KEY)
    event = dataclasses.replace(FAILED, error=f"{FAILED.error} key={KEY}")
    body = slack_body(event)
    assert body["text"] == (
        "Failed: support-bot (openai job ftjob-abc): "
        "training file invalid &lt;line 3&gt; &amp; more key=***"
    )
    error_block = body["blocks"][-1]
    assert error_block["text"]["text"].startswith("*Error*\ntraining file invalid &lt;line 3&gt;")
    assert KEY not in json.dumps(body)
    # no model, commit or spec: those fields are left out, not sent empty
    assert len(body["blocks"][1]["fields"]) == 3


def test_phase_must_be_terminal() -> None:
    with pytest.raises(ValueError, match="terminal"):
        JobFinished(name="x", provider="together", phase="running", remote_id="ft-1")


def test_posts_the_body(router: respx.MockRouter) -> None:
    route = router.post(URL).respond(200, text="ok")
    assert notifier(router, []).send(SUCCEEDED) is True
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content) == slack_body(SUCCEEDED)


def test_retries_a_500_then_succeeds(router: respx.MockRouter) -> None:
    route = router.post(URL).mock(
        side_effect=[httpx.Response(500), httpx.ConnectError("refused"), httpx.Response(200)]
    )
    sleeps: list[float] = []
    assert notifier(router, sleeps).send(SUCCEEDED) is True
    assert route.call_count == 3
    assert len(sleeps) == 2


def test_gives_up_after_three_tries_without_raising(
    router: respx.MockRouter, logs: io.StringIO
) -> None:
    route = router.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    sleeps: list[float] = []
    assert notifier(router, sleeps).send(FAILED) is False
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert "notification failed" in logs.getvalue()
    assert "ReadTimeout" in logs.getvalue()


def test_a_4xx_is_not_retried(router: respx.MockRouter, logs: io.StringIO) -> None:
    route = router.post(URL).respond(404, text="no_service")
    assert notifier(router, []).send(SUCCEEDED) is False
    assert route.call_count == 1
    assert "HTTP 404: no_service" in logs.getvalue()


def test_429_retry_after_is_honoured(router: respx.MockRouter) -> None:
    route = router.post(URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)]
    )
    sleeps: list[float] = []
    assert notifier(router, sleeps).send(SUCCEEDED) is True
    assert route.call_count == 2
    assert 7.0 <= sleeps[0] < 7.2  # the server's wait, plus a little jitter


def test_an_unexpected_error_is_a_warning(router: respx.MockRouter, logs: io.StringIO) -> None:
    def boom(_: httpx.Request) -> Any:
        raise RuntimeError(f"bug while posting to {URL}")

    router.post(URL).mock(side_effect=boom)
    assert notifier(router, []).send(SUCCEEDED) is False
    assert "RuntimeError" in logs.getvalue()


def test_url_never_logged(router: respx.MockRouter, logs: io.StringIO) -> None:
    router.post(URL).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError(f"cannot reach {URL}"),
            httpx.Response(500, text=f"upstream said {SECRET_PATH}"),
        ]
    )
    assert notifier(router, []).send(SUCCEEDED) is False
    router.post(URL).respond(200)
    assert notifier(router, []).send(SUCCEEDED) is True
    out = logs.getvalue()
    assert "https://hooks.slack.test" in out
    assert "SENTINEL" not in out
    assert "notification retry" in out and "notified" in out


def test_env_unset_or_empty_means_no_notifier() -> None:
    assert notifier_from_env({}) is None
    assert notifier_from_env({"RECONCILER_WEBHOOK_URL": "  "}) is None


def test_env_url_builds_a_notifier() -> None:
    n = notifier_from_env({"RECONCILER_WEBHOOK_URL": URL})
    assert n is not None
    assert n.url == URL and n.origin == "https://hooks.slack.test"
    n.close()


@pytest.mark.parametrize("value", ["hooks.slack.test/x", "ftp://host/x", "https://", "xoxb-abc"])
def test_env_url_must_be_http(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        notifier_from_env({"RECONCILER_WEBHOOK_URL": value})
    assert "RECONCILER_WEBHOOK_URL" in str(info.value)
    assert value not in str(info.value)
