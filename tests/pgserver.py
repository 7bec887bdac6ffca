"""A real PostgreSQL server for the tests, started from this machine's own binaries
(``initdb``, ``pg_ctl``) in a temporary folder, on a Unix socket and a loopback port,
and stopped at the end. No Docker, no shared server: each test session owns one.

PostgreSQL refuses to run as root; when the tests do, the server runs as the
``postgres`` user (present wherever the server package is installed), in a folder
handed to it. Password authentication (scram) is on for TCP, so the tests exercise a
password the way users give one: in the URL's environment form or ``PGPASSWORD``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

USER = "reconciler"
PASSWORD = "pg-SENTINEL-pass-4b1e9a"  # must never appear in any output


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's versioned folder."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in ``base``; ``url(db)`` for a database of its own."""

    def __init__(self, base: Path) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl are not installed")
        self.base = base
        self.data = base / "data"
        self.socket_dir = base / "sock"
        self.port = free_port()
        self._databases = 0
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as `postgres`
            user = pwd.getpwnam("postgres")
            self.run_as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}"]
            self.run_as += ["--clear-groups", "--"]

    def _run(self, *args: str) -> None:
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        proc = subprocess.run(
            [*self.run_as, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        if proc.returncode:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    def start(self) -> PgServer:
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir()
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as:
            user = pwd.getpwnam("postgres")
            for path in (self.base, self.socket_dir, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        assert self.bin is not None
        self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "-U", USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-k {self.socket_dir} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.base / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists() and self.bin is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(
                    str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                )  # fmt: skip

    def admin_url(self, db: str = "postgres") -> str:
        """Over the socket (trust): for creating databases, never shown to the code tested."""
        return f"postgresql://{USER}@/{db}?host={self.socket_dir}&port={self.port}"

    def url(self, db: str, *, password: bool = True) -> str:
        """Over TCP with the password in the URL (the form the docs call insecure but users
        write anyway); ``password=False`` leaves it for PGPASSWORD."""
        auth = f"{USER}:{PASSWORD}" if password else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def create_database(self, prefix: str = "t") -> str:
        import psycopg

        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


@contextlib.contextmanager
def running(base: Path) -> Iterator[PgServer]:
    server = PgServer(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
