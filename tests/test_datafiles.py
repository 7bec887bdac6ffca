"""Data-file checks: formats, the line and field of each problem, hashing, limits."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import datafiles
from reconciler.datafiles import DataFileReport, DataFormat, check_data_file, sha256_file
from reconciler.errors import SpecError
from reconciler.providers import CATALOG

SPEC = Path("specs/support.yaml")
FIELD = "spec.training_file"

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
INSTRUCTION = {"prompt": "2+2=", "completion": "4"}
TEXT = {"text": "The quick brown fox."}
PREFERENCE: dict[str, Any] = {
    "input": {"messages": [{"role": "user", "content": "Say hi"}]},
    "preferred_output": [{"role": "assistant", "content": "Hi!"}],
    "non_preferred_output": [{"role": "assistant", "content": "No."}],
}


def with_rules(monkeypatch: pytest.MonkeyPatch, provider: str, **change: Any) -> None:
    """The provider's catalog entry, for this test, with other data-file rules."""
    info = CATALOG[provider]
    changed = replace(info, data_rules=replace(info.data_rules, **change))
    monkeypatch.setitem(CATALOG.builtin, provider, changed)  # type: ignore[index]


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
    (msgs(("bot", "x"), A), "messages[0].role", "together: role 'bot' is not one of"),
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


BOM = b"\xef\xbb\xbf"


def test_a_byte_order_mark_is_read_past_where_the_provider_accepts_one(tmp_path: Path) -> None:
    assert CATALOG["openai"].data_rules.byte_order_mark == "accepted"
    path = write(tmp_path, [BOM + json.dumps(CHAT).encode()] + [CHAT] * 9)
    report = check(path, provider="openai")
    assert report.records == 10 and report.format is DataFormat.CONVERSATIONAL
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # mark included
    assert check(write(tmp_path, [BOM, *[CHAT] * 10]), provider="openai").records == 10


@pytest.mark.parametrize(
    ("provider", "why"),
    [("together", "refuses it"), ("mistral", "does not document accepting it")],
)
def test_a_byte_order_mark_a_provider_does_not_take_is_named_not_invalid_json(
    tmp_path: Path, provider: str, why: str
) -> None:
    path = write(tmp_path, [BOM + json.dumps(CHAT).encode(), CHAT])
    err = error(path, provider=provider)
    assert (err.file, err.line) == (path, 1)
    assert err.message.startswith(
        f"data file starts with a UTF-8 byte-order mark; {provider} {why}: save it without BOM"
    )


def test_a_byte_order_mark_inside_a_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, [CHAT, BOM + json.dumps(CHAT).encode()])
    err = error(path, provider="openai")
    assert err.line == 2 and "byte-order mark in the middle of the file" in err.message
    assert "invalid JSON" not in err.message


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
    assert info.value.message == f"together needs at least 10 training examples, {path} has 9"
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
        # a relative import is one of the package's own modules
        "reconciler" if isinstance(node, ast.ImportFrom) and node.level else name.split(".")[0]
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


# -- provider rules -----------------------------------------------------------------

LABELLED_TEXT = {"text": "Great product!", "labels": {"sentiment": "positive"}}
LABELLED_CHAT = {
    "messages": [{"role": "user", "content": "Refund please"}],
    "labels": {"intent": ["refund", "billing"]},
}
ENOUGH = 10  # OpenAI's minimum, so one file of the same record fits every provider


