"""The local driver: one detached trainer process per attempt, its state in a run folder.

Nothing here speaks HTTP: the ``ApiClient`` the pool hands in is kept only for the
shared interface (call counts). The process outlives reconciler (its own session);
everything the driver reports is read back from the run folder (``runs.py``), so a
reconciler killed at any instant finds its jobs again by their tag's folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ErrorKind, ProviderError
from ...model import (
    Checkpoint,
    CreateRequest,
    DesiredJob,
    Phase,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
    model_on_disk,
    upload_filename,
)
from ...tags import is_tag
from ..base import DriverBase
from .estimate import Settings, model_config
from .mapping import (
    CANCEL_GRACE_S,
    PROVIDER,
    RELAUNCH_AFTER_S,
    RunFacts,
    lora_args,
    phase_of,
    progress_text,
    trainer_kind,
)
from .mapping import training_args as make_training_args
from .runs import (
    Run,
    is_alive,
    job_id,
    process_record,
    read_json,
    read_lines,
    runs_root,
    split_id,
    waiting,
    write_json,
)

if TYPE_CHECKING:
    from ..http import ApiClient

# the trainer never reaches a network: weights come from the local cache or a path
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYTHONUNBUFFERED": "1",
}


CHECKPOINT_METRICS = ("loss", "eval_loss", "mean_token_accuracy", "rewards/accuracies")
CREATE_PAUSE_VAR = "RECONCILER_LOCAL_CREATE_PAUSE"  # a test knob: seconds between start and return


def _tokens(metrics: list[dict[str, Any]], n: int) -> int | None:
    """Tokens trained by attempt ``n`` (the trainer's running ``num_tokens``)."""
    counts = [m["num_tokens"] for m in metrics if m.get("attempt") == n and "num_tokens" in m]
    return int(counts[-1]) if counts else None


class LocalDriver(DriverBase):
    provider = PROVIDER

    def __init__(
        self,
        api: ApiClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        runs: Path | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api  # type: ignore[assignment]
        self._sleep = sleep
        self.env = dict(os.environ if env is None else env)
        self.runs = runs or runs_root(self.env)
        self.clock = clock
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def close(self) -> None:
        if self.api is not None:
            self.api.close()

    # -- files: copied into the runs folder under their content hash ------------------

    def _file(self, sha256: str) -> Path:
        return self.runs / "files" / f"{sha256}.jsonl"

    def upload_file(self, path: Path, sha256: str) -> RemoteFile:
        dest = self._file(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
        return RemoteFile(f"local-{sha256}", upload_filename(sha256, path), dest.stat().st_size)

    def find_file(self, sha256: str) -> RemoteFile | None:
        dest = self._file(sha256)
        if not dest.is_file():
            return None
        return RemoteFile(f"local-{sha256}", dest.name, dest.stat().st_size)

    def _data_path(self, file_id: str | None) -> str | None:
        if file_id is None:
            return None
        path = self._file(file_id.removeprefix("local-"))
        if not path.is_file():
            raise ProviderError(
                PROVIDER, f"data file {file_id} is not in {path.parent}", kind=ErrorKind.NOT_FOUND
            )
        return str(path)

    # -- jobs ---------------------------------------------------------------------

    def create_job(self, request: CreateRequest) -> RemoteJob:
        run = Run(self.runs, request.tag)
        for n in run.attempt_numbers():
            if self._get(run, n).phase.active:
                raise ProviderError(
                    PROVIDER,
                    f"attempt {job_id(run.tag, n)} of this run is still training",
                    kind=ErrorKind.RETRYABLE,
                )
        run.attempts.mkdir(parents=True, exist_ok=True)
        write_json(run.config, self._config(request, run))
        n = max(run.attempt_numbers(), default=0) + 1
        folder = run.attempt(n)
        folder.mkdir()  # the folder is the job: found again by its tag after a crash
        write_json(folder / "attempt.json", {"created_at": self.clock(), "attempt": n})
        self._launch(run, n)
        pause = float(self.env.get(CREATE_PAUSE_VAR) or 0)
        if pause:  # the crash tests kill reconciler here: the trainer runs, the id unsaved
            time.sleep(pause)
        return self._get(run, n)

    def _launch(self, run: Run, n: int) -> None:
        """Start the trainer of one attempt, in a session of its own (reconciler's end
        leaves it running). A second launch of one attempt is harmless: the trainer that
        does not get the attempt's lock leaves at once."""
        folder = run.attempt(n)
        with (folder / "trainer.log").open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "reconciler.providers.local.trainer", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**self.env, **OFFLINE_ENV},
            )
        self._children[job_id(run.tag, n)] = child
        if not (folder / "process.json").exists():  # the trainer writes it too, first thing
            write_json(folder / "process.json", process_record(child.pid))

    def _config(self, req: CreateRequest, run: Run) -> dict[str, Any]:
        return {
            "tag": req.tag,
            "name": req.name,
            "model": req.model,
            "method": req.method,
            "trainer": trainer_kind(req),
            "training_file": self._data_path(req.training_file_id),
            "validation_file": self._data_path(req.validation_file_id),
            "from_output": self._start_from(req),
            "args": make_training_args(req, str(run.checkpoints)),
            "lora": lora_args(req),
            "output": str(run.model),
        }

    def _start_from(self, req: CreateRequest) -> str | None:
        """``from: {job: X}``: X's result folder; with ``step: N``, X's checkpoint-N."""
        if req.from_output is None or req.from_step is None:
            return req.from_output
        saved = Path(req.from_output).parent / "checkpoints"
        folder = saved / f"checkpoint-{req.from_step}"
        if not (folder / "trainer_state.json").is_file():
            steps = sorted(int(p.name.split("-")[1]) for p in saved.glob("checkpoint-[0-9]*"))
            raise ProviderError(
                PROVIDER,
                f"from.step {req.from_step}: {saved} has no complete checkpoint-"
                f"{req.from_step} (saved steps: {', '.join(map(str, steps)) or 'none'})",
                kind=ErrorKind.NOT_FOUND,
            )
        return str(folder)

    def _run_of(self, job: str) -> tuple[Run, int]:
        parsed = split_id(job)
        if parsed is None or not Run(self.runs, parsed[0]).attempt(parsed[1]).is_dir():
            raise ProviderError(
                PROVIDER, f"no local job {job} in {self.runs}", kind=ErrorKind.NOT_FOUND
            )
        return Run(self.runs, parsed[0]), parsed[1]

    def _facts(self, run: Run, n: int) -> RunFacts:
        folder = run.attempt(n)
        child = self._children.get(job_id(run.tag, n))
        if child is not None:
            child.poll()  # reap our own child, so a dead one is not a zombie
        record = read_json(folder / "process.json")
        created = (read_json(folder / "attempt.json") or {}).get("created_at")
        try:  # attempt.json is written just after the folder is made
            mtime = folder.stat().st_mtime
        except OSError:
            mtime = 0.0
        facts = RunFacts(
            result=read_json(folder / "result.json"),
            started=record is not None,
            alive=is_alive(record),
            cancel_requested=(folder / "cancel.json").exists(),
            age_s=self.clock() - (float(created) if isinstance(created, int | float) else mtime),
            slotted=(folder / "slot.json").exists(),
        )
        relaunched = folder / "relaunched"
        never_ran = not facts.started and facts.result is None and not facts.cancel_requested
        # a reconciler killed between the folder and the process: start it, once
        if never_ran and facts.age_s > RELAUNCH_AFTER_S and not relaunched.exists():
            relaunched.touch()
            self._launch(run, n)
            return self._facts(run, n)
        return facts

    def _get(self, run: Run, n: int) -> RemoteJob:
        facts = self._facts(run, n)
        phase, status, error, retryable = phase_of(facts)
        if phase is Phase.CANCELLING:
            self._escalate(run, n)
        metrics = [m for m in read_lines(run.metrics) if m.get("attempt", n) <= n]
        created = (read_json(run.attempt(n) / "attempt.json") or {}).get("created_at")
        return RemoteJob(
            id=job_id(run.tag, n),
            phase=phase,
            status=status,
            tag=run.tag,
            fine_tuned_model=str(run.model) if phase is Phase.SUCCEEDED else None,
            progress=self._queue_text(run, n)
            if status == "queued"
            else progress_text(metrics, self.clock()),
            error=error,
            error_retryable=retryable,
            created_at=float(created) if isinstance(created, int | float) else None,
            trained_tokens=_tokens(metrics, n),
            cost_usd=self._cost(run, n),
        )

    def _cost(self, run: Run, n: int) -> float:
        """The slot's time so far at the project's price per slot-hour (0 without one)."""
        folder = run.attempt(n)
        began = (read_json(folder / "slot.json") or {}).get("at")
        if not isinstance(began, int | float) or not Settings.gpu_hour_usd:
            return 0.0
        ended = (read_json(folder / "result.json") or {}).get("at")
        until = float(ended) if isinstance(ended, int | float) else self.clock()
        return round(max(until - float(began), 0.0) / 3600 * Settings.gpu_hour_usd, 6)

    def _queue_text(self, run: Run, n: int) -> str:
        line = waiting(self.runs)
        ahead = line.index(run.attempt(n)) if run.attempt(n) in line else 0
        if not ahead:
            return "next in line for a training slot"
        return f"waiting for a training slot ({ahead} queued ahead)"

    def get_job(self, job_id: str) -> RemoteJob:
        return self._get(*self._run_of(job_id))

    def list_jobs(self) -> Iterator[RemoteJob]:
        if not self.runs.is_dir():
            return
        for folder in sorted(self.runs.iterdir()):
            if is_tag(folder.name):
                run = Run(self.runs, folder.name)
                for n in run.attempt_numbers():
                    yield self._get(run, n)

    def find_jobs_by_tag(self, tag: str) -> list[RemoteJob]:
        run = Run(self.runs, tag)
        return [self._get(run, n) for n in run.attempt_numbers()] if is_tag(tag) else []

    def cancel_job(self, job_id: str) -> RemoteJob:
        """SIGTERM: the trainer saves a checkpoint at the end of its step and stops; a
        trainer still running ``CANCEL_GRACE_S`` later is killed (see ``_escalate``)."""
        run, n = self._run_of(job_id)
        folder = run.attempt(n)
        if self._get(run, n).phase.terminal:
            return self._get(run, n)
        if not (folder / "cancel.json").exists():
            write_json(folder / "cancel.json", {"at": self.clock()})
        self._signal(folder, signal.SIGTERM)
        return self._get(run, n)

    def _escalate(self, run: Run, n: int) -> None:
        asked = (read_json(run.attempt(n) / "cancel.json") or {}).get("at")
        if isinstance(asked, int | float) and self.clock() - asked > CANCEL_GRACE_S:
            self._signal(run.attempt(n), signal.SIGKILL)

    def _signal(self, folder: Path, signum: int) -> None:
        record = read_json(folder / "process.json")
        if record and is_alive(record):
            # its session's group: dataloader workers too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record["pid"], signum)

    def job_events(self, job_id: str) -> list[RemoteEvent]:
        run, n = self._run_of(job_id)
        events = [
            RemoteEvent(e.get("time"), str(e.get("level", "info")), str(e.get("message", "")))
            for e in read_lines(run.attempt(n) / "events.jsonl")
        ]
        job = self._get(run, n)
        told = any(e.message.startswith(("finished:", "cancelled while queued")) for e in events)
        if job.phase.terminal and not told:  # the trainer died without a word: say how it ended
            level = "error" if job.error else "info"
            events.append(RemoteEvent(None, level, job.error or job.status))
        return events

    def job_progress(self, job_id: str) -> str | None:
        return self.get_job(job_id).progress

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        run, _ = self._run_of(job_id)
        logged = {m["step"]: m for m in read_lines(run.metrics) if "loss" in m and "step" in m}
        return [
            Checkpoint(
                id=path.name,
                step=step,
                model=str(path),
                created_at=path.stat().st_mtime,
                metrics={k: v for k, v in logged.get(step, {}).items() if k in CHECKPOINT_METRICS},
            )
            for step, path in run.complete_checkpoints()
        ]

    def preflight(self, job: DesiredJob) -> list[str]:
        """The model's weights are on this machine: its folder, or the Hugging Face cache
        (the trainer never downloads)."""
        folder = model_on_disk(job.spec.model, job.file)
        if folder is not None:
            if (folder / "config.json").is_file():
                return []
            return [f"model: {folder} holds no model (a folder with config.json and weights)"]
        if model_config(job.spec.model, self.env, job.file) is not None:
            return []
        home = self.env.get("HF_HOME") or "~/.cache/huggingface"
        return [
            f"model: {job.spec.model!r} is not in the Hugging Face cache (HF_HOME={home}) "
            "and local training never downloads: `huggingface-cli download "
            f"{job.spec.model}` on a connected machine, or give model: a folder"
        ]
