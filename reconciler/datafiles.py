"""Check a JSONL training-data file in one streaming pass: hash, count, format, tokens.

The file is read once, in binary, line by line (a line is the unit of memory, and one
over ``MAX_LINE_BYTES`` is refused); the sha256 is fed the exact bytes as they pass.
Each non-blank line must be a UTF-8 JSON object of one format (DESIGN §8, providers.md
§2.3, §3.3, §4.3), and a file holds one format only. Problems raise ``SpecError`` at
``data-file:line`` with the record key path as field, and name the spec field that
referred to the file, so the user knows both where to look and why it was read.

What each provider accepts (formats per method, roles, tools, weights, images, minimum
example counts, file-size limits) is data: the ``ProviderRules`` of its catalog entry.
A message about a provider-specific rule names the provider.

Extra top-level keys are allowed: OpenAI RFT graders and the like ride along, and
providers ignore what they do not use.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datarules import CALLS, FUNCTION_CALL, MB, DataFormat, ProviderRules, Role
from .errors import SpecError

MAX_LINE_BYTES = 64 * 1024 * 1024  # one record bigger than this is a mistake, not data
_READ_BUFFER = 1024 * 1024  # fewer syscalls on big files; readline works inside it
_MB = MB


@dataclass(frozen=True)
class DataFileReport:
    """What one pass over a valid data file learned about it.

    ``approx_tokens`` is an offline approximation (4 characters a token, rounded up
    per record over its text content), good for budget estimates, not for billing.
    ``notes`` are a provider's advice the file does not follow: worth a warning only.
    """

    path: Path
    sha256: str  # hex digest of the exact bytes of the file
    bytes: int
    records: int  # non-blank lines
    format: DataFormat
    approx_tokens: int
    has_tools: bool  # some record declares tools, calls one, or holds a tool message
    notes: tuple[str, ...] = ()


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
_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), "number")


def _show(value: object) -> str:
    """A short one-line rendering of a user's value for a message."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 30 else value[:30] + "…")
    return _kind(value)


def _size(n: int) -> str:
    """A byte count as the providers' documents write it: 512 MB, 50.1 GB."""
    if n >= 1_000_000_000 and n % 100_000_000 == 0:
        return f"{n / 1_000_000_000:g} GB"
    if n >= _MB and n % _MB == 0:
        return f"{n // _MB} MB"
    return f"{n} bytes"


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
    provider: str = "together",
    role: Role = "training",
    max_bytes: int | None = None,
    min_records: int | None = None,
) -> DataFileReport:
    """Validate the JSONL data file ``path`` that ``field`` of ``spec_file`` names.

    ``provider`` picks the rules of its catalog entry; ``role`` says whether the file trains or
    validates (minimum counts differ); ``max_bytes`` and ``min_records`` override the
    provider's figures.
    """
    if method not in ("sft", "dpo"):
        raise ValueError(f"unknown training method {method!r}")
    if role not in ("training", "validation"):
        raise ValueError(f"unknown data file role {role!r}")
    from .providers import CATALOG

    entry = CATALOG.get(provider)
    if entry is None:
        raise ValueError(f"unknown provider {provider!r}")
    rules = entry.data_rules
    p = rules.name
    limit = rules.max_bytes if max_bytes is None else max_bytes
    if min_records is None:
        min_records = rules.min_training if role == "training" else rules.min_validation
    # a method the provider lacks is reported at spec.method by its request rules;
    # here the data is then only held to the formats the provider takes at all
    wanted = rules.formats.get(method)
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
    if st.st_size > limit:
        over = f"data file is {st.st_size} bytes, over the {limit} limit"
        if not _size(limit).endswith(" bytes"):
            over += f" ({_size(limit)})"
        raise at_spec(f"{p}: {over}: {path}")

    digest = hashlib.sha256()
    size = records = tokens = lineno = first_line = 0
    tools = False
    fmt: DataFormat | None = None
    with path.open("rb", buffering=_READ_BUFFER) as f:
        while line := f.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            digest.update(line)
            size += len(line)
            if size > limit:  # the file grew after stat()
                raise at_spec(f"{p}: data file is over {limit} bytes, the limit: {path}")
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
                kind, chars, calls_tools = _check_record(record, rules)
            except _Bad as e:
                raise at_line(lineno, e.field, e.message) from None
            if fmt is None:  # the first record decides the format of the file
                fmt, first_line = kind, lineno
                if wanted is not None and kind not in wanted:
                    if kind is DataFormat.PREFERENCE:
                        why = f"preference data trains with method: dpo, not {method}"
                    else:
                        why = f"method {method} needs preference data, this is {kind}"
                    raise at_line(lineno, None, why)
            elif kind is not fmt:
                mixed = f"line {lineno} is {kind} data but line {first_line} was {fmt}"
                raise at_line(lineno, None, f"{mixed}: a file must hold one format")
            tokens += (chars + 3) // 4  # ceil(chars / 4) per record
            tools = tools or calls_tools
    if fmt is None:
        raise at_spec(f"data file has no records: {path}")
    if records < min_records:
        raise at_spec(f"{p} needs at least {min_records} {role} examples, {path} has {records}")
    notes: tuple[str, ...] = ()
    advised = rules.advised_validation_bytes
    if role == "validation" and advised is not None and size > advised:
        notes = (
            f"{p} advises a validation file of at most {_size(advised)}: {path} is {size} bytes",
        )
    return DataFileReport(path, digest.hexdigest(), size, records, fmt, tokens, tools, notes)


