"""Data-file checks: formats, the line and field of each problem, hashing, limits."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import datafiles
from reconciler.datafiles import DataFileReport, DataFormat, check_data_file, sha256_file
from reconciler.errors import SpecError

SPEC = Path("specs/support.yaml")
FIELD = "spec.training_file"

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
INSTRUCTION = {"prompt": "2+2=", "completion": "4"}
TEXT = {"text": "The quick brown fox."}
PREFERENCE = {
    "input": {"messages": [{"role": "user", "content": "Say hi"}]},
    "preferred_output": [{"role": "assistant", "content": "Hi!"}],
    "non_preferred_output": [{"role": "assistant", "content": "No."}],
}


def write(tmp_path: Path, lines: list[Any], name: str = "data.jsonl") -> Path:
    """Write records (dicts are JSON-encoded, str/bytes written as they are) one a line."""
    out = bytearray()
    for line in lines:
        if isinstance(line, bytes):
            out += line
        elif isinstance(line, str):
            out += line.encode()
        else:
            out += json.dumps(line).encode()
        out += b"\n"
    path = tmp_path / name
    path.write_bytes(bytes(out))
    return path


def check(path: Path, **kw: Any) -> DataFileReport:
    kw.setdefault("field", FIELD)
    return check_data_file(path, spec_file=SPEC, spec_line=12, **kw)


def error(path: Path, **kw: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        check(path, **kw)
    err = info.value
    # every message is one line and says which spec field sent us to the file
    assert "\n" not in str(err)
    assert FIELD in str(err)
    return err


# -- accepted formats ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "fmt", "method"),
    [
        (CHAT, DataFormat.CONVERSATIONAL, "sft"),
        (INSTRUCTION, DataFormat.INSTRUCTION, "sft"),
        (TEXT, DataFormat.TEXT, "sft"),
        (PREFERENCE, DataFormat.PREFERENCE, "dpo"),
    ],
)
def test_each_format_is_accepted(tmp_path: Path, record: Any, fmt: DataFormat, method: str) -> None:
    path = write(tmp_path, [record, record, record])
    report = check(path, method=method)
    assert report.format is fmt
    assert report.records == 3
    assert report.bytes == path.stat().st_size
    assert report.path == path
    assert report.has_tools is False


def test_rich_conversations_are_accepted(tmp_path: Path) -> None:
    tool_call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    records = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
                {"role": "tool", "content": "warm", "tool_call_id": "c1"},
                {"role": "assistant", "content": "Sunny and warm.", "weight": 1},
                {"role": "user", "content": "Thanks"},
                {"role": "assistant", "content": "Bye", "weight": 0},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "parallel_tool_calls": False,  # extra top-level keys ride along
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
                        {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Call f"},
                {"role": "assistant", "tool_calls": [tool_call]},
            ]
        },
    ]
    report = check(write(tmp_path, records))
    assert report.format is DataFormat.CONVERSATIONAL
    assert report.has_tools is True


def test_preference_with_history_and_system_is_accepted(tmp_path: Path) -> None:
    record = dict(PREFERENCE)
    record["input"] = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    report = check(write(tmp_path, [record]), method="dpo")
    assert report.format is DataFormat.PREFERENCE
    assert report.has_tools is True


def test_crlf_and_missing_final_newline_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(TEXT).encode() + b"\r\n" + json.dumps(TEXT).encode())
    assert check(path).records == 2


# -- record problems: line and field ------------------------------------------------


def msgs(*pairs: tuple[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": r, "content": c} for r, c in pairs]}


U, A = ("user", "u"), ("assistant", "a")
VIOLATIONS = [
    # conversational
    ({"messages": []}, "messages", "non-empty list"),
    ({"messages": "hi"}, "messages", "non-empty list"),
    ({"messages": ["hi", "there"]}, "messages[0]", "message object"),
    (msgs(("bot", "x"), A), "messages[0].role", "must be one of"),
    ({"messages": [{"content": "x"}]}, "messages[0].role", "got null"),
    (msgs(A, U), "messages[0].role", "first message must be system or user"),
    (msgs(("system", "s"), A), "messages[1].role", "system must be followed by user"),
    (msgs(U, U), "messages[1].role", "user must be followed by assistant"),
    (msgs(U, A, A), "messages[2].role", "assistant must be followed by user"),
    (msgs(U, A, ("system", "s")), "messages[2].role", "only be the first"),
    (msgs(U, ("tool", "t")), "messages[1].role", "user must be followed by assistant"),
    (msgs(U, A, ("tool", "t")), "messages[2].role", "must be followed by user"),
    (msgs(U), "messages", "at least one assistant"),
    (msgs(("system", "s"), U), "messages", "at least one assistant"),
    (msgs(U, ("assistant", 5)), "messages[1].content", "string or a list"),
    (msgs(U, ("assistant", None)), "messages[1].content", "missing"),
    (
        {"messages": [{"role": "user", "content": "u"}, {"role": "assistant"}]},
        "messages[1].content",
        "missing",
    ),
    (msgs(U, ("assistant", [])), "messages[1].content", "empty list"),
    (msgs(U, ("assistant", [{"type": "text"}])), "messages[1].content[0].text", "string"),
    (
        msgs(U, ("assistant", [{"type": "audio"}])),
        "messages[1].content[0].type",
        "text or image_url",
    ),
    (msgs(U, ("assistant", ["x"])), "messages[1].content[0].type", "text or image_url"),
    (
        msgs(("user", [{"type": "image_url", "image_url": {"uri": "x"}}]), A),
        "messages[0].content[0].image_url",
        "url",
    ),
    (
        {"messages": [{"role": "user", "content": "u", "weight": 1}, A]},
        "messages[0].weight",
        "only assistant",
    ),
    (
        {"messages": [U, {"role": "assistant", "content": "a", "weight": 2}]},
        "messages[1].weight",
        "0 or 1",
    ),
    (
        {"messages": [U, {"role": "assistant", "content": "a", "weight": True}]},
        "messages[1].weight",
        "0 or 1",
    ),
    (
        {"messages": [{"role": "user", "content": "u", "tool_calls": [{}]}, A]},
        "messages[0].tool_calls",
        "only assistant",
    ),
    (
        {"messages": [U, {"role": "assistant", "tool_calls": [{"function": {}}]}]},
        "messages[1].tool_calls[0].function",
        "string name",
    ),
    (
        {"messages": [U, {"role": "assistant", "tool_calls": []}]},
        "messages[1].tool_calls",
        "non-empty",
    ),
    (
        {
            "messages": [
                U,
                {"role": "assistant", "content": "c", "tool_calls": [{"function": {"name": "f"}}]},
                A,
            ]
        },
        "messages[2].role",
        "tool_calls must be followed by tool or user",
    ),
    ({**msgs(U, A), "tools": {"f": 1}}, "tools", "list of tool definitions"),
    # instruction and text
    ({"prompt": "p"}, "completion", "missing"),
    ({"completion": "c"}, "prompt", "missing"),
    ({"prompt": 1, "completion": "c"}, "prompt", "got number"),
    ({"prompt": "p", "completion": ["c"]}, "completion", "got array"),
    ({"text": None}, "text", "got null"),
    # preference (checked with method dpo below)
]
PREFERENCE_VIOLATIONS = [
    ({**PREFERENCE, "input": "x"}, "input", "object with messages"),
    ({**PREFERENCE, "input": {}}, "input.messages", "non-empty list"),
    ({**PREFERENCE, "input": msgs(U, A)}, "input.messages[1].role", "end with a user message"),
    ({**PREFERENCE, "input": {**msgs(U), "tools": "x"}}, "input.tools", "list of tool"),
    (
        {k: v for k, v in PREFERENCE.items() if k != "non_preferred_output"},
        "non_preferred_output",
        "missing",
    ),
    ({**PREFERENCE, "preferred_output": []}, "preferred_output", "exactly one"),
    ({**PREFERENCE, "preferred_output": [A, A]}, "preferred_output", "exactly one"),
    ({**PREFERENCE, "preferred_output": {"role": "assistant"}}, "preferred_output", "exactly one"),
    (
        {**PREFERENCE, "non_preferred_output": [{"role": "user", "content": "x"}]},
        "non_preferred_output[0].role",
        "assistant",
    ),
    (
        {
            **PREFERENCE,
            "non_preferred_output": [
                {"role": "assistant", "content": [{"type": "text", "text": "x"}]}
            ],
        },
        "non_preferred_output[0].content",
        "must be a string",
    ),
]


def _fix(record: Any) -> Any:
    """Turn the (role, content) shorthand tuples used above into message objects."""
    if isinstance(record, tuple):
        return {"role": record[0], "content": record[1]}
    if isinstance(record, dict):
        return {k: _fix(v) for k, v in record.items()}
    if isinstance(record, list):
        return [_fix(v) for v in record]
    return record


@pytest.mark.parametrize(("record", "key", "words"), VIOLATIONS)
def test_record_violation_names_line_and_field(
    tmp_path: Path, record: Any, key: str, words: str
) -> None:
    record = _fix(record)
    good = CHAT if "messages" in record else INSTRUCTION if "prompt" in record else TEXT
    if "completion" in record and "prompt" not in record:
        good = INSTRUCTION
    path = write(tmp_path, [good, "", record, good])
    err = error(path)
    assert (err.file, err.line, err.field) == (path, 3, key)
    assert words in err.message
    assert str(err).startswith(f"{path}:3: {key}: ")
    assert str(err).endswith(f"({FIELD} of {SPEC})")


@pytest.mark.parametrize(("record", "key", "words"), PREFERENCE_VIOLATIONS)
def test_preference_violation_names_line_and_field(
    tmp_path: Path, record: Any, key: str, words: str
) -> None:
    path = write(tmp_path, [PREFERENCE, _fix(record)])
    err = error(path, method="dpo")
    assert (err.file, err.line, err.field) == (path, 2, key)
    assert words in err.message


def test_mixed_formats_are_refused_at_the_later_line(tmp_path: Path) -> None:
    path = write(tmp_path, [CHAT, CHAT, "", CHAT, CHAT, CHAT, INSTRUCTION])
    err = error(path)
    assert (err.line, err.field) == (7, None)
    assert (
        "line 7 is instruction data but line 1 was conversational: a file must hold one format"
        in err.message
    )


def test_record_with_two_formats_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [TEXT, {**TEXT, **CHAT}])
    err = error(path)
    assert err.line == 2
    assert "two formats" in err.message
    assert "conversational (messages)" in err.message and "text (text)" in err.message


def test_record_of_no_format_is_refused(tmp_path: Path) -> None:
    err = error(write(tmp_path, [{"question": "q", "answer": "a"}]))
    assert err.line == 1
    assert "no known format" in err.message and '"question"' in err.message


def test_bad_utf8_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, [TEXT, TEXT, b'{"text": "caf\xe9"}', TEXT])
    err = error(path)
    assert (err.file, err.line) == (path, 3)
    assert "not valid UTF-8" in err.message and "0xe9" in err.message


def test_bad_json_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, [TEXT, "", '{"text": "a",}', TEXT])
    err = error(path)
    assert (err.line, err.field) == (3, None)
    assert err.message.startswith("invalid JSON: ")
    assert str(err).startswith(f"{path}:3: invalid JSON: ")


@pytest.mark.parametrize("line", ['{"text": NaN}', '{"text": "x", "n": Infinity}', "[" * 100_000])
def test_nonstandard_or_too_deep_json_is_invalid(tmp_path: Path, line: str) -> None:
    err = error(write(tmp_path, [TEXT, line]))
    assert err.line == 2 and "invalid JSON" in err.message


@pytest.mark.parametrize(
    ("line", "kind"), [("[1, 2]", "array"), ('"text"', "string"), ("3", "number"), ("null", "null")]
)
def test_a_line_must_be_an_object(tmp_path: Path, line: str, kind: str) -> None:
    err = error(write(tmp_path, [TEXT, line]))
    assert err.line == 2
    assert f"must be a JSON object, got {kind}" in err.message


def test_blank_lines_are_skipped_but_keep_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, ["", TEXT, "   ", "\t", TEXT, ""])
    assert check(path).records == 2
    err = error(write(tmp_path, ["", "  ", TEXT, "", "{"], name="bad.jsonl"))
    assert err.line == 5


# -- method vs data -----------------------------------------------------------------


@pytest.mark.parametrize("record", [CHAT, INSTRUCTION, TEXT])
def test_dpo_needs_preference_data(tmp_path: Path, record: Any) -> None:
    err = error(write(tmp_path, ["", record]), method="dpo")
    assert err.line == 2
    assert "method dpo needs preference data" in err.message


def test_sft_refuses_preference_data(tmp_path: Path) -> None:
    err = error(write(tmp_path, [PREFERENCE]), method="sft")
    assert err.line == 1
    assert "method: dpo" in err.message


def test_unknown_method_is_a_caller_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rl"):
        check(write(tmp_path, [TEXT]), method="rl")


# -- hash, size, tokens -------------------------------------------------------------


def test_sha256_is_over_the_exact_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, ["", CHAT, "  ", CHAT])
    path.write_bytes(path.read_bytes() + b"\n\n")  # trailing blank lines count in the hash
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    report = check(path)
    assert report.sha256 == expected == sha256_file(path)
    assert report.bytes == len(path.read_bytes())


def test_sha256_file_handles_more_than_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 8192  # 2 MiB
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_approx_tokens_is_positive_and_deterministic(tmp_path: Path) -> None:
    path = write(tmp_path, [CHAT, CHAT])
    first, second = check(path), check(path)
    assert first.approx_tokens > 0
    assert first == second
    # "Hi" + "Hello" = 7 characters = 2 tokens a record, rounded up per record
    assert first.approx_tokens == 4
    assert check(write(tmp_path, [{"text": "x" * 9}], name="t.jsonl")).approx_tokens == 3


def test_has_tools_is_false_without_tools(tmp_path: Path) -> None:
    assert check(write(tmp_path, [{**CHAT, "tools": []}])).has_tools is False


# -- the file itself ----------------------------------------------------------------


def test_missing_file_points_at_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(SpecError) as info:
        check(path)
    err = info.value
    assert (err.file, err.line, err.field) == (SPEC, 12, FIELD)
    assert err.message == f"data file not found: {path}"


def test_directory_points_at_the_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        check(tmp_path)
    assert (info.value.file, info.value.line) == (SPEC, 12)
    assert "is a directory" in info.value.message


def test_oversize_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [TEXT, TEXT])
    size = path.stat().st_size
    with pytest.raises(SpecError) as info:
        check(path, max_bytes=size - 1)
    assert (info.value.file, info.value.line, info.value.field) == (SPEC, 12, FIELD)
    assert f"data file is {size} bytes, over the {size - 1} limit" in info.value.message
    assert check(path, max_bytes=size).bytes == size


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_has_no_records(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        check(path)
    assert (info.value.file, info.value.line) == (SPEC, 12)
    assert "no records" in info.value.message


def test_too_few_records_is_an_error_at_the_spec(tmp_path: Path) -> None:
    path = write(tmp_path, [TEXT] * 9)
    with pytest.raises(SpecError) as info:
        check(path, min_records=10)
    assert (info.value.file, info.value.line, info.value.field) == (SPEC, 12, FIELD)
    assert "9 records, fewer than the 10" in info.value.message
    assert check(write(tmp_path, [TEXT] * 10), min_records=10).records == 10


def test_a_line_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at_limit = json.dumps({"text": "x" * 20})
    monkeypatch.setattr(datafiles, "MAX_LINE_BYTES", len(at_limit))
    assert check(write(tmp_path, [at_limit, at_limit])).records == 2
    path = tmp_path / "no-newline.jsonl"
    path.write_bytes(at_limit.encode())  # exactly the limit, at EOF
    assert check(path).records == 1
    over = json.dumps({"text": "x" * 21})
    err = error(write(tmp_path, [at_limit, over, at_limit], name="over.jsonl"))
    assert err.line == 2 and "over the" in err.message


def test_module_stays_pure() -> None:
    tree = ast.parse(Path(datafiles.__file__).read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert imported <= {
        "__future__",
        "hashlib",
        "json",
        "stat",
        "dataclasses",
        "enum",
        "pathlib",
        "typing",
        "reconciler",
    }


# -- properties ---------------------------------------------------------------------

texts = st.text(max_size=40)
tool_call = st.fixed_dictionaries(
    {
        "id": st.text(max_size=5),
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": texts, "arguments": texts}),
    }
)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    """A valid conversational record: optional system, then user/assistant turns with tools."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            parts = draw(
                st.lists(
                    st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                    min_size=1,
                    max_size=2,
                )
            )
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": draw(texts)})
        if draw(st.integers(0, 3)) == 0:
            calls = draw(st.lists(tool_call, min_size=1, max_size=2))
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            messages.extend({"role": "tool", "content": draw(texts)} for _ in calls)
        answer: dict[str, Any] = {"role": "assistant", "content": draw(texts)}
        if draw(st.booleans()):
            answer["weight"] = draw(st.sampled_from([0, 1]))
        messages.append(answer)
    return {"messages": messages}