@pytest.mark.parametrize(
    ("provider", "record", "fmt", "method"),
    [
        ("together", CHAT, DataFormat.CONVERSATIONAL, "sft"),
        ("together", INSTRUCTION, DataFormat.INSTRUCTION, "sft"),
        ("together", TEXT, DataFormat.TEXT, "sft"),
        ("together", PREFERENCE, DataFormat.PREFERENCE, "dpo"),
        ("openai", CHAT, DataFormat.CONVERSATIONAL, "sft"),
        ("openai", INSTRUCTION, DataFormat.INSTRUCTION, "sft"),  # babbage-002, davinci-002
        ("openai", PREFERENCE, DataFormat.PREFERENCE, "dpo"),
        ("mistral", CHAT, DataFormat.CONVERSATIONAL, "sft"),
        ("mistral", LABELLED_TEXT, DataFormat.TEXT, "sft"),  # classifier
        ("mistral", LABELLED_CHAT, DataFormat.CONVERSATIONAL, "sft"),  # classifier, no answer
        ("mistral", CHAT, DataFormat.CONVERSATIONAL, "dpo"),  # the method is refused elsewhere
    ],
)
def test_each_provider_accepts_its_formats(
    tmp_path: Path, provider: str, record: Any, fmt: DataFormat, method: str
) -> None:
    report = check(write(tmp_path, [record] * ENOUGH), provider=provider, method=method)
    assert (report.format, report.records) == (fmt, ENOUGH)


@pytest.mark.parametrize(
    ("provider", "record", "method", "message"),
    [
        (
            "openai",
            TEXT,
            "sft",
            "openai does not accept text data: use messages"
            " (or prompt+completion for babbage-002 and davinci-002)",
        ),
        ("openai", LABELLED_TEXT, "sft", "openai does not accept text data"),
        (
            "mistral",
            INSTRUCTION,
            "sft",
            "mistral does not accept instruction (prompt/completion) data: use messages",
        ),
        (
            "mistral",
            TEXT,
            "sft",
            "mistral does not accept text data without labels (classifier records): use messages",
        ),
        ("mistral", PREFERENCE, "sft", "mistral does not accept preference data"),
        ("mistral", PREFERENCE, "dpo", "mistral does not accept preference data"),
        # the format is what is wrong, so it is said before the record's content
        ("openai", {"text": 5}, "sft", "openai does not accept text data"),
        ("mistral", {"prompt": "p"}, "sft", "mistral does not accept instruction"),
    ],
)
def test_a_format_a_provider_refuses_is_named_at_its_line(
    tmp_path: Path, provider: str, record: Any, method: str, message: str
) -> None:
    path = write(tmp_path, ["", record, record])
    err = error(path, provider=provider, method=method)
    assert (err.file, err.line, err.field) == (path, 2, None)
    assert err.message.startswith(message)
    assert str(err) == f"{path}:2: {err.message}"


def test_a_later_unlabelled_text_record_is_refused_by_mistral(tmp_path: Path) -> None:
    err = error(write(tmp_path, [LABELLED_TEXT, LABELLED_TEXT, TEXT]), provider="mistral")
    assert err.line == 3
    assert "mistral does not accept text data without labels" in err.message


@pytest.mark.parametrize(
    ("labels", "key", "words"),
    [
        ("positive", "labels", "mistral: must be an object of target: label"),
        ({}, "labels", "mistral: must be an object"),
        ({"sentiment": 1}, "labels.sentiment", "mistral: must be a label or a non-empty list"),
        ({"sentiment": []}, "labels.sentiment", "non-empty list of labels"),
        ({"sentiment": ["a", None]}, "labels.sentiment", "non-empty list of labels"),
    ],
)
def test_mistral_classifier_labels_are_checked(
    tmp_path: Path, labels: Any, key: str, words: str
) -> None:
    for record in ({"text": "t", "labels": labels}, {**CHAT, "labels": labels}):
        path = write(tmp_path, [record])
        err = error(path, provider="mistral")
        assert (err.line, err.field) == (1, key)
        assert words in err.message
    # elsewhere labels are a key like any other: they ride along
    assert check(write(tmp_path, [{"text": "t", "labels": labels}])).records == 1


def test_the_role_message_names_the_provider_and_its_roles(tmp_path: Path) -> None:
    robot = {"messages": [{"role": "user", "content": "u"}, {"role": "robot", "content": "r"}]}
    path = write(tmp_path, [CHAT, CHAT, robot], name="x.jsonl")
    err = error(path, provider="openai")
    assert str(err) == (
        f"{path}:3: messages[1].role: openai: role 'robot' is not one of system, user,"
        f" assistant, tool, function ({FIELD} of {SPEC})"
    )
    for provider in ("together", "mistral"):
        err = error(path, provider=provider)
        assert err.message.startswith(
            f"{provider}: role 'robot' is not one of system, user, assistant, tool ("
        )


