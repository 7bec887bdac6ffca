"""The emulator's Starlette app: provider routes behind a gateway (auth, faults, request
log), the storage URLs, the health check and the ``/_emulator`` admin endpoints.

Admin endpoints (no auth; the server binds to loopback):

- ``GET /`` → ``{"status": "ok"}``
- ``GET /_emulator/state`` → every file and job of every provider, the clock, the faults
- ``POST /_emulator/reset`` → forget every object; faults back to the startup config
- ``GET /_emulator/clock`` → ``{"now", "now_iso", "speed"}``
- ``POST /_emulator/clock/advance`` ``{"seconds": N}`` → the clock moves N emulated seconds
- ``POST /_emulator/clock`` ``{"speed": X}`` → a new speed factor
- ``GET|POST|DELETE /_emulator/faults`` → read, merge keys into, or clear the fault config
- ``GET /_emulator/requests[?provider=]`` → the provider requests seen (newest last)
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import azure, fireworks, mistral, nebius, openai, together
from .clock import Clock
from .core import FILE, JOB, Emulator, ProviderApi, apply_rules_to_existing, iso
from .faults import FaultConfig, FaultError, Faults
from .storage import storage_routes
from .store import Store

# the registry: URL prefix (``/<name>/…``) → provider package, each of the same shape
# (routes, files, jobs, create, dialect); a new provider is one package and one line here
PROVIDERS: dict[str, ProviderApi] = {
    "together": together,
    "openai": openai,
    "mistral": mistral,
    "fireworks": fireworks,
    "azure": azure,
    "nebius": nebius,
}
# what a ``stuck`` fault may hold a job in, by provider (every fault config is checked on it)
HOLDABLE: dict[str, tuple[str, ...]] = {name: api.HOLDABLE for name, api in PROVIDERS.items()}


class DroppedConnection(Exception):
    """Raised after the response has started: the server closes the connection, so the
    client sees a truncated answer (httpx: RemoteProtocolError)."""


def provider_of(path: str) -> str | None:
    if path.startswith("/_storage/"):
        return "together"  # the signed upload URLs are Together's
    head = path.split("/", 2)[1] if path.count("/") >= 1 else ""
    return head if head in PROVIDERS else None


def _rewriting(
    send: Callable[[Message], Awaitable[None]], path: str, wrong_id: bool, total: int | None
) -> Callable[[Message], Awaitable[None]]:
    """A ``send`` that alters a JSON answer as the answer faults say: another job's id on
    a GET of one job, a made-up ``total`` on a numbered list."""
    start: list[Message] = []
    body = bytearray()
    asked = path.rstrip("/").rsplit("/", 1)[-1]

    async def rewrite(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.append(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body"):
            return
        data = bytes(body)
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            if wrong_id and doc.get("id") == asked:
                doc["id"] = f"{asked}-other"
            if total is not None and "total" in doc:
                doc["total"] = total
            data = json.dumps(doc).encode()
        head = start[0]
        headers = [(k, v) for k, v in head.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({**head, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return rewrite


class Gateway:
    """ASGI middleware in front of the provider routes: log, auth, then faults."""

    def __init__(self, app: ASGIApp, emu: Emulator) -> None:
        self.app = app
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = provider_of(scope["path"]) if scope["type"] == "http" else None
        if provider is None:
            await self.app(scope, receive, send)
            return
        emu, api = self.emu, PROVIDERS[provider]
        method, path = scope["method"], scope["path"]
        request_id = f"req_{secrets.token_hex(16)}"
        record: dict[str, Any] = {
            "t": emu.now(),
            "provider": provider,
            "method": method,
            "path": path,
            "status": None,
            "request_id": request_id,
        }
        emu.requests.append(record)
        extra: list[tuple[bytes, bytes]] = [
            (b"x-request-id", request_id.encode()),
            # the provider's clock is the emulated one: created_at and Date agree, as at a
            # real provider (reconciler measures list lag on it)
            (b"date", email.utils.formatdate(emu.now(), usegmt=True).encode()),
        ]
        lost = False  # the answer is computed but never reaches the client

        async def reply(message: Message) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            if not lost:
                await send(message)

        if not path.startswith("/_storage/") and (denied := self._auth(scope, api)) is not None:
            await denied(scope, receive, reply)
            return
        decision = emu.faults.decide(provider, method, path, emu.now())
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.limit is not None:
            reset = emu.clock.real_seconds(decision.reset or 0.0)
            extra += [
                (b"x-ratelimit-limit-requests", str(decision.limit).encode()),
                (b"x-ratelimit-remaining-requests", str(decision.remaining).encode()),
                (b"x-ratelimit-reset-requests", _duration(reset).encode()),
            ]
        if decision.retry_after is not None:
            wait = emu.clock.real_seconds(decision.retry_after)
            extra += [
                (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                (b"retry-after-ms", str(max(1, math.ceil(wait * 1000))).encode()),
            ]
            message = "rate limit exceeded: too many requests per minute"
            limited = api.error(
                429, message, type="rate_limit_exceeded", code="rate_limit_exceeded"
            )
            await limited(scope, receive, reply)
            return
        if decision.error is not None:
            message = "the server had an error processing your request"
            await api.error(decision.error, message, type="server_error")(scope, receive, reply)
            return
        if decision.drop == "before":
            record["status"] = "dropped"
            await _drop(send)
        lost = decision.drop == "after"
        config = emu.faults.config
        answer: Callable[[Message], Awaitable[None]] = reply
        if method == "GET" and (config.wrong_job_id or config.list_total is not None):
            answer = _rewriting(reply, path, config.wrong_job_id, config.list_total)
        if method == "GET" and config.list_total is not None:  # and every page is the first
            query = re.sub(rb"(^|&)page=\d+", rb"\1page=0", scope.get("query_string", b""))
            scope = {**scope, "query_string": query}
        await self.app(scope, receive, answer)
        if lost:
            record["status"] = "dropped"
            await _drop(send)

    def _auth(self, scope: Scope, api: ProviderApi) -> Response | None:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = header.partition(" ")
        if own := getattr(api, "KEY_HEADER", None):  # a bare key in a header of its own
            scheme, key = "bearer", dict(scope["headers"]).get(own.encode(), b"").decode("latin-1")
        key = key.strip()
        if scheme.lower() == "bearer" and key and (self.emu.keys is None or key in self.emu.keys):
            return None
        message = getattr(api, "AUTH_MESSAGE", None) or (
            "Invalid API key provided."
            if key
            else "You didn't provide an API key: use an Authorization: Bearer header."
        )
        return api.error(401, message, type="invalid_request_error", code="invalid_api_key")


async def _drop(send: Send) -> None:
    # headers promising a body that never comes, then the server closes the connection
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
        }
    )
    raise DroppedConnection("fault: connection dropped")


def _duration(seconds: float) -> str:
    """``x-ratelimit-reset-*`` style: ``250ms``, ``12s``, ``1m5s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def admin_routes(emu: Emulator) -> list[BaseRoute]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def state(request: Request) -> Response:
        files = [
            {
                "provider": r.provider,
                "id": r.id,
                "created_at": r.created_at,
                "filename": r.data.get("filename"),
                "bytes": r.data.get("bytes"),
                "sha256": r.data.get("sha256"),
                "purpose": r.data.get("purpose"),
            }
            for r in emu.store.all(FILE)
        ]
        jobs = [
            {
                "provider": r.provider,
                "id": r.id,
                "created_at": r.created_at,
                **PROVIDERS[r.provider].job_summary(emu, r),
            }
            for r in emu.store.all(JOB)
            if r.provider in PROVIDERS
        ]
        return JSONResponse(
            {**_clock(emu), "files": files, "jobs": jobs, "faults": emu.faults.config.to_json()}
        )

    async def reset(request: Request) -> Response:
        emu.store.clear()
        emu.faults.reset()
        emu.requests.clear()
        return JSONResponse({"status": "ok", **_clock(emu)})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            speed = body.get("speed") if isinstance(body, dict) else None
            if not isinstance(speed, int | float) or isinstance(speed, bool) or speed <= 0:
                return _bad("speed: a number > 0 is required")
            emu.clock.set_speed(float(speed))
        return JSONResponse(_clock(emu))

    async def advance(request: Request) -> Response:
        body = await _json(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            return _bad("seconds: a number >= 0 is required")
        emu.clock.advance(float(seconds))
        return JSONResponse(_clock(emu))

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            emu.faults.configure(FaultConfig())
        elif request.method == "POST":
            body = await _json(request)
            if not isinstance(body, dict):
                return _bad("a JSON object of fault options is required")
            try:
                config = emu.faults.config.merged(body, statuses=HOLDABLE)
            except FaultError as exc:
                return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)
            emu.faults.configure(config)
            touched = apply_rules_to_existing(emu, {k: p.KIND for k, p in PROVIDERS.items()})
            return JSONResponse({**config.to_json(), "jobs_failing": touched})
        return JSONResponse(emu.faults.config.to_json())

    async def requests(request: Request) -> Response:
        provider = request.query_params.get("provider")
        data = [r for r in list(emu.requests) if provider in (None, r["provider"])]
        return JSONResponse({"data": data})

    return [
        Route("/", health, methods=["GET"]),
        Route("/_emulator/state", state, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/clock", clock, methods=["GET", "POST"]),
        Route("/_emulator/clock/advance", advance, methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
    ]


def _clock(emu: Emulator) -> dict[str, Any]:
    now = emu.now()
    return {"now": now, "now_iso": iso(now), "speed": emu.clock.speed}


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


def _fallback(name: str, api: ProviderApi) -> Route:
    async def not_found(request: Request) -> Response:
        return api.error(
            404, f"unknown endpoint {request.method} {request.url.path}", code="not_found"
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Route(f"/{name}/{{rest:path}}", not_found, methods=methods)


def create_app(
    state_path: str | Path | None = None,
    *,
    speed: float = 1.0,
    faults: FaultConfig | dict[str, Any] | None = None,
    keys: list[str] | frozenset[str] | None = None,
    clock: Clock | None = None,
    file_processing_seconds: float = 2.0,
) -> Starlette:
    """The emulator app over the state at ``state_path`` (memory when None).

    ``app.state.emulator`` is the ``Emulator``: tests may reach the store and clock.
    """
    config = (
        faults
        if isinstance(faults, FaultConfig)
        else FaultConfig.from_json(faults or {}, statuses=HOLDABLE)
    )
    store = Store(state_path)
    clock = clock or Clock(speed)
    clock.attach(store)
    emu = Emulator(
        store=store,
        clock=clock,
        faults=Faults(config, initial=config),
        keys=frozenset(keys) if keys else None,
        file_processing_seconds=file_processing_seconds,
    )
    routes: list[BaseRoute] = [*admin_routes(emu), *storage_routes(emu)]
    for name, api in PROVIDERS.items():
        routes += [*api.routes(emu), _fallback(name, api)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    app = Starlette(routes=routes, middleware=[Middleware(Gateway, emu=emu)], lifespan=lifespan)
    app.state.emulator = emu
    return app