record_sets = st.lists(conversations(), min_size=1, max_size=8)
settings_ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _lines(records: list[dict[str, Any]], ascii_only: bool) -> list[str]:
    return [json.dumps(r, ensure_ascii=ascii_only) for r in records]


@settings_
@given(records=record_sets, ascii_only=st.booleans())
def test_any_valid_conversation_set_passes(
    tmp_path: Path, records: list[dict[str, Any]], ascii_only: bool
) -> None:
    path = write(tmp_path, _lines(records, ascii_only), name="prop.jsonl")
    report = check(path)
    assert report.format is DataFormat.CONVERSATIONAL
    assert report.records == len(records)
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@settings_
@given(records=record_sets, ascii_only=st.booleans(), data=st.data())
def test_a_truncated_line_is_reported_at_exactly_its_line(
    tmp_path: Path, records: list[dict[str, Any]], ascii_only: bool, data: st.DataObject
) -> None:
    lines = _lines(records, ascii_only)
    victim = data.draw(st.sampled_from(lines))
    # any proper prefix of a serialised object is invalid JSON: its closing brace is gone
    cut = data.draw(st.integers(1, len(victim) - 1))
    at = data.draw(st.integers(0, len(lines)))
    lines.insert(at, victim[:cut])
    err = error(write(tmp_path, lines, name="prop.jsonl"))
    assert err.line == at + 1
    assert "invalid JSON" in err.message