FUNCTION_CALL = {"name": "lookup", "arguments": '{"q": "x"}'}
LEGACY = {
    "messages": [
        {"role": "user", "content": "Find x"},
        {"role": "assistant", "function_call": FUNCTION_CALL},
        {"role": "function", "name": "lookup", "content": "found"},
        {"role": "assistant", "content": "Here it is."},
    ],
    "functions": [{"name": "lookup", "parameters": {}}],
}


def test_openai_takes_legacy_function_calling(tmp_path: Path) -> None:
    report = check(write(tmp_path, [LEGACY] * ENOUGH), provider="openai")
    assert report.has_tools is True
    # "Find x" + arguments + "found" + "Here it is." = 6 + 10 + 5 + 11 characters
    assert report.approx_tokens == ENOUGH * 8


@pytest.mark.parametrize(
    ("provider", "record", "key", "message"),
    [
        ("together", LEGACY, "messages[1].function_call", "together: function_call is not"),
        (
            "mistral",
            {**CHAT, "functions": []},
            "functions",
            "mistral: functions is not supported: use tools",
        ),
        (
            "together",
            {**CHAT, "functions": [{"name": "f"}]},
            "functions",
            "together: functions is not supported",
        ),
        ("openai", {**CHAT, "functions": "f"}, "functions", "list of function definitions"),
        (
            "openai",
            {"messages": [{"role": "user", "content": "u"}, {"role": "function", "content": "f"}]},
            "messages[1].role",
            "user must be followed by assistant, got function",
        ),
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "function_call": FUNCTION_CALL},
                    {"role": "tool", "content": "t"},
                ]
            },
            "messages[2].role",
            "function_call must be followed by function or user, got tool",
        ),
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "u", "function_call": FUNCTION_CALL},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "messages[0].function_call",
            "only assistant messages may call functions",
        ),
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "function_call": {}},
                ]
            },
            "messages[1].function_call",
            "string name",
        ),
        ("openai", {**CHAT, "parallel_tool_calls": "yes"}, "parallel_tool_calls", "true or false"),
        (
            "together",
            {**PREFERENCE, "input": {**PREFERENCE["input"], "parallel_tool_calls": 1}},
            "input.parallel_tool_calls",
            "true or false",
        ),
    ],
)
def test_tool_and_function_rules(
    tmp_path: Path, provider: str, record: Any, key: str, message: str
) -> None:
    method = "dpo" if "input" in record else "sft"
    err = error(write(tmp_path, [record]), provider=provider, method=method)
    assert (err.line, err.field) == (1, key)
    assert message in err.message


@pytest.mark.parametrize("provider", ["together", "openai", "mistral"])
def test_weights_tools_and_parallel_calls_pass_everywhere(tmp_path: Path, provider: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    record = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [call], "weight": 0},
            {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
            {"role": "assistant", "content": "Sunny.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "parallel_tool_calls": False,
    }
    assert check(write(tmp_path, [record] * ENOUGH), provider=provider).has_tools is True
    bad = {"messages": [U, {"role": "assistant", "content": "a", "weight": 0.5}]}
    err = error(write(tmp_path, [_fix(bad)], name="w.jsonl"), provider=provider)
    assert err.field == "messages[1].weight"
    assert err.message.startswith("must be 0 or 1, got number (")


@pytest.mark.parametrize(
    ("change", "record", "key", "message"),
    [
        (
            {"weights": False},
            {"messages": [_fix(U), {"role": "assistant", "content": "a", "weight": 1}]},
            "messages[1].weight",
            "together: message weights are not supported",
        ),
        ({"tools": False}, {**CHAT, "tools": []}, "tools", "together: tools are not supported"),
        (
            {"tools": False},
            {"messages": [_fix(U), {"role": "assistant", "tool_calls": [{}]}]},
            "messages[1].tool_calls",
            "together: tool calls are not supported",
        ),
        (
            {"images": False},
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
            "messages[0].content[0].type",
            "together: images are not supported",
        ),
    ],
)
def test_a_rule_switched_off_in_the_table_refuses_with_the_provider_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    record: Any,
    key: str,
    message: str,
) -> None:
    with_rules(monkeypatch, "together", **change)
    err = error(write(tmp_path, [record]))
    assert (err.field, err.message.split(" (")[0]) == (key, message)


