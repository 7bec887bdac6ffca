"""`make demo`: the main job, offline, end to end, with no keys and no network.

Starts the provider emulator on a free loopback port, points reconciler at it with a
dummy key, and walks through validate → plan → apply --wait → status → a spec edit
and the replace it causes → a broken spec and its one-line error. Works in a scratch
copy of examples/quickstart, and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEED = "40"  # emulated seconds per real second: a job runs for a few seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def banner(text: str) -> None:
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(f"\n\033[1m── {text}\033[0m" if bold else f"\n── {text}", flush=True)


def commit_specs(work: Path) -> bool:
    """Put the scratch project under git (when git is installed), so provenance shows."""
    if shutil.which("git") is None:
        return False
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.invalid"]
    for args in (["init", "-q"], ["add", "specs"], ["commit", "-qm", "quickstart specs"]):
        if subprocess.run([*git, *args], cwd=work, capture_output=True, check=False).returncode:
            return False
    return True


def run(
    env: dict[str, str], *args: str, expect: tuple[int, ...] = (0,), echo: bool = True
) -> int:
    shown = " ".join(args)
    if echo:
        print(f"$ reconciler {shown}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "reconciler", *args], env=env, check=False)
    if proc.returncode not in expect:
        raise SystemExit(f"demo: `reconciler {shown}` exited {proc.returncode}")
    return proc.returncode


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("demo: the emulator exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("demo: the emulator did not answer in time")


def local_extra() -> bool:
    """The `local` extra (torch, TRL, peft) is installed: the demo trains on this machine."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("torch", "trl", "peft", "transformers"))


def train_locally(env: dict[str, str], work: Path, specs: Path) -> None:
    """The same spec format, trained here by TRL + peft: a tiny random model built in code
    (nothing downloaded), one spec of examples/local pointed at it."""
    if not local_extra():
        banner("9. Train on this machine: skipped (the local extra is not installed)")
        print("  pip install torch==2.13.0 && pip install -e '.[local]'   (README: local)")
        return
    banner("9. Train on this machine: provider: local (TRL + peft, on the CPU here)")
    from reconciler.providers.local.tiny import build, texts_of

    data = specs / "data" / "support.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    model = build(work / "tiny-llama", [t for row in rows for t in texts_of(row)])
    print(f"A tiny random Llama (~40k parameters) in {model}, in place of a real model")
    text = (ROOT / "examples" / "local" / "support-bot-local.yaml").read_text()
    text = text.replace("model: Qwen/Qwen2.5-0.5B-Instruct", "model: ../tiny-llama")
    text = text.replace("epochs: 3", "epochs: 2")
    (specs / "support-bot-local.yaml").write_text(text)
    local = {**env, "RECONCILER_LOCAL_ENABLE": "1"}
    run(local, "plan", "--target", "support-bot-local", "--detailed-exitcode", expect=(2,))
    target = ("--target", "support-bot-local")
    run(local, "apply", "--yes", "--wait", "--interval", "1", "--timeout", "300", *target)
    run(local, "output", "support-bot-local")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    specs = work / "specs"
    shutil.copytree(ROOT / "examples" / "quickstart", specs)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RECONCILER_SPECS": str(specs),
        "RECONCILER_LEDGER": str(work / "state" / "ledger.db"),
        "TOGETHER_API_KEY": "demo-key-not-secret",
        "TOGETHER_BASE_URL": f"{base}/together/v1",
        "OPENAI_API_KEY": "demo-key-not-secret",
        "OPENAI_BASE_URL": f"{base}/openai/v1",
        "MISTRAL_API_KEY": "demo-key-not-secret",
        "MISTRAL_BASE_URL": f"{base}/mistral/v1",
        "FIREWORKS_API_KEY": "demo-key-not-secret",
        "FIREWORKS_BASE_URL": f"{base}/fireworks/v1",
        "FIREWORKS_ACCOUNT_ID": "demo",
    }
    emulator = subprocess.Popen(
        [
            sys.executable, "-m", "reconciler", "emulator",
            "--port", str(port), "--state", str(work / "emulator.db"), "--speed", SPEED,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        wait_ready(base + "/", emulator)
        banner(f"A provider emulator is listening on {base} (Together, Fireworks, OpenAI, Mistral and more)")
        print(f"Specs: a scratch copy of examples/quickstart in {specs}")

        if commit_specs(work):
            print("Committed them to a scratch git repository: each job records the commit.")

        banner("1. Check the specs and their training data")
        run(env, "validate")

        banner("2. Plan: what would change, and why (a dry run; nothing is created)")
        run(env, "plan", "--detailed-exitcode", expect=(2,))

        banner("3. Apply, and wait until every job has finished")
        run(env, "apply", "--yes", "--wait", "--interval", "1", "--timeout", "120")

        banner("4. Status: sync and health of every spec, its job, commit and model")
        run(env, "status")

        banner("5. Nothing left to do: plan --detailed-exitcode exits 0")
        run(env, "plan", "--detailed-exitcode")

        banner("6. Change a hyperparameter: the plan shows a replace, naming the field")
        spec = specs / "support-bot.yaml"
        original = spec.read_text()
        spec.write_text(spec.read_text().replace("learning_rate: 1.0e-5", "learning_rate: 2.0e-5"))
        print("edited support-bot.yaml: learning_rate 1.0e-5 → 2.0e-5")
        run(env, "plan", "--detailed-exitcode", expect=(2,))

        banner("7. A typo is caught before anything is touched: one line, file and line")
        spec.write_text(spec.read_text().replace("warmup_ratio", "warmup_ration"))
        run(env, "validate", expect=(1,))

        banner("8. What a deploy step reads: the trained model of one spec")
        run(env, "output", "support-bot")
        print("$ reconciler output support-bot --raw   # the model id alone, for scripts")
        run(env, "output", "support-bot", "--raw", echo=False)

        spec.write_text(original)
        train_locally(env, work, specs)

        banner(f"Done in {time.monotonic() - started:.1f}s. Try it on your own specs:")
        print("  .venv/bin/reconciler --help")
    finally:
        emulator.send_signal(signal.SIGTERM)
        try:
            emulator.wait(10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
