"""One record of a fine-tuning data file, checked against a provider's rules: its
format (by the keys that mark one), messages and roles, tools and function calls,
weights, images, labels, and preference pairs. Pure: values in, values or ``RecordError``
out; ``datafiles`` adds the file, the line and the spec that named the file.
"""

from __future__ import annotations

import json
from typing import Any

from .datarules import CALLS, FUNCTION_CALL, DataFormat, ProviderRules


class RecordError(Exception):
    """A record problem; the caller adds file, line and spec context."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# Keys that mark a format; a record with keys of two formats is ambiguous (Together rejects
# it), and detecting on any key (not all) lets a partial record get a precise error.
MARKERS: tuple[tuple[DataFormat, tuple[str, ...]], ...] = (
    (DataFormat.CONVERSATIONAL, ("messages",)),
    (DataFormat.INSTRUCTION, ("prompt", "completion")),
    (DataFormat.TEXT, ("text",)),
    (DataFormat.PREFERENCE, ("input", "preferred_output", "non_preferred_output")),
)
FORMAT_OF_KEY = {key: fmt for fmt, keys in MARKERS for key in keys}
KEYS_OF = dict(MARKERS)
_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def json_kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), "number")


def show(value: object) -> str:
    """A short one-line rendering of a user's value for a message."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 30 else value[:30] + "…")
    return json_kind(value)


