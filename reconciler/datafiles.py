"""Check a JSONL training-data file in one streaming pass: hash, count, format, tokens.

The file is read once, in binary, line by line (a line is the unit of memory, and one
over ``MAX_LINE_BYTES`` is refused); the sha256 is fed the exact bytes as they pass.
Each non-blank line must be a UTF-8 JSON object of one format (DESIGN §8, providers.md
§2.3, §3.3, §4.3), and a file holds one format only. Problems raise ``SpecError`` at
``data-file:line`` with the record key path as field, and name the spec field that
referred to the file, so the user knows both where to look and why it was read.

What each provider accepts (formats per method, roles, tools, weights, images, minimum
example counts, file-size limits) is data: one ``ProviderRules`` a provider in ``RULES``.
A message about a provider-specific rule names the provider.

Extra top-level keys are allowed: OpenAI RFT graders and the like ride along, and
providers ignore what they do not use.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from reconciler.errors import SpecError

MAX_LINE_BYTES = 64 * 1024 * 1024  # one record bigger than this is a mistake, not data
_READ_BUFFER = 1024 * 1024  # fewer syscalls on big files; readline works inside it
_MB = 1024 * 1024


class DataFormat(StrEnum):
    """The one format every record of a data file has."""

    CONVERSATIONAL = "conversational"  # {"messages": [...], "tools"?: [...]}
    INSTRUCTION = "instruction"  # {"prompt": str, "completion": str}
    TEXT = "text"  # {"text": str}
    PREFERENCE = "preference"  # {"input": {messages}, "preferred_output": [..], ...}


@dataclass(frozen=True)
class DataFileReport:
    """What one pass over a valid data file learned about it.

    ``approx_tokens`` is an offline approximation (4 characters a token, rounded up
    per record over its text content), good for budget estimates, not for billing.
    """

    path: Path
    sha256: str  # hex digest of the exact bytes of the file
    bytes: int
    records: int  # non-blank lines
    format: DataFormat
    approx_tokens: int
    has_tools: bool  # some record declares tools, calls one, or holds a tool message


class _Bad(Exception):
    """A record problem; the caller adds file, line and spec context."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; providers' strict parsers do not
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

# Keys that mark a format; a record with keys of two formats is ambiguous (Together rejects
# it), and detecting on any key (not all) lets a partial record get a precise error.
_MARKERS: tuple[tuple[DataFormat, tuple[str, ...]], ...] = (
    (DataFormat.CONVERSATIONAL, ("messages",)),
    (DataFormat.INSTRUCTION, ("prompt", "completion")),
    (DataFormat.TEXT, ("text",)),
    (DataFormat.PREFERENCE, ("input", "preferred_output", "non_preferred_output")),
)
_FORMAT_OF_KEY = {key: fmt for fmt, keys in _MARKERS for key in keys}
_KEYS_OF = dict(_MARKERS)
_ROLES = ("system", "user", "assistant", "tool")
# Which role may come next: a state machine keeps the alternation check O(1) a message.
_CALLS = "an assistant message with tool_calls"
_NEXT: dict[str, tuple[str, ...]] = {
    "": ("system", "user"),
    "system": ("user",),
    "user": ("assistant",),
    "assistant": ("user",),
    _CALLS: ("tool", "user"),  # a final tool call with no result is a valid target
    "tool": ("tool", "assistant"),
}
_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), "number")