def _image(url: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": url}


def _picture_chat(*images: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": "What is this?"}, *(_image(i) for i in images)]
    return {"messages": [{"role": "user", "content": content}, A]}


@pytest.mark.parametrize(
    ("provider", "record", "method", "key", "message"),
    [
        (
            "openai",
            _picture_chat("https://x/cat.png"),
            "sft",
            "messages[0].content[1].image_url",
            "openai: must be {url: string}",
        ),
        (
            "openai",
            {
                **PREFERENCE,
                "input": {"messages": [{"role": "user", "content": [_image({"url": "u"})]}]},
            },
            "dpo",
            "input.messages[0].content[0].type",
            "openai: DPO data is text-only",
        ),
        (
            "together",
            _picture_chat(*[{"url": f"https://x/{n}.png"} for n in range(11)]),
            "sft",
            "messages",
            "together: at most 10 images an example, this has 11",
        ),
    ],
)
def test_image_rules(
    tmp_path: Path, provider: str, record: Any, method: str, key: str, message: str
) -> None:
    err = error(write(tmp_path, [_fix(record)]), provider=provider, method=method)
    assert (err.line, err.field) == (1, key)
    assert err.message.startswith(message)


def test_images_each_provider_takes(tmp_path: Path) -> None:
    url = {"url": "data:image/png;base64,AAAA"}
    openai = [_fix(_picture_chat(url))] * ENOUGH
    assert check(write(tmp_path, openai), provider="openai").records == ENOUGH
    mistral = [_fix(_picture_chat("data:image/png;base64,AAAA", url))]  # both shapes
    assert check(write(tmp_path, mistral), provider="mistral").records == 1
    ten = [_fix(_picture_chat(*[url] * 10))]
    assert check(write(tmp_path, ten)).records == 1
    preference = {**PREFERENCE, "input": {"messages": [_fix(_picture_chat(url))["messages"][0]]}}
    assert check(write(tmp_path, [preference]), method="dpo").records == 1  # together


def test_openai_needs_ten_training_examples(tmp_path: Path) -> None:
    path = write(tmp_path, [CHAT] * 9)
    with pytest.raises(SpecError) as info:
        check(path, provider="openai")
    err = info.value
    assert (err.file, err.line, err.field) == (SPEC, 12, FIELD)
    assert str(err) == (
        f"{SPEC}:12: {FIELD}: openai needs at least 10 training examples, {path} has 9"
    )
    assert check(write(tmp_path, [CHAT] * 10, name="ten.jsonl"), provider="openai").records == 10
    # a validation file has no such minimum, and the other providers take one example
    validation = check(path, provider="openai", role="validation", field="spec.validation_file")
    assert validation.records == 9
    for provider in ("together", "mistral"):
        assert check(write(tmp_path, [CHAT], name="one.jsonl"), provider=provider).records == 1


def test_min_records_overrides_the_provider(tmp_path: Path) -> None:
    path = write(tmp_path, [CHAT] * 3)
    assert check(path, provider="openai", min_records=3).records == 3
    with pytest.raises(SpecError) as info:
        check(path, provider="mistral", role="validation", min_records=4)
    assert info.value.message == f"mistral needs at least 4 validation examples, {path} has 3"


def test_the_table_holds_each_providers_figures() -> None:
    rules = {name: info.data_rules for name, info in CATALOG.items()}
    assert (rules["openai"].min_training, rules["openai"].max_bytes) == (
        10,
        8 * 1024 * 1024 * 1024,
    )  # Uploads API
    assert (rules["mistral"].min_training, rules["mistral"].max_bytes) == (1, 512 * 1024 * 1024)
    assert (rules["together"].min_training, rules["together"].max_bytes) == (1, 50_100_000_000)
    assert rules["openai"].next_roles["an assistant message with tool_calls"] == ("tool", "user")
    assert rules["together"].next_roles["an assistant message with function_call"] == ("user",)


@pytest.mark.parametrize(
    ("provider", "limit", "shown"),
    [("openai", 1024 * 1024, "1 MB"), ("together", 1_000_000_000, "1 GB"), ("mistral", 20, None)],
)
def test_the_size_limit_comes_from_the_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, limit: int, shown: str | None
) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:  # sparse: a size over the limit without writing it
        f.truncate(limit + 1)
    with_rules(monkeypatch, provider, max_bytes=limit)
    with pytest.raises(SpecError) as info:
        check(path, provider=provider)
    assert (info.value.file, info.value.line, info.value.field) == (SPEC, 12, FIELD)
    over = f"{provider}: data file is {limit + 1} bytes, over the {limit} limit"
    expected = f"{over} ({shown}): {path}" if shown else f"{over}: {path}"
    assert info.value.message == expected


def test_mistral_advises_a_small_validation_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, [CHAT] * 20)
    size = path.stat().st_size
    with_rules(monkeypatch, "mistral", advised_validation_bytes=size - 1)
    report = check(path, provider="mistral", role="validation", field="spec.validation_file")
    assert report.notes == (
        f"mistral advises a validation file of at most {size - 1} bytes: {path} is {size} bytes",
    )
    assert check(path, provider="mistral").notes == ()  # training data: no advice
    assert check(path, role="validation").notes == ()  # together: none


