"""Running the emulator: ``serve()`` (blocking, for the CLI), ``EmulatorThread`` (in-process,
for tests), and the CLI glue ``add_arguments(parser)`` / ``run(args) -> int``.

Only the standard library is imported at module level, so building the reconciler's
argument parser stays fast; uvicorn, Starlette and httpx load when a server starts.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .core import Emulator

DEFAULT_PORT = 8765


class _QuietDrops(logging.Filter):
    """Keep the deliberate dropped-connection fault out of the server's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .app import DroppedConnection

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


_QUIET = _QuietDrops()


def _server(app: Starlette, host: str, port: int, log_level: str) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # stop gracefully and return from serve(); uvicorn would re-raise the
            # signal afterwards, turning a clean SIGTERM into a non-zero exit
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    logging.getLogger("uvicorn.error").addFilter(_QUIET)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",
        ws="none",
        lifespan="on",
        log_level=log_level,
        log_config=None,  # leave the host program's logging alone
        access_log=False,
        date_header=False,  # the gateway sends the emulated clock's date
        timeout_graceful_shutdown=5,
    )
    return Server(config)


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket. IPPROTO_TCP explicitly: asyncio disables Nagle only on
    sockets whose proto says TCP (uvicorn's own have proto 0), and with Nagle on every
    answer waits ~40 ms for a delayed ACK."""
    if not 0 <= port <= 65535:
        raise PortError(f"--port must be 0..65535 (got {port})")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortError(f"port {port} on {host} is already in use") from exc
        raise PortError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class PortError(ValueError):
    """The address the emulator was asked to listen on cannot be used (one line for users)."""


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    state_path: str | Path | None = None,
    speed: float = 1.0,
    faults: dict[str, Any] | None = None,
    keys: list[str] | None = None,
    *,
    file_processing_seconds: float = 2.0,
    log_level: str = "warning",
) -> None:
    """Serve until SIGINT/SIGTERM, then return (a clean stop: the caller exits 0)."""
    from .app import create_app

    sock = _bind(host, port)  # first: a port in use must not leave a state file behind
    port = sock.getsockname()[1]  # the bound one: --port 0 asks the system for a free port
    try:
        app = create_app(
            state_path,
            speed=speed,
            faults=faults,
            keys=keys,
            file_processing_seconds=file_processing_seconds,
        )
    except BaseException:
        sock.close()
        raise
    server = _server(app, host, port, log_level)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(message)s")
    where = state_path or "memory (lost on exit)"
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    print(
        f"provider emulator on {base} (state: {where}, speed {speed}x)\n"
        f"  TOGETHER_BASE_URL={base}/together/v1\n"
        f"  OPENAI_BASE_URL={base}/openai/v1\n"
        f"  MISTRAL_BASE_URL={base}/mistral/v1",
        file=sys.stderr,
        flush=True,
    )
    server.run(sockets=[sock])


class EmulatorThread:
    """The emulator on a free loopback port in a background thread.

    ``with EmulatorThread(speed=100) as emu: httpx.get(emu.url)``. Extra keyword
    arguments go to ``create_app``. ``advance``, ``set_faults`` and ``state`` are
    shortcuts to the admin endpoints.
    """

    def __init__(
        self,
        state_path: str | Path | None = None,
        *,
        speed: float = 1.0,
        faults: dict[str, Any] | None = None,
        keys: list[str] | None = None,
        host: str = "127.0.0.1",
        file_processing_seconds: float = 2.0,
        log_level: str = "warning",
    ) -> None:
        self.state_path = state_path
        self.host = host
        self._options: dict[str, Any] = {
            "speed": speed,
            "faults": faults,
            "keys": keys,
            "file_processing_seconds": file_processing_seconds,
        }
        self._log_level = log_level
        self._server: Any = None
        self._http: Any = None
        self._thread: threading.Thread | None = None
        self.app: Starlette | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def emulator(self) -> Emulator:
        assert self.app is not None, "not started"
        emu: Emulator = self.app.state.emulator
        return emu

    def start(self, timeout: float = 10.0) -> EmulatorThread:
        from .app import create_app

        sock = _bind(self.host, 0)
        self.port = sock.getsockname()[1]
        self.app = create_app(self.state_path, **self._options)
        self._server = _server(self.app, self.host, self.port, self._log_level)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="emulator"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the emulator failed to start")
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start in time")
            time.sleep(0.002)
        # the socket now belongs to the server, which closes it on shutdown
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._http is not None:
            self._http.close()
        self._server = self._thread = self._http = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # shortcuts to the admin endpoints

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        if self._http is None:  # one client: building one costs ~40 ms (its SSL context)
            self._http = httpx.Client(base_url=self.url, timeout=10.0)
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def advance(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self._admin(
            "POST", "/_emulator/clock/advance", {"seconds": seconds}
        )
        return result

    def set_faults(self, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("POST", "/_emulator/faults", options)
        return result

    def clear_faults(self) -> None:
        self._admin("DELETE", "/_emulator/faults")

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/_emulator/state")
        return result

    def reset(self) -> None:
        self._admin("POST", "/_emulator/reset")


# ---------------------------------------------------------------- CLI glue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``reconciler emulator`` / ``python -m reconciler.emulator``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.add_argument(
        "--state", metavar="PATH", default=None, help="SQLite state file (default: in memory)"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="emulated seconds per real second (default: 1)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this bearer token (repeatable; default: any non-empty token)",
    )
    faults = parser.add_argument_group("faults (also settable at run time: POST /_emulator/faults)")
    faults.add_argument("--latency-ms", type=float, default=None, metavar="MS")
    faults.add_argument(
        "--spike-rate", type=float, default=None, metavar="FRACTION", help="requests that spike"
    )
    faults.add_argument("--spike-ms", type=float, default=None, metavar="MS", help="spike length")
    faults.add_argument(
        "--error-rate",
        type=float,
        default=None,
        metavar="FRACTION",
        help="fraction of requests answered 5xx",
    )
    faults.add_argument("--rpm", type=int, default=None, help="requests per minute per provider")
    faults.add_argument(
        "--drop-rate",
        type=float,
        default=None,
        metavar="FRACTION",
        help="fraction of connections closed without an answer",
    )
    faults.add_argument(
        "--list-lag",
        type=float,
        default=None,
        metavar="SECONDS",
        help="new jobs stay out of list answers this long",
    )
    faults.add_argument(
        "--fail-jobs",
        action="append",
        default=None,
        metavar="MATCH[:permanent|:retryable]",
        help="jobs whose suffix/model/metadata contains MATCH fail (repeatable)",
    )
    faults.add_argument(
        "--stuck",
        action="append",
        default=None,
        metavar="STATUS[:MATCH]",
        help="matching jobs never leave STATUS (repeatable)",
    )
    faults.add_argument("--seed", type=int, default=None, help="seed for repeatable faults")
    faults.add_argument(
        "--faults",
        default=None,
        metavar="JSON|@FILE",
        help="a whole fault config as JSON (the keys of POST /_emulator/faults)",
    )


def faults_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The fault config the parsed options describe."""
    config: dict[str, Any] = {}
    if getattr(args, "faults", None):
        text = args.faults
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        config.update(json.loads(text))
    simple = {
        "latency_ms": "latency_ms",
        "spike_rate": "spike_rate",
        "spike_ms": "spike_ms",
        "error_rate": "error_rate",
        "rpm": "rpm",
        "drop_rate": "drop_rate",
        "list_lag": "list_lag_seconds",
        "seed": "seed",
    }
    for attr, key in simple.items():
        if getattr(args, attr, None) is not None:
            config[key] = getattr(args, attr)
    # the flags' syntax is the JSON form's bare-string syntax: one parser for both
    from .faults import parse_fail, parse_stuck

    for item in getattr(args, "fail_jobs", None) or ():
        config.setdefault("fail_jobs", []).append(parse_fail(item, "--fail-jobs"))
    for item in getattr(args, "stuck", None) or ():
        config.setdefault("stuck", []).append(parse_stuck(item, "--stuck"))
    return config


def run(args: argparse.Namespace) -> int:
    """Serve as the parsed options say; 0 after a clean stop, 1 on a startup error."""
    from .app import HOLDABLE
    from .faults import FaultConfig

    try:
        if not 0 <= args.port <= 65535:  # before building anything
            raise PortError(f"--port must be 0..65535 (got {args.port})")
        faults = faults_from_args(args)
        FaultConfig.from_json(
            faults, statuses=HOLDABLE
        )  # reject a bad config before binding the port
        serve(args.host, args.port, args.state, args.speed, faults, args.api_keys)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