def _show(value: object) -> str:
    """A short one-line rendering of a user's value for a message."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 30 else value[:30] + "…")
    return _kind(value)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks so memory stays flat."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_data_file(
    path: Path,
    *,
    field: str,
    spec_file: Path,
    spec_line: int | None,
    method: str = "sft",
    max_bytes: int = 50_100_000_000,
    min_records: int = 1,
) -> DataFileReport:
    """Validate the JSONL data file ``path`` that ``field`` of ``spec_file`` names."""
    if method not in ("sft", "dpo"):
        raise ValueError(f"unknown training method {method!r}")
    refer = f"({field} of {spec_file})"

    def at_spec(message: str) -> SpecError:
        return SpecError(message, spec_file, spec_line, field)

    def at_line(line: int, key: str | None, message: str) -> SpecError:
        return SpecError(f"{message} {refer}", path, line, key)

    try:
        st = path.stat()
    except FileNotFoundError:
        raise at_spec(f"data file not found: {path}") from None
    except OSError as e:
        raise at_spec(f"cannot read data file {path}: {e.strerror}") from e
    if stat.S_ISDIR(st.st_mode):
        raise at_spec(f"data file is a directory: {path}")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise at_spec(f"data file is not a regular file: {path}")
    if st.st_size > max_bytes:
        raise at_spec(f"data file is {st.st_size} bytes, over the {max_bytes} limit: {path}")

    digest = hashlib.sha256()
    size = records = tokens = lineno = first_line = 0
    tools = False
    fmt: DataFormat | None = None
    with path.open("rb", buffering=_READ_BUFFER) as f:
        while line := f.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            digest.update(line)
            size += len(line)
            if size > max_bytes:  # the file grew after stat()
                raise at_spec(f"data file is over {max_bytes} bytes, the limit: {path}")
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                raise at_line(lineno, None, f"line is over the {MAX_LINE_BYTES} byte limit")
            if line.isspace():
                continue
            records += 1
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = f"byte 0x{line[e.start]:02x} at offset {e.start}"
                raise at_line(lineno, None, f"not valid UTF-8 ({bad})") from None
            try:
                record = _DECODER.decode(text)
            except json.JSONDecodeError as e:
                raise at_line(lineno, None, f"invalid JSON: {e.msg} (column {e.colno})") from None
            except ValueError as e:  # NaN/Infinity, or an integer over the digit limit
                raise at_line(lineno, None, f"invalid JSON: {e}") from None
            except RecursionError:
                raise at_line(lineno, None, "invalid JSON: nested too deeply") from None
            if not isinstance(record, dict):
                raise at_line(lineno, None, f"must be a JSON object, got {_kind(record)}")
            try:
                kind, chars, calls_tools = _check_record(record)
            except _Bad as e:
                raise at_line(lineno, e.field, e.message) from None
            if fmt is None:
                fmt, first_line = kind, lineno
                if method == "dpo" and kind is not DataFormat.PREFERENCE:
                    raise at_line(lineno, None, f"method dpo needs preference data, this is {kind}")
                if method == "sft" and kind is DataFormat.PREFERENCE:
                    raise at_line(lineno, None, "preference data trains with method: dpo, not sft")
            elif kind is not fmt:
                mixed = f"line {lineno} is {kind} data but line {first_line} was {fmt}"
                raise at_line(lineno, None, f"{mixed}: a file must hold one format")
            tokens += (chars + 3) // 4  # ceil(chars / 4) per record
            tools = tools or calls_tools
    if fmt is None:
        raise at_spec(f"data file has no records: {path}")
    if records < min_records:
        few = f"data file has {records} records, fewer than the {min_records} needed"
        raise at_spec(f"{few}: {path}")
    return DataFileReport(path, digest.hexdigest(), size, records, fmt, tokens, tools)


def _check_record(record: dict[str, Any]) -> tuple[DataFormat, int, bool]:
    """Detect and validate one record: (format, characters of text, uses tools)."""
    hits = record.keys() & _FORMAT_OF_KEY.keys()  # set algebra in C: the hot path
    kinds = {_FORMAT_OF_KEY[k] for k in hits}
    if len(kinds) != 1:
        if not kinds:
            seen = ", ".join(_show(k) for k in list(record)[:5]) or "none"
            raise _Bad(
                None,
                "no known format: expected messages, prompt+completion, text, or"
                f" input+preferred_output+non_preferred_output (keys: {seen})",
            )
        which = " and ".join(
            f"{f} ({'+'.join(k for k in keys if k in hits)})" for f, keys in _MARKERS if f in kinds
        )
        raise _Bad(None, f"record has keys of two formats, {which}: a record must be one format")
    (fmt,) = kinds
    for key in _KEYS_OF[fmt]:
        if key not in record:
            raise _Bad(key, f"missing: {fmt} records need {'+'.join(_KEYS_OF[fmt])}")
    if fmt is DataFormat.CONVERSATIONAL:
        chars, tools = _check_messages(record["messages"], "messages", prompt=False)
        return fmt, chars, _check_tools(record, "tools") or tools
    if fmt is DataFormat.INSTRUCTION:
        return fmt, _string(record, "prompt") + _string(record, "completion"), False
    if fmt is DataFormat.TEXT:
        return fmt, _string(record, "text"), False
    return (fmt, *_check_preference(record))


def _string(record: dict[str, Any], key: str) -> int:
    value = record[key]
    if not isinstance(value, str):
        raise _Bad(key, f"must be a string, got {_kind(value)}")
    return len(value)


def _check_tools(holder: dict[str, Any], where: str) -> bool:
    if "tools" not in holder:
        return False
    tools = holder["tools"]
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise _Bad(where, "must be a list of tool definitions (objects)")
    return bool(tools)


def _check_messages(messages: Any, where: str, *, prompt: bool) -> tuple[int, bool]:
    """Validate a chat; ``prompt`` means a DPO input, which must end on the user's turn."""
    if not isinstance(messages, list) or not messages:
        raise _Bad(where, f"must be a non-empty list of messages, got {_show(messages)}")
    chars = 0
    tools = False
    state = ""
    assistants = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _Bad(f"{where}[{i}]", f"must be a message object, got {_kind(m)}")
        role = m.get("role")
        if role not in _NEXT[state]:  # a tuple compares, never hashes: a list role is safe
            if not isinstance(role, str) or role not in _ROLES:
                wanted = ", ".join(_ROLES)
                raise _Bad(f"{where}[{i}].role", f"must be one of {wanted}, got {_show(role)}")
            raise _Bad(f"{where}[{i}].role", _order_problem(state, role))
        calls = m.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise _Bad(f"{where}[{i}].tool_calls", "only assistant messages may call tools")
            chars += _check_calls(calls, f"{where}[{i}].tool_calls")
            tools = True
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += _check_parts(content, f"{where}[{i}].content")
        elif content is not None:
            raise _Bad(f"{where}[{i}].content", f"must be a string or a list, got {_kind(content)}")
        elif not calls:  # a tool call may stand in for the text, nothing else may
            raise _Bad(
                f"{where}[{i}].content", "missing: only a message with tool_calls may omit it"
            )
        if "weight" in m:
            weight = m["weight"]
            if role != "assistant":
                raise _Bad(f"{where}[{i}].weight", "only assistant messages may carry a weight")
            if type(weight) is not int or weight not in (0, 1):  # bool is an int in Python
                raise _Bad(f"{where}[{i}].weight", f"must be 0 or 1, got {_show(weight)}")
        if role == "assistant":
            assistants += 1
            state = _CALLS if calls else role
        else:
            state = role
            tools = tools or role == "tool"
    if prompt and state != "user":
        raise _Bad(f"{where}[{len(messages) - 1}].role", "the input must end with a user message")
    if not prompt and not assistants:
        raise _Bad(where, "needs at least one assistant message")
    return chars, tools