def _check_record(record: dict[str, Any], rules: ProviderRules) -> tuple[DataFormat, int, bool]:
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
    if fmt in rules.refused:  # before its content: the format is what is wrong
        raise _Bad(None, rules.refused[fmt])
    for key in _KEYS_OF[fmt]:
        if key not in record:
            raise _Bad(key, f"missing: {fmt} records need {'+'.join(_KEYS_OF[fmt])}")
    if fmt is DataFormat.CONVERSATIONAL:
        labelled = rules.labels and "labels" in record
        if labelled:
            _check_labels(record["labels"], rules.name)
        chars, tools = _check_messages(
            record["messages"], "messages", rules, prompt=False, answer=not labelled
        )
        return fmt, chars, _check_tools(record, "", rules) or tools
    if fmt is DataFormat.INSTRUCTION:
        return fmt, _string(record, "prompt") + _string(record, "completion"), False
    if fmt is DataFormat.TEXT:
        if rules.labels:  # a classifier record: the labels are what it trains on
            if "labels" not in record:
                raise _Bad(
                    None,
                    f"{rules.name} does not accept text data without labels (classifier"
                    " records): use messages",
                )
            _check_labels(record["labels"], rules.name)
        return fmt, _string(record, "text"), False
    return (fmt, *_check_preference(record, rules))


def _string(record: dict[str, Any], key: str) -> int:
    value = record[key]
    if not isinstance(value, str):
        raise _Bad(key, f"must be a string, got {_kind(value)}")
    return len(value)


def _check_labels(labels: Any, p: str) -> None:
    """Classifier labels: {target: label or [labels]}, every label a string."""
    if not isinstance(labels, dict) or not labels:
        raise _Bad("labels", f"{p}: must be an object of target: label, got {_show(labels)}")
    for target, value in labels.items():
        if isinstance(value, str):
            continue
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise _Bad(f"labels.{target}", f"{p}: must be a label or a non-empty list of labels")


def _check_tools(holder: dict[str, Any], prefix: str, rules: ProviderRules) -> bool:
    """The tool declarations beside a chat: ``tools``, ``parallel_tool_calls``, ``functions``."""
    declared = False
    if "tools" in holder:
        if not rules.tools:
            raise _Bad(f"{prefix}tools", f"{rules.name}: tools are not supported")
        tools = holder["tools"]
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise _Bad(f"{prefix}tools", "must be a list of tool definitions (objects)")
        declared = bool(tools)
    if "parallel_tool_calls" in holder and type(holder["parallel_tool_calls"]) is not bool:
        shown = _show(holder["parallel_tool_calls"])
        raise _Bad(f"{prefix}parallel_tool_calls", f"must be true or false, got {shown}")
    if "functions" in holder:
        if not rules.functions:
            raise _Bad(f"{prefix}functions", f"{rules.name}: functions is not supported: use tools")
        functions = holder["functions"]
        if not isinstance(functions, list) or not all(isinstance(t, dict) for t in functions):
            raise _Bad(f"{prefix}functions", "must be a list of function definitions (objects)")
        declared = declared or bool(functions)
    return declared


