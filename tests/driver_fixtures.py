"""What every driver test shares: a driver of any provider on a respx router, the
sentinel keys and base URLs, the common create request, and the multipart parsing the
upload tests read requests with. Realistic wire objects stay per provider
(``together_fake``, ``openai_fake``, ``mistral_fake``): they legitimately differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import respx

from reconciler.model import CreateRequest
from reconciler.providers import CATALOG
from reconciler.providers.http import ApiClient, make_http_client
from reconciler.providers.mistral.client import MistralDriver
from reconciler.providers.openai.client import OpenAIDriver
from reconciler.providers.together.client import TogetherDriver

PROVIDERS = ("together", "openai", "mistral")
SHA = "0123456789abcdef" + "0" * 48
TAG = "rc3f9a-0123456789a"  # a tag of namespace code 3f9a (reconciler.tags)
LEGACY_TAG = "rc-0123456789ab"  # written before namespaces: still read back
NAME = "support-bot"
# what the driver names an uploaded file after: the content hash, so a re-upload is found
UPLOAD_NAME = f"rc-{SHA[:16]}-train.jsonl"


@dataclass(frozen=True)
class FakeEndpoint:
    """Where a provider's fake answers and the environment that points a driver there."""

    provider: str
    key: str  # a sentinel: long and unmistakable, so a leak into any message is easy to spot
    driver_class: type[Any]
    model: str  # the create request's model, one the provider really offers
    training_file_id: str = "file-train"  # in the provider's own id form
    url_path: str = ""  # what the base URL variable holds after the host

    @property
    def base_url(self) -> str:
        """The router's base: every route path is relative to it."""
        return f"https://api.{self.provider}.test/v1/"

    @property
    def key_var(self) -> str:
        return f"{self.provider.upper()}_API_KEY"

    @property
    def env(self) -> dict[str, str]:
        url_var = f"{self.provider.upper()}_BASE_URL"
        return {self.key_var: self.key, url_var: f"https://api.{self.provider}.test{self.url_path}"}


_ENDPOINTS = (
    FakeEndpoint(
        "together",
        "tgp_v1_SENTINEL-9f8e7d6c5b4a39281706-KEY",
        TogetherDriver,
        model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    ),
    FakeEndpoint(
        "openai",
        "sk-proj-SENTINEL-0a1b2c3d4e5f60718293-KEY",
        OpenAIDriver,
        model="gpt-4.1-mini-2025-04-14",
        url_path="/v1",  # as OpenAI's SDKs spell it; the others leave it off: both are accepted
    ),
    FakeEndpoint(
        "mistral",
        "mistral-SENTINEL-4c3b2a19-0f8e7d6c5b4a-KEY",
        MistralDriver,
        model="open-mistral-7b",
        training_file_id="66f96d02-8b51-4c76-a5ac-a78e28b2584f",  # Mistral wants UUIDs
    ),
)
ENDPOINTS: Mapping[str, FakeEndpoint] = {e.provider: e for e in _ENDPOINTS}


class FakeDriver(NamedTuple):
    """A driver with what it slept, kept apart: the API client's retry waits and the
    driver's own (file polling at Together, 409 rechecks at Mistral)."""

    driver: Any
    api_sleeps: list[float]
    driver_sleeps: list[float]


def new_router(provider: str) -> respx.MockRouter:
    return respx.MockRouter(base_url=ENDPOINTS[provider].base_url, assert_all_called=False)


def router_fixture(provider: str) -> Any:
    """The ``router`` fixture of a test module about one provider: bind it to a module
    name (``router = router_fixture("together")``) and pytest finds it there."""

    @pytest.fixture(name="router")
    def _router() -> respx.MockRouter:
        return new_router(provider)

    return _router


def make_driver(provider: str, router: respx.MockRouter, **options: Any) -> FakeDriver:
    """A ``provider`` driver whose HTTP goes to ``router``; ``options`` go to its class
    (page sizes, timeouts, recheck waits)."""
    endpoint = ENDPOINTS[provider]
    transport = httpx.MockTransport(router.handler)
    http = make_http_client(CATALOG[provider], endpoint.env, transport=transport)
    api_sleeps: list[float] = []
    driver_sleeps: list[float] = []
    api = ApiClient(provider, http, sleep=api_sleeps.append)
    driver = endpoint.driver_class(api, sleep=driver_sleeps.append, **options)
    return FakeDriver(driver, api_sleeps, driver_sleeps)


def make_request(provider: str, **over: Any) -> CreateRequest:
    """The create request of a plain SFT job at ``provider``, carrying our tag."""
    endpoint = ENDPOINTS[provider]
    base: dict[str, Any] = {
        "name": NAME,
        "tag": TAG,
        "model": endpoint.model,
        "method": "sft",
        "training_file_id": endpoint.training_file_id,
    }
    base.update(over)
    return CreateRequest(**base)


# ---------------------------------------------------------------- uploads


def file_object(file_id: str, filename: str | None, created_at: int) -> dict[str, Any]:
    """The fields of the OpenAI-style file object all three providers answer with; each
    fake adds its provider's own (processing state, line counts...)."""
    return {
        "id": file_id,
        "object": "file",
        "bytes": 1234,
        "created_at": created_at,
        "filename": filename or UPLOAD_NAME,
        "purpose": "fine-tune",
    }


def write_data_file(directory: Path, contents: tuple[str, ...] = ("hi",)) -> Path:
    """A small chat-format training file: one user turn per entry of ``contents``."""
    path = directory / "train.jsonl"
    lines = [json.dumps({"messages": [{"role": "user", "content": c}]}) for c in contents]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def multipart(req: httpx.Request) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart request: field name → (filename, bytes)."""
    boundary = req.headers["content-type"].split("boundary=")[1].encode()
    parts: dict[str, tuple[str | None, bytes]] = {}
    for raw in req.content.split(b"--" + boundary):
        head, sep, value = raw.partition(b"\r\n\r\n")
        if not sep or b'name="' not in head:
            continue
        text = head.decode()
        name = text.split('name="')[1].split('"')[0]
        filename = text.split('filename="')[1].split('"')[0] if 'filename="' in text else None
        parts[name] = (filename, value.removesuffix(b"\r\n"))
    return parts