def _order_problem(state: str, role: str) -> str:
    if role == "system":
        return "a system message may only be the first message"
    if not state:
        return f"the first message must be system or user, got {role}"
    return f"{state} must be followed by {' or '.join(_NEXT[state])}, got {role}"


def _check_calls(calls: Any, where: str) -> int:
    if not isinstance(calls, list) or not calls:
        raise _Bad(where, "must be a non-empty list of tool calls")
    chars = 0
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _Bad(f"{where}[{k}].function", "must be an object with a string name")
        arguments = fn.get("arguments")
        if isinstance(arguments, str):  # the arguments are trained on, so they count
            chars += len(arguments)
    return chars


def _check_parts(parts: list[Any], where: str) -> int:
    """Multimodal content: text parts and image parts (OpenAI/Together or Mistral shape)."""
    if not parts:
        raise _Bad(where, "must not be an empty list")
    chars = 0
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _Bad(f"{where}[{j}].text", f"must be a string, got {_kind(text)}")
            chars += len(text)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image  # Mistral: a string
            if not isinstance(url, str) or not url:
                raise _Bad(f"{where}[{j}].image_url", "must be {url: string} or a URL string")
        else:
            raise _Bad(f"{where}[{j}].type", f"must be text or image_url, got {_show(kind)}")
    return chars


def _check_preference(record: dict[str, Any]) -> tuple[int, bool]:
    given = record["input"]
    if not isinstance(given, dict):
        raise _Bad("input", f"must be an object with messages, got {_kind(given)}")
    chars, tools = _check_messages(given.get("messages"), "input.messages", prompt=True)
    tools = _check_tools(given, "input.tools") or tools
    for key in ("preferred_output", "non_preferred_output"):
        out = record[key]
        if not isinstance(out, list) or len(out) != 1:
            raise _Bad(key, "must be a list of exactly one assistant message")
        answer = out[0]
        if not isinstance(answer, dict) or answer.get("role") != "assistant":
            raise _Bad(f"{key}[0].role", "must be an assistant message")
        content = answer.get("content")
        if not isinstance(content, str):
            raise _Bad(f"{key}[0].content", f"must be a string, got {_kind(content)}")
        chars += len(content)
    return chars, tools