def test_unknown_provider_or_role_is_a_caller_bug(tmp_path: Path) -> None:
    path = write(tmp_path, [CHAT])
    with pytest.raises(ValueError, match="cohere"):
        check(path, provider="cohere")
    with pytest.raises(ValueError, match="testing"):
        check(path, role="testing")


def test_validate_refuses_a_small_openai_file_and_a_bad_record(tmp_path: Path) -> None:
    """Through ``desired_state``, as ``validate`` and ``plan`` run it: one line each."""
    from reconciler.loader import load_tree
    from reconciler.validation import desired_state

    root = tmp_path / "specs"
    (root / "data").mkdir(parents=True)
    write(root / "data", [CHAT] * 3, name="x.jsonl")
    robot = {"messages": [{"role": "user", "content": "u"}, {"role": "robot", "content": "r"}]}
    write(root / "data", [CHAT] * 9 + [robot] + [CHAT] * 2, name="y.jsonl")
    write(root / "data", [CHAT] * 2, name="val.jsonl")  # no minimum for validation
    for name, data in (("a", "x"), ("b", "y")):
        (root / f"{name}.yaml").write_text(
            "apiVersion: reconciler/v1\n"
            "kind: FineTuneJob\n"
            "metadata:\n"
            f"  name: {name}\n"
            "spec:\n"
            "  provider: openai\n"
            "  model: gpt-4.1-mini-2025-04-14\n"
            f"  training_file: data/{data}.jsonl\n"
            "  validation_file: data/val.jsonl\n"
            "  hyperparameters: {epochs: 2, learning_rate_multiplier: 1.5}\n"
        )
    state = desired_state(load_tree([root]), root)
    assert state.jobs == []
    shown = [e.render().replace(f"{root}/", "") for e in state.errors]
    assert shown == [
        "a.yaml:8: spec.training_file: openai needs at least 10 training examples,"
        " data/x.jsonl has 3",
        "data/y.jsonl:10: messages[1].role: openai: role 'robot' is not one of system, user,"
        " assistant, tool, function (spec.training_file of b.yaml)",
    ]
    assert all("\n" not in line for line in shown)
    # three examples are enough at Together: the minimum is the provider's
    (root / "b.yaml").unlink()
    spec = root / "a.yaml"
    spec.write_text(
        spec.read_text()
        .replace("openai", "together")
        .replace("gpt-4.1-mini-2025-04-14", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
        .replace("learning_rate_multiplier: 1.5", "learning_rate: 1.0e-5")
    )
    state = desired_state(load_tree([root]), root)
    assert state.errors == []
    assert [j.name for j in state.jobs] == ["a"]
    assert [r.records for r in state.reports["a"] if r] == [3, 2]


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