def check_record(record: dict[str, Any], rules: ProviderRules) -> tuple[DataFormat, int, bool]:
    """Detect and validate one record: (format, characters of text, uses tools)."""
    hits = record.keys() & FORMAT_OF_KEY.keys()  # set algebra in C: the hot path
    kinds = {FORMAT_OF_KEY[k] for k in hits}
    if len(kinds) != 1:
        if not kinds:
            seen = ", ".join(show(k) for k in list(record)[:5]) or "none"
            raise RecordError(
                None,
                "no known format: expected messages, prompt+completion, text, or"
                f" input+preferred_output+non_preferred_output (keys: {seen})",
            )
        which = " and ".join(
            f"{f} ({'+'.join(k for k in keys if k in hits)})" for f, keys in MARKERS if f in kinds
        )
        raise RecordError(
            None, f"record has keys of two formats, {which}: a record must be one format"
        )
    (fmt,) = kinds
    if fmt in rules.refused:  # before its content: the format is what is wrong
        raise RecordError(None, rules.refused[fmt])
    for key in KEYS_OF[fmt]:
        if key not in record:
            raise RecordError(key, f"missing: {fmt} records need {'+'.join(KEYS_OF[fmt])}")
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
                raise RecordError(
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
        raise RecordError(key, f"must be a string, got {json_kind(value)}")
    return len(value)


def _check_labels(labels: Any, p: str) -> None:
    """Classifier labels: {target: label or [labels]}, every label a string."""
    if not isinstance(labels, dict) or not labels:
        raise RecordError("labels", f"{p}: must be an object of target: label, got {show(labels)}")
    for target, value in labels.items():
        if isinstance(value, str):
            continue
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise RecordError(
                f"labels.{target}", f"{p}: must be a label or a non-empty list of labels"
            )


def _check_tools(holder: dict[str, Any], prefix: str, rules: ProviderRules) -> bool:
    """The tool declarations beside a chat: ``tools``, ``parallel_tool_calls``, ``functions``."""
    declared = False
    if "tools" in holder:
        if not rules.tools:
            raise RecordError(f"{prefix}tools", f"{rules.name}: tools are not supported")
        tools = holder["tools"]
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise RecordError(f"{prefix}tools", "must be a list of tool definitions (objects)")
        declared = bool(tools)
    if "parallel_tool_calls" in holder and type(holder["parallel_tool_calls"]) is not bool:
        shown = show(holder["parallel_tool_calls"])
        raise RecordError(f"{prefix}parallel_tool_calls", f"must be true or false, got {shown}")
    if "functions" in holder:
        if not rules.functions:
            raise RecordError(
                f"{prefix}functions", f"{rules.name}: functions is not supported: use tools"
            )
        functions = holder["functions"]
        if not isinstance(functions, list) or not all(isinstance(t, dict) for t in functions):
            raise RecordError(
                f"{prefix}functions", "must be a list of function definitions (objects)"
            )
        declared = declared or bool(functions)
    return declared


def _check_messages(
    messages: Any, where: str, rules: ProviderRules, *, prompt: bool, answer: bool = True
) -> tuple[int, bool]:
    """Validate a chat; ``prompt`` means a DPO input, which must end on the user's turn,
    and ``answer`` that it must hold an assistant message (all but classifier chats)."""
    if not isinstance(messages, list) or not messages:
        raise RecordError(where, f"must be a non-empty list of messages, got {show(messages)}")
    p = rules.name
    next_roles, weighs, functions = rules.next_roles, rules.weights, rules.functions
    chars = images = 0
    tools = False
    state = ""
    assistants = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RecordError(f"{where}[{i}]", f"must be a message object, got {json_kind(m)}")
        role = m.get("role")
        if role not in next_roles[state]:  # a tuple compares, never hashes: a list role is safe
            raise RecordError(f"{where}[{i}].role", _role_problem(state, role, rules))
        calls = m.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise RecordError(
                    f"{where}[{i}].tool_calls", "only assistant messages may call tools"
                )
            if not rules.tools:
                raise RecordError(f"{where}[{i}].tool_calls", f"{p}: tool calls are not supported")
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
            raise RecordError(
                f"{where}[{i}].content", f"must be a string or a list, got {json_kind(content)}"
            )
        elif not calls and not called:  # a tool call may stand in for the text, nothing else may
            if "function_call" in m:
                where_call = f"{where}[{i}].function_call"
                raise RecordError(
                    where_call, f"{p}: function_call is not supported: use tool_calls"
                )
            raise RecordError(
                f"{where}[{i}].content", "missing: only a message with tool_calls may omit it"
            )
        if "weight" in m:
            weight = m["weight"]  # bool is an int in Python: compare the type itself
            if role != "assistant" or not weighs or type(weight) is not int or weight not in (0, 1):
                raise RecordError(f"{where}[{i}].weight", _weight_problem(weight, role, rules))
        if role == "assistant":
            assistants += 1
            state = CALLS if calls else FUNCTION_CALL if called else role
        else:
            state = role
            tools = tools or role == "tool" or role == "function"
    if prompt and state != "user":
        raise RecordError(
            f"{where}[{len(messages) - 1}].role", "the input must end with a user message"
        )
    if not prompt and answer and not assistants:
        raise RecordError(where, "needs at least one assistant message")
    if images and rules.max_images is not None and images > rules.max_images:
        raise RecordError(
            where, f"{p}: at most {rules.max_images} images an example, this has {images}"
        )
    return chars, tools


def _role_problem(state: str, role: Any, rules: ProviderRules) -> str:
    wanted = ", ".join(rules.roles)
    if not isinstance(role, str):
        return f"{rules.name}: role must be one of {wanted}, got {show(role)}"
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
    return f"must be 0 or 1, got {show(weight)}"


def _check_calls(calls: Any, where: str) -> int:
    if not isinstance(calls, list) or not calls:
        raise RecordError(where, "must be a non-empty list of tool calls")
    chars = 0
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        chars += _check_function(fn, f"{where}[{k}].function")
    return chars


def _check_function_call(called: Any, role: Any, where: str) -> int:
    if role != "assistant":
        raise RecordError(where, "only assistant messages may call functions")
    return _check_function(called, where)


def _check_function(fn: Any, where: str) -> int:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise RecordError(where, "must be an object with a string name")
    arguments = fn.get("arguments")
    return len(arguments) if isinstance(arguments, str) else 0  # arguments are trained on


def _check_parts(
    parts: list[Any], where: str, rules: ProviderRules, prompt: bool
) -> tuple[int, int]:
    """Multimodal content: text and image parts; (characters, images). ``prompt`` means a
    DPO input, where a provider may refuse images it takes in sft data."""
    if not parts:
        raise RecordError(where, "must not be an empty list")
    chars = images = 0
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise RecordError(f"{where}[{j}].text", f"must be a string, got {json_kind(text)}")
            chars += len(text)
        elif kind == "image_url":
            if not (rules.preference_images if prompt else rules.images):
                why = "DPO data is text-only" if prompt else "images are not supported"
                raise RecordError(f"{where}[{j}].type", f"{rules.name}: {why}")
            image = part.get("image_url")
            if isinstance(image, dict):
                url = image.get("url")
            elif rules.bare_image_urls:  # Mistral's documented shape: a string
                url = image
            else:
                raise RecordError(
                    f"{where}[{j}].image_url", f"{rules.name}: must be {{url: string}}"
                )
            if not isinstance(url, str) or not url:
                raise RecordError(
                    f"{where}[{j}].image_url", "must be {url: string} or a URL string"
                )
            images += 1
        else:
            raise RecordError(f"{where}[{j}].type", f"must be text or image_url, got {show(kind)}")
    return chars, images


def _check_preference(record: dict[str, Any], rules: ProviderRules) -> tuple[int, bool]:
    given = record["input"]
    if not isinstance(given, dict):
        raise RecordError("input", f"must be an object with messages, got {json_kind(given)}")
    chars, tools = _check_messages(given.get("messages"), "input.messages", rules, prompt=True)
    tools = _check_tools(given, "input.", rules) or tools
    for key in ("preferred_output", "non_preferred_output"):
        out = record[key]
        if not isinstance(out, list) or len(out) != 1:
            raise RecordError(key, "must be a list of exactly one assistant message")
        answer = out[0]
        if not isinstance(answer, dict) or answer.get("role") != "assistant":
            raise RecordError(f"{key}[0].role", "must be an assistant message")
        content = answer.get("content")
        if not isinstance(content, str):
            raise RecordError(f"{key}[0].content", f"must be a string, got {json_kind(content)}")
        chars += len(content)
    return chars, tools
