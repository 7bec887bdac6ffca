"""What every benchmark shares: the ``Figure`` it reports, timed child processes (wall
time and peak RSS from ``wait4``), and the emulator as a child process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
KEYS = {
    "TOGETHER_API_KEY": "bench-together-key",
    "OPENAI_API_KEY": "bench-openai-key",
    "MISTRAL_API_KEY": "bench-mistral-key",
}


@dataclass
class Figure:
    """One row of the table. ``ratio`` is value / floor; ``budget`` bounds the ratio
    (``budget_kind="ratio"``) or the value itself (``"absolute"``), or nothing (None)."""

    name: str
    value: float
    unit: str
    floor: float | None = None
    floor_label: str = ""
    budget: float | None = None
    budget_kind: str = "ratio"  # "ratio" | "absolute" | "ceiling"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor <= 0:
            return None
        return self.value / self.floor

    @property
    def verdict(self) -> str:
        if self.budget is None:
            return "info"
        measured = self.ratio if self.budget_kind == "ratio" else self.value
        if measured is None:
            return "info"
        return "PASS" if measured <= self.budget * (1 + 1e-9) else "MISS"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "verdict": self.verdict}


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    max_rss_mb: float
    returncode: int


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    check: bool = True,
) -> ChildRun:
    """Run ``argv`` to completion: wall seconds and the child's own peak RSS (``wait4``,
    so neither the parent nor earlier children are mixed in)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE if check else subprocess.DEVNULL,
    )
    # wait4 reaps the child; read stderr only after it ended (small outputs only)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if check and code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {err.strip()[-2000:]}")
    # ru_maxrss is KiB on Linux
    return ChildRun(seconds, usage.ru_maxrss / 1024.0, code)


def best_of(n: int, argv: Sequence[str], **kwargs: Any) -> tuple[float, list[ChildRun]]:
    runs = [run_child(argv, **kwargs) for _ in range(n)]
    return min(r.seconds for r in runs), runs


def reconciler_env(url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a reconciler child: dummy keys, endpoints at the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(KEYS)
    env["NO_COLOR"] = "1"
    if url is not None:
        env["TOGETHER_BASE_URL"] = f"{url}/together/v1"
        env["OPENAI_BASE_URL"] = f"{url}/openai/v1"
        env["MISTRAL_BASE_URL"] = f"{url}/mistral/v1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """``python -m reconciler emulator`` on a free port, as a child process."""

    def __init__(self, state: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state.with_suffix(".log").open("wb")
        argv = [PYTHON, "-m", "reconciler", "emulator", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*argv, "--state", str(state), *options],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=reconciler_env(),
        )
        deadline = time.monotonic() + 20.0
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1.0) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start (see {self.log.name})")
            time.sleep(0.05)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60.0) as answer:
            return json.loads(answer.read() or b"null")

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        query = f"?provider={provider}" if provider else ""
        seen: list[dict[str, Any]] = self.admin("GET", "/_emulator/requests" + query)["data"]
        return seen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reconciler_argv(specs: Path, ledger: Path, *command: str) -> list[str]:
    return [PYTHON, "-m", "reconciler", "--specs", str(specs), "--ledger", str(ledger), *command]
