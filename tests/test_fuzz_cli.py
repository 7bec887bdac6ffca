"""Fuzz, bounded: generated specs and data files through the real CLI funnel. Every
case ends in exit 0 or exit 1 with one-line `file:line: message` problems; never a
traceback or an internal error; the ledger is never created."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import main

GOOD_SPEC = (
    "apiVersion: reconciler/v1\nkind: FineTuneJob\nmetadata: {name: fz}\n"
    "spec:\n  provider: together\n  model: m/Llama-8B\n  training_file: data/t.jsonl\n"
)
GOOD_RECORD = json.dumps(
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
)
PROBLEM = re.compile(r"^\S[^\n]*?(:\d+)?: \S")

yaml_junk = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.just("a: &a [" + "x, " * 50 + "]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n" * 3),
    st.just("[" * 5000),
    st.just("k: " + "v" * 200_000),
    st.just(GOOD_SPEC + "  training_file: again\n"),  # duplicate key
    st.just(GOOD_SPEC.replace("data/t.jsonl", "../../../etc/passwd")),
    st.just(GOOD_SPEC.replace("provider: together", "provider: [1, 2]")),
    st.just(GOOD_SPEC + "---\n" + GOOD_SPEC),  # duplicate name
    st.just(GOOD_SPEC.replace("fz", "FZ!")),
    st.just("!!python/object/apply:os.system ['true']\n"),
)
data_junk = st.one_of(
    st.binary(max_size=500),
    st.text(max_size=500).map(lambda t: t.encode("utf-16")),
    st.lists(
        st.sampled_from([GOOD_RECORD, "{", "[]", "null", '{"text": 1}', "", "\x00"]), max_size=8
    ).map(lambda lines: "\n".join(lines).encode()),
    st.just((GOOD_RECORD + "\n").encode() * 3 + b'{"messages": [' + b"1," * 100_000 + b"1]}\n"),
)


def run_cli(spec_text: str, data: bytes, *command: str) -> tuple[int, str, Path]:
    root = Path(tempfile.mkdtemp())
    specs = root / "specs"
    (specs / "data").mkdir(parents=True)
    (specs / "fz.yaml").write_text(spec_text, encoding="utf-8", errors="surrogateescape")
    (specs / "data" / "t.jsonl").write_bytes(data)
    err = io.StringIO()
    argv = [
        "--specs",
        str(specs),
        "--ledger",
        str(root / "state" / "l.db"),
        *(command or ["validate"]),
    ]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue(), root


def _ledger_state(path: Path) -> tuple[int, int, int]:
    from reconciler.ledger import open_ledger

    ledger = open_ledger(path, readonly=True)
    try:
        events = ledger.db.execute("SELECT count(*) FROM events").fetchone()[0]
        attempts = ledger.db.execute("SELECT count(*) FROM attempts").fetchone()[0]
        return ledger.serial, int(events), int(attempts)
    finally:
        ledger.close()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec_text=yaml_junk, data=data_junk)
def test_bad_input_never_changes_an_existing_ledger(spec_text: str, data: bytes) -> None:
    from reconciler.ledger import open_ledger

    state = Path(tempfile.mkdtemp()) / "l.db"
    open_ledger(state).close()
    before = _ledger_state(state)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.endswith("_API_KEY")}
    try:
        for command in (["plan", "--offline"], ["apply", "--yes"]):
            code, err, _ = run_cli(spec_text, data, "--ledger", str(state), *command)
            assert code in (0, 1, 2)
            assert "Traceback" not in err and "internal error" not in err, err
    finally:
        os.environ.update(saved)
    assert _ledger_state(state) == before


SOAK = os.environ.get("RECONCILER_SOAK") == "1"


@settings(
    max_examples=1000 if SOAK else 100, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(spec_text=st.one_of(st.just(GOOD_SPEC), yaml_junk), data=data_junk)
def test_any_spec_and_data_end_in_one_line_problems(spec_text: str, data: bytes) -> None:
    code, err, root = run_cli(spec_text, data)
    assert code in (0, 1)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line]
    if code == 1:
        assert lines[-1].startswith("error: ")
        for line in lines[:-1]:
            assert PROBLEM.match(line), line
    assert not (root / "state").exists()  # validate never touches the ledger
