"""Fixtures and helpers for the emulator tests: a running emulator on a loopback port,
small training files, and response validators built from ../shared/provider-specs.

Import the fixtures explicitly (``from emulator_fixtures import emulator  # noqa: F401``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_check import document, validator
from openapi_check import require_specs as _require_specs

from reconciler.emulator import EmulatorThread

SPECS = Path(__file__).resolve().parents[2] / "shared" / "provider-specs"
KEY = "emulator-test-key"
TOGETHER_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
MISTRAL_MODEL = "open-mistral-7b"

CHAT_LINES = [
    {
        "messages": [
            {"role": "system", "content": "You are a concise support assistant."},
            {"role": "user", "content": f"Question number {i}: how do I reset my password?"},
            {"role": "assistant", "content": f"Answer {i}: Settings, Security, Reset password."},
        ]
    }
    for i in range(12)
]
PREFERENCE_LINES = [
    {
        "input": {"messages": [{"role": "user", "content": f"Say hi number {i}"}]},
        "preferred_output": [{"role": "assistant", "content": "Hi!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
    }
    for i in range(10)
]


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(CHAT_LINES))
    return path


@pytest.fixture(scope="module")
def emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorThread]:
    """One emulator per test module (starting one costs ~0.2 s), on its own state file."""
    path = tmp_path_factory.mktemp("emulator") / "emulator.db"
    with EmulatorThread(path, file_processing_seconds=2.0) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_server: EmulatorThread) -> EmulatorThread:
    """The module's emulator, emptied: no objects, no faults, speed 1; tests move its
    clock by hand."""
    emulator_server.reset()
    emulator_server.emulator.file_processing_seconds = 2.0
    emulator_server.emulator.clock.set_speed(1.0)
    return emulator_server


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # built once: each new one costs ~40 ms


def http_client(base_url: str, key: str | None = KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=10.0, verify=_tls())


@pytest.fixture
def client(emulator: EmulatorThread) -> Iterator[httpx.Client]:
    """httpx against the emulator root, with a bearer key."""
    with http_client(emulator.url) as http:
        yield http


# ---------------------------------------------------------------- Together by hand

TG = "/together/v1"


def tg_upload(http: httpx.Client, content: bytes, name: str = "train.jsonl") -> str:
    """The SDK's signed-URL flow by hand; answers the file id (after preprocess)."""
    fields = {
        "purpose": "fine-tune",
        "file_name": name,
        "file_type": "jsonl",
        "checksum": hashlib.sha256(content).hexdigest(),
    }
    answer = http.post(f"{TG}/files", files={k: (None, v) for k, v in fields.items()})
    assert answer.status_code == 302, answer.text
    file_id = answer.headers["x-together-file-id"]
    put = httpx.put(answer.headers["location"], content=content)  # no Authorization header
    assert put.status_code == 200
    assert http.post(f"{TG}/files/{file_id}/preprocess").status_code == 200
    return file_id


def tg_ready_file(
    emulator: EmulatorThread, http: httpx.Client, content: bytes | None = None
) -> str:
    file_id = tg_upload(http, content or jsonl(CHAT_LINES))
    emulator.advance(2.5)
    assert http.get(f"{TG}/files/{file_id}").json()["processing_status"] == "COMPLETED"
    return file_id


def tg_create(http: httpx.Client, file_id: str, **over: Any) -> dict[str, Any]:
    body = {"training_file": file_id, "model": TOGETHER_MODEL, "n_epochs": 2, "suffix": "demo"}
    body.update(over)
    answer = http.post(f"{TG}/fine-tunes", json=body)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def tg_status(http: httpx.Client, job_id: str) -> str:
    return str(http.get(f"{TG}/fine-tunes/{job_id}").json()["status"])


# ---------------------------------------------------------------- the OpenAPI extracts


def require_specs() -> None:
    _require_specs()


def _document(provider: str) -> dict[str, Any]:
    return document(provider)


def _validator(provider: str, pointer: str) -> Callable[[Any], None]:
    return validator(provider, pointer)


def conforms(provider: str, schema: str, body: Any) -> None:
    """Raise unless ``body`` fits ``components/schemas/<schema>`` of the provider's spec."""
    require_specs()
    _validator(provider, f"/components/schemas/{schema}")(body)


def conforms_to_path(provider: str, method: str, path: str, body: Any, status: str = "200") -> None:
    """Raise unless ``body`` fits the spec's answer to ``method path`` (a path template)."""
    require_specs()
    escaped = path.replace("~", "~0").replace("/", "~1")
    op = _document(provider)["paths"][path][method.lower()]
    content = op["responses"][status]["content"]
    media = "application/json" if "application/json" in content else next(iter(content))
    pointer = f"/paths/{escaped}/{method.lower()}/responses/{status}/content/"
    pointer += media.replace("~", "~0").replace("/", "~1") + "/schema"
    _validator(provider, pointer)(body)
