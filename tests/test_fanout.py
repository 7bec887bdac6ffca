"""fan_out: the same results as a loop, in order, shares computed in forked children
where forking is safe; a child that fails costs only time."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import pytest

from reconciler import fanout, loader
from reconciler.errors import SpecError, SpecErrors

PARENT = os.getpid()


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def _fails_in_children(x: int) -> tuple[int, int]:
    if os.getpid() != PARENT:
        raise RuntimeError("a child that breaks")
    return os.getpid(), x * x


def _dies_in_children(x: int) -> tuple[int, int]:
    if os.getpid() != PARENT:
        os._exit(3)
    return os.getpid(), x * x


needs_fork = pytest.mark.skipif(not fanout.sys.platform.startswith("linux"), reason="Linux only")


@needs_fork
def test_shares_run_in_children_and_come_back_in_order() -> None:
    items = list(range(1000))
    got = fanout.fan_out(_pid_and_square, items, 3)
    assert [sq for _, sq in got] == [x * x for x in items]
    pids = {pid for pid, _ in got}
    assert os.getpid() in pids and len(pids) == 3


@needs_fork
@pytest.mark.parametrize("fn", [_fails_in_children, _dies_in_children])
def test_a_failed_child_share_is_computed_here(fn: object) -> None:
    items = list(range(900))
    got = fanout.fan_out(fn, items, 2)  # type: ignore[arg-type]
    assert [sq for _, sq in got] == [x * x for x in items]
    assert {pid for pid, _ in got} == {os.getpid()}


@needs_fork
def test_a_pool_forks_once_for_every_batch_and_ends_its_children() -> None:
    with fanout.Pool(2) as pool:
        first = pool.map(_pid_and_square, list(range(800)))
        second = pool.map(_pid_and_square, list(range(800, 1600)))
        assert pool.children is not None and len(pool.children) == 1
        child = pool.children[0].pid
        assert pool.map(_pid_and_square, list(range(5))) == [(PARENT, x * x) for x in range(5)]
    assert [sq for _, sq in first + second] == [x * x for x in range(1600)]
    # one child served both batches: forked once
    assert {pid for pid, _ in first} == {pid for pid, _ in second} == {PARENT, child}
    assert child not in _children(os.getpid())  # ended with the pool
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)


@needs_fork
def test_batches_under_way_together_come_back_whole_and_in_order() -> None:
    with fanout.Pool(2) as pool:
        first = pool.submit(_pid_and_square, list(range(1000)), own=0.5)
        second = pool.submit(_pid_and_square, list(range(1000, 2000)), own=0.5)
        got_second, got_first = second.result(), first.result()  # either order
    assert [sq for _, sq in got_first] == [x * x for x in range(1000)]
    assert [sq for _, sq in got_second] == [x * x for x in range(1000, 2000)]
    mine = sum(1 for pid, _ in got_first if pid == PARENT)
    assert mine == round(1000 * 0.5 / 1.5)  # a third here, two thirds in the child


@needs_fork
def test_a_pool_whose_child_died_goes_on_in_this_process() -> None:
    with fanout.Pool(2) as pool:
        got = pool.map(_dies_in_children, list(range(900)))
        assert [sq for _, sq in got] == [x * x for x in range(900)]
        assert pool.children == []  # the dead child is dropped, not sent more work
        again = pool.map(_pid_and_square, list(range(900)))
    assert {pid for pid, _ in again} == {PARENT}


def test_no_fork_with_other_threads_or_few_items() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        got = fanout.fan_out(_pid_and_square, list(range(1000)), 2)
    finally:
        stop.set()
        thread.join()
    assert {pid for pid, _ in got} == {os.getpid()}
    few = fanout.fan_out(_pid_and_square, list(range(10)), 2)
    assert {pid for pid, _ in few} == {os.getpid()}


def test_workers_from_the_environment() -> None:
    assert fanout.workers({"RECONCILER_WORKERS": "1"}) == 1
    assert fanout.workers({"RECONCILER_WORKERS": "3"}) == 3
    assert 1 <= fanout.workers({"RECONCILER_WORKERS": "many"}) <= fanout.MAX_WORKERS


def test_spec_errors_cross_a_process_boundary_whole() -> None:
    one = SpecError("bad  value", Path("specs/a.yaml"), 3, "spec.model")
    back = pickle.loads(pickle.dumps(one))
    assert (back.message, back.file, back.line, back.field) == (
        "bad value",
        Path("specs/a.yaml"),
        3,
        "spec.model",
    )
    assert str(back) == str(one)
    many = pickle.loads(pickle.dumps(SpecErrors([one, SpecError("x", "b.yaml")])))
    assert [str(e) for e in many.errors] == [str(one), "b.yaml: x"]


@needs_fork
def test_a_large_tree_loads_the_same_on_one_core_or_several(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "specs"
    root.mkdir()
    text = (
        "apiVersion: reconciler/v1\nkind: FineTuneJob\nmetadata: {{name: job-{i}}}\n"
        "spec: {{provider: together, model: m, training_file: t.jsonl, "
        "hyperparameters: {{epochs: {e}}}}}\n"
    )
    for i in range(900):
        (root / f"job-{i:04d}.yaml").write_text(text.format(i=i, e=-2 if i == 7 else i % 5 + 1))
    (root / "broken.yaml").write_text("a: [1, 2\n")
    results = []
    for workers in ("1", "2"):
        monkeypatch.setenv("RECONCILER_WORKERS", workers)
        specs = loader.load_tree([root])
        results.append(
            (
                [(s.name, s.job.model_dump_json(), s.line) for s in specs],
                [str(e) for e in specs.errors],
            )
        )
    assert results[0] == results[1]
    assert len(results[0][0]) == 899 and len(results[0][1]) == 2


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


@needs_fork
@pytest.mark.process
@pytest.mark.parametrize("group", [False, True], ids=["kill -INT pid", "Ctrl-C (the group)"])
def test_an_interrupted_load_leaves_no_process_behind(tmp_path: Path, group: bool) -> None:
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "specs"
    root.mkdir()
    text = (
        "apiVersion: reconciler/v1\nkind: FineTuneJob\nmetadata: {{name: job-{i}}}\n"
        "spec: {{provider: together, model: m, training_file: t.jsonl}}\n"
    )
    for i in range(6_000):  # six chunks: six forks to catch
        (root / f"job-{i:05d}.yaml").write_text(text.format(i=i))
    env = {**os.environ, "RECONCILER_WORKERS": "2", "RECONCILER_CACHE": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--specs", str(root), "validate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while not seen and time.monotonic() < deadline and proc.poll() is None:
        seen = _children(proc.pid)
        time.sleep(0.005)
    assert seen, "the load forked no child to parse a share"
    if group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().endswith("interrupted"), err
    for pid in seen:  # gone, and reaped by the parent (not left a zombie to init)
        assert not Path(f"/proc/{pid}").exists(), pid