def _check_messages(
    messages: Any, where: str, rules: ProviderRules, *, prompt: bool, answer: bool = True
) -> tuple[int, bool]:
    """Validate a chat; ``prompt`` means a DPO input, which must end on the user's turn,
    and ``answer`` that it must hold an assistant message (all but classifier chats)."""
    if not isinstance(messages, list) or not messages:
        raise _Bad(where, f"must be a non-empty list of messages, got {_show(messages)}")
    p = rules.name
    next_roles, weighs, functions = rules.next_roles, rules.weights, rules.functions
    chars = images = 0
    tools = False
    state = ""
    assistants = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _Bad(f"{where}[{i}]", f"must be a message object, got {_kind(m)}")
        role = m.get("role")
        if role not in next_roles[state]:  # a tuple compares, never hashes: a list role is safe
            raise _Bad(f"{where}[{i}].role", _role_problem(state, role, rules))
        calls = m.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise _Bad(f"{where}[{i}].tool_calls", "only assistant messages may call tools")
            if not rules.tools:
                raise _Bad(f"{where}[{i}].tool_calls", f"{p}: tool calls are not supported")
            chars += _check_calls(calls, f"{where}[{i}].tool_calls")
            tools = True
        # only OpenAI knows function_call: elsewhere it rides along unless the message
        # leans on it for want of content (below), and the common case pays no lookup
        called = m.get("function_call") if functions else None
        if called is not None:
            chars += _check_function_call(called, role, f"{where}[{i}].function_call")
            tools = True
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            text, pictures = _check_parts(content, f"{where}[{i}].content", rules, prompt)
            chars += text
            images += pictures
        elif content is not None:
            raise _Bad(f"{where}[{i}].content", f"must be a string or a list, got {_kind(content)}")
        elif not calls and not called:  # a tool call may stand in for the text, nothing else may
            if "function_call" in m:
                where_call = f"{where}[{i}].function_call"
                raise _Bad(where_call, f"{p}: function_call is not supported: use tool_calls")
            raise _Bad(
                f"{where}[{i}].content", "missing: only a message with tool_calls may omit it"
            )
        if "weight" in m:
            weight = m["weight"]  # bool is an int in Python: compare the type itself
            if role != "assistant" or not weighs or type(weight) is not int or weight not in (0, 1):
                raise _Bad(f"{where}[{i}].weight", _weight_problem(weight, role, rules))
        if role == "assistant":
            assistants += 1
            state = CALLS if calls else FUNCTION_CALL if called else role
        else:
            state = role
            tools = tools or role == "tool" or role == "function"
    if prompt and state != "user":
        raise _Bad(f"{where}[{len(messages) - 1}].role", "the input must end with a user message")
    if not prompt and answer and not assistants:
        raise _Bad(where, "needs at least one assistant message")
    if images and rules.max_images is not None and images > rules.max_images:
        raise _Bad(where, f"{p}: at most {rules.max_images} images an example, this has {images}")
    return chars, tools


def _role_problem(state: str, role: Any, rules: ProviderRules) -> str:
    wanted = ", ".join(rules.roles)
    if not isinstance(role, str):
        return f"{rules.name}: role must be one of {wanted}, got {_show(role)}"
    if role not in rules.roles:
        shown = repr(role) if len(role) <= 30 else repr(role[:30]) + "…"
        return f"{rules.name}: role {shown} is not one of {wanted}"
    if role == "system":
        return "a system message may only be the first message"
    if not state:
        return f"the first message must be system or user, got {role}"
    return f"{state} must be followed by {' or '.join(rules.next_roles[state])}, got {role}"


def _weight_problem(weight: Any, role: Any, rules: ProviderRules) -> str:
    if not rules.weights:
        return f"{rules.name}: message weights are not supported"
    if role != "assistant":
        return "only assistant messages may carry a weight"
    return f"must be 0 or 1, got {_show(weight)}"


def _check_calls(calls: Any, where: str) -> int:
    if not isinstance(calls, list) or not calls:
        raise _Bad(where, "must be a non-empty list of tool calls")
    chars = 0
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        chars += _check_function(fn, f"{where}[{k}].function")
    return chars


def _check_function_call(called: Any, role: Any, where: str) -> int:
    if role != "assistant":
        raise _Bad(where, "only assistant messages may call functions")
    return _check_function(called, where)


def _check_function(fn: Any, where: str) -> int:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise _Bad(where, "must be an object with a string name")
    arguments = fn.get("arguments")
    return len(arguments) if isinstance(arguments, str) else 0  # arguments are trained on


def _check_parts(
    parts: list[Any], where: str, rules: ProviderRules, prompt: bool
) -> tuple[int, int]:
    """Multimodal content: text and image parts; (characters, images). ``prompt`` means a
    DPO input, where a provider may refuse images it takes in sft data."""
    if not parts:
        raise _Bad(where, "must not be an empty list")
    chars = images = 0
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _Bad(f"{where}[{j}].text", f"must be a string, got {_kind(text)}")
            chars += len(text)
        elif kind == "image_url":
            if not (rules.preference_images if prompt else rules.images):
                why = "DPO data is text-only" if prompt else "images are not supported"
                raise _Bad(f"{where}[{j}].type", f"{rules.name}: {why}")
            image = part.get("image_url")
            if isinstance(image, dict):
                url = image.get("url")
            elif rules.bare_image_urls:  # Mistral's documented shape: a string
                url = image
            else:
                raise _Bad(f"{where}[{j}].image_url", f"{rules.name}: must be {{url: string}}")
            if not isinstance(url, str) or not url:
                raise _Bad(f"{where}[{j}].image_url", "must be {url: string} or a URL string")
            images += 1
        else:
            raise _Bad(f"{where}[{j}].type", f"must be text or image_url, got {_show(kind)}")
    return chars, images


def _check_preference(record: dict[str, Any], rules: ProviderRules) -> tuple[int, bool]:
    given = record["input"]
    if not isinstance(given, dict):
        raise _Bad("input", f"must be an object with messages, got {_kind(given)}")
    chars, tools = _check_messages(given.get("messages"), "input.messages", rules, prompt=True)
    tools = _check_tools(given, "input.", rules) or tools
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
