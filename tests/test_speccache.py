"""The content-addressed cache of parsed spec files (speccache.py) and the loader's two
phases around it: a warm load is the same load, found by content, never by time."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler import loader, speccache
from reconciler.loader import load_tree
from reconciler.speccache import SpecCache

SPEC = """\
apiVersion: reconciler/v1
kind: FineTuneJob
metadata:
  name: {name}
spec:
  provider: together
  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference
  training_file: data/train.jsonl
  hyperparameters: {{epochs: {epochs}, learning_rate: 1.0e-5}}
"""


def _tree(root: Path, count: int = 3) -> list[Path]:
    (root / "data").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"job-{i}.yaml"
        path.write_text(SPEC.format(name=f"job-{i}", epochs=i + 1))
        paths.append(path)
    return paths


def _load(root: Path, cache: Path) -> tuple[loader.SpecSet, SpecCache]:
    store = SpecCache(cache, prune=True)  # a whole-tree load, as plan's
    specs = load_tree([root], store=store)
    store.save()
    return specs, store


def _summary(specs: loader.SpecSet) -> list[tuple[str, str, int, dict[tuple[str, ...], int]]]:
    return [(s.name, s.job.model_dump_json(), s.line, dict(s.lines)) for s in specs.specs.values()]


def test_a_warm_load_is_the_cold_load_from_the_cache(tmp_path: Path) -> None:
    _tree(tmp_path / "specs", 4)
    cold, store = _load(tmp_path / "specs", tmp_path / "cache")
    assert store.hits == 0 and len(store.new) == 4
    warm, store = _load(tmp_path / "specs", tmp_path / "cache")
    assert store.hits == 4 and not store.new
    assert _summary(warm) == _summary(cold)
    assert warm.specs["job-2"].line_of("spec", "hyperparameters") == 9
    mode = stat.S_IMODE((tmp_path / "cache" / speccache.CACHE_FILE).stat().st_mode)
    assert mode == 0o600


def test_found_by_content_not_by_time(tmp_path: Path) -> None:
    paths = _tree(tmp_path / "specs", 2)
    _load(tmp_path / "specs", tmp_path / "cache")
    before = paths[0].stat()
    # same size, same modification time, other content: an edit within the clock's tick
    paths[0].write_text(paths[0].read_text().replace("epochs: 1", "epochs: 7"))
    os.utime(paths[0], ns=(before.st_atime_ns, before.st_mtime_ns))
    assert paths[0].stat().st_size == before.st_size
    specs, store = _load(tmp_path / "specs", tmp_path / "cache")
    assert specs.specs["job-0"].job.spec.hyperparameters.epochs == 7
    assert store.hits == 1 and len(store.new) == 1
    # touched only: still found
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    _, store = _load(tmp_path / "specs", tmp_path / "cache")
    assert store.hits == 2 and not store.new


def test_problems_are_reported_afresh_and_at_their_line(tmp_path: Path) -> None:
    paths = _tree(tmp_path / "specs", 2)
    paths[0].write_text(paths[0].read_text() + "  hyperparameters: {}\n")  # a duplicate key
    paths[1].write_text(paths[1].read_text().replace("epochs: 2", "epochs: -3"))
    for _ in range(2):
        specs, store = _load(tmp_path / "specs", tmp_path / "cache")
        messages = sorted(str(e) for e in specs.errors)
        assert len(messages) == 2, messages
        assert "job-0.yaml:10: duplicate key 'hyperparameters' (first at line 9)" in messages[0]
        assert "job-1.yaml:9: spec.hyperparameters.epochs:" in messages[1]
    assert store.hits == 0 and not store.new  # a file with a problem is never kept


def test_a_literal_secret_is_never_copied_into_the_cache(tmp_path: Path) -> None:
    paths = _tree(tmp_path / "specs", 2)
    secret = "sk-live-0123456789abcdef"
    paths[0].write_text(paths[0].read_text() + f"  options: {{api_key: {secret}}}\n")
    specs, store = _load(tmp_path / "specs", tmp_path / "cache")
    assert not specs.errors  # the loader takes it; validate refuses it (test_validation_rules)
    assert len(store.new) == 1
    assert secret.encode() not in (tmp_path / "cache" / speccache.CACHE_FILE).read_bytes()


def test_other_code_or_a_broken_file_is_never_trusted(tmp_path: Path) -> None:
    _tree(tmp_path / "specs", 2)
    cache = tmp_path / "cache"
    _load(tmp_path / "specs", cache)
    db = sqlite3.connect(cache / speccache.CACHE_FILE)
    with db:
        db.execute("UPDATE entries SET parts = ?", ('[[0, {"apiVersion": "forged"}, 1]]',))
        db.execute("UPDATE meta SET value = 'another version' WHERE key = 'code'")
    db.close()
    specs, store = _load(tmp_path / "specs", cache)
    assert store.hits == 0 and not specs.errors and len(specs.specs) == 2
    _, store = _load(tmp_path / "specs", cache)
    assert store.hits == 2  # rewritten for this code
    (cache / speccache.CACHE_FILE).write_bytes(b"this is not a database" * 100)
    specs, store = _load(tmp_path / "specs", cache)
    assert store.hits == 0 and len(specs.specs) == 2
    _, store = _load(tmp_path / "specs", cache)
    assert store.hits == 2  # the broken file was replaced


@pytest.mark.parametrize("forged", ['{"not": "a list"}', '[[0, "data", 1]]', "[[0, {}]]", "{"])
def test_an_entry_of_another_shape_is_parsed_afresh(tmp_path: Path, forged: str) -> None:
    _tree(tmp_path / "specs", 2)
    cold, _ = _load(tmp_path / "specs", tmp_path / "cache")
    db = sqlite3.connect(tmp_path / "cache" / speccache.CACHE_FILE)
    with db:
        db.execute("UPDATE entries SET parts = ?", (forged,))
    db.close()
    again, store = _load(tmp_path / "specs", tmp_path / "cache")
    assert _summary(again) == _summary(cold) and not again.errors
    assert len(store.new) == 2  # written again, in the shape this code reads
    _, store = _load(tmp_path / "specs", tmp_path / "cache")
    assert not store.new


def test_old_versions_of_edited_files_are_pruned(tmp_path: Path) -> None:
    paths = _tree(tmp_path / "specs", 1)
    cache = tmp_path / "cache"
    for epochs in range(1, 160):
        paths[0].write_text(SPEC.format(name="job-0", epochs=epochs))
        _load(tmp_path / "specs", cache)
    db = sqlite3.connect(cache / speccache.CACHE_FILE)
    total = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    db.close()
    assert total <= speccache._SLACK * 1 + speccache._SLACK_ROWS + 1


def _rows(cache: Path, table: str) -> int:
    db = sqlite3.connect(cache / speccache.CACHE_FILE)
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def test_loading_one_file_or_a_daemon_pass_never_prunes_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.source import SpecSource

    monkeypatch.setattr(speccache, "_SLACK", 1)  # prune past the rows used, no slack
    monkeypatch.setattr(speccache, "_SLACK_ROWS", 0)

    paths = _tree(tmp_path / "specs", 150)  # past the slack rows of any threshold
    for i, path in enumerate(paths):  # epochs within the model's bounds (1-100)
        path.write_text(SPEC.format(name=f"job-{i}", epochs=i % 5 + 1))
    (tmp_path / "specs" / "data" / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    cache = tmp_path / "cache"
    SpecSource(tmp_path / "specs", cache_dir=cache).load()
    assert _rows(cache, "entries") == 150
    for epochs in range(2, 22):  # one file, edited and checked alone, again and again
        paths[0].write_text(SPEC.format(name="job-0", epochs=epochs))
        SpecSource(tmp_path / "specs", cache_dir=cache).load([paths[0]])
    assert _rows(cache, "entries") == 150 + 20  # nothing of the others went
    daemon = SpecSource(tmp_path / "specs", cache_dir=cache, reuse=True)
    daemon.load()
    paths[1].write_text(SPEC.format(name="job-1", epochs=9))
    daemon.load()  # reads only the changed file: it must not prune what it did not read
    assert _rows(cache, "entries") == 150 + 20 + 1
    SpecSource(tmp_path / "specs", cache_dir=cache).load()  # the whole tree (warm): prunes
    assert _rows(cache, "entries") == 150
    assert _rows(cache, "data_stats") <= 1 and _rows(cache, "data_checks") == 1


def test_lines_are_found_lazily_in_multi_document_files(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    _tree(root, 0)
    both = SPEC.format(name="a", epochs=1) + "---\n# the second\n" + SPEC.format(name="b", epochs=2)
    (root / "two.yaml").write_text(both)
    specs, _ = _load(root, tmp_path / "cache")
    assert specs.specs["a"].line == 1 and specs.specs["b"].line == 12
    assert specs.specs["b"].line_of("spec", "training_file") == 19
    assert specs.specs["b"].line_of("metadata", "name") == 15


def _cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "TOGETHER_API_KEY": "k", "NO_COLOR": "1", **env}
    if "RECONCILER_CACHE" not in env:
        full.pop("RECONCILER_CACHE", None)
    argv = [sys.executable, "-m", "reconciler", "--specs", str(tmp_path / "specs")]
    argv += ["--ledger", str(tmp_path / "state" / "ledger.db"), "validate", "--offline"]
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=120)


@pytest.mark.process
def test_commands_keep_the_cache_beside_the_ledger_unless_told_not_to(tmp_path: Path) -> None:
    _tree(tmp_path / "specs", 2)
    (tmp_path / "specs" / "data" / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "hi"}, '
        '{"role": "assistant", "content": "hello"}]}\n' * 2
    )
    fresh = _cli(tmp_path)  # a fresh checkout: validate creates no state folder
    assert fresh.returncode == 0, fresh.stderr
    assert not (tmp_path / "state").exists()
    (tmp_path / "state").mkdir()
    off = _cli(tmp_path, RECONCILER_CACHE="off")
    assert off.returncode == 0, off.stderr
    assert not (tmp_path / "state" / "cache").exists()
    on = _cli(tmp_path)
    assert on.returncode == 0, on.stderr
    assert (tmp_path / "state" / "cache" / speccache.CACHE_FILE).is_file()
    elsewhere = _cli(tmp_path, RECONCILER_CACHE=str(tmp_path / "elsewhere"))
    assert elsewhere.returncode == 0 and (tmp_path / "elsewhere" / speccache.CACHE_FILE).is_file()
    assert fresh.stdout == on.stdout == off.stdout == elsewhere.stdout


def test_specs_with_equal_settings_share_them_and_only_those(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    _tree(root, 0)
    settings = {
        "a": "lora: {r: 8, alpha: 16}\n  hyperparameters: {epochs: 2}",
        "b": "lora: {r: 8, alpha: 16}\n  hyperparameters: {epochs: 2}",
        "c": "lora: {r: 8, alpha: 16.5}\n  hyperparameters: {epochs: 2, seed: null}",
    }
    for name, extra in settings.items():
        text = SPEC.format(name=name, epochs=1).replace(
            "  hyperparameters: {epochs: 1, learning_rate: 1.0e-5}\n", ""
        )
        (root / f"{name}.yaml").write_text(text + f"  {extra}\n")
    specs, _ = _load(root, tmp_path / "cache")
    a, b, c = (specs.specs[n].job.spec for n in "abc")
    assert a.lora is b.lora and a.hyperparameters is b.hyperparameters
    assert c.lora is not a.lora  # another alpha
    # equal values, but seed given (as null): another fields set, kept apart
    assert c.hyperparameters == a.hyperparameters and c.hyperparameters is not a.hyperparameters
    assert c.hyperparameters.model_fields_set == {"epochs", "seed"}
    assert a.hyperparameters.model_fields_set == {"epochs"}


RECORD = (
    '{"messages": [{"role": "user", "content": "hi"}, '
    '{"role": "assistant", "content": "hello %d"}]}\n'
)


def _checked(root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Path]]:
    from reconciler import validation

    calls: list[Path] = []
    real = validation.check_data_file

    def counting(path: Path, **kw: Any) -> Any:
        calls.append(path)
        return real(path, **kw)

    monkeypatch.setattr(validation, "check_data_file", counting)
    store = SpecCache(cache)
    specs = load_tree([root], store=store)
    state = validation.desired_state(specs, root, store=store)
    store.save()
    assert not state.errors, state.errors
    return state, calls


def test_data_file_checks_are_kept_by_content_and_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "specs"
    _tree(root, 3)  # three specs, one data file
    data = root / "data" / "train.jsonl"
    data.write_text("".join(RECORD % i for i in range(3)))
    monkeypatch.setattr(speccache, "_RACY_NS", 0)  # no waiting out the clock's tick here
    first, calls = _checked(root, tmp_path / "cache", monkeypatch)
    assert len(calls) == 1
    again, calls = _checked(root, tmp_path / "cache", monkeypatch)
    assert calls == []  # not read again
    assert again.reports == first.reports
    # another content of the same size: its identity (times) differ, so it is read
    data.write_text("".join(RECORD % (i + 3) for i in range(3)))
    changed, calls = _checked(root, tmp_path / "cache", monkeypatch)
    assert len(calls) == 1
    assert changed.jobs[0].training_sha256 != first.jobs[0].training_sha256
    # back to the first content: a new identity, so read again, and found to be the first
    data.write_text("".join(RECORD % i for i in range(3)))
    back, calls = _checked(root, tmp_path / "cache", monkeypatch)
    assert back.jobs[0].training_sha256 == first.jobs[0].training_sha256


def test_a_data_file_changed_within_the_tick_is_always_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "specs"
    _tree(root, 1)
    (root / "data" / "train.jsonl").write_text("".join(RECORD % i for i in range(3)))
    for _ in range(2):  # just written: its identity is not trusted yet
        _, calls = _checked(root, tmp_path / "cache", monkeypatch)
        assert len(calls) == 1


def test_new_entries_are_written_as_they_come_not_all_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(speccache, "_FLUSH", 2)
    _tree(tmp_path / "specs", 5)
    store = SpecCache(tmp_path / "cache", prune=True)
    load_tree([tmp_path / "specs"], store=store)
    assert len(store.new) < 2  # the others are in the file already
    with sqlite3.connect(tmp_path / "cache" / speccache.CACHE_FILE) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 4
    store.save()
    _, warm = _load(tmp_path / "specs", tmp_path / "cache")
    assert warm.hits == 5 and not warm.new
