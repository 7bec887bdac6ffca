"""What a provider accepts in a fine-tuning data file, as a type: the formats per method,
roles, tools, weights, images, minimum example counts and size limits.

Each provider's values live in its catalog entry (``providers/<name>/entry.py``);
``datafiles.check_data_file`` holds a file to them. Pure module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

MB = 1024 * 1024


class DataFormat(StrEnum):
    """The one format every record of a data file has."""

    CONVERSATIONAL = "conversational"  # {"messages": [...], "tools"?: [...]}
    INSTRUCTION = "instruction"  # {"prompt": str, "completion": str}
    TEXT = "text"  # {"text": str}  (Mistral: a classifier record, with "labels")
    PREFERENCE = "preference"  # {"input": {messages}, "preferred_output": [..], ...}


# the keys that make each format, for messages: "instruction (prompt/completion)"
FORMAT_KEYS = {
    DataFormat.CONVERSATIONAL: "messages",
    DataFormat.INSTRUCTION: "prompt/completion",
    DataFormat.TEXT: "text",
    DataFormat.PREFERENCE: "input/preferred_output/non_preferred_output",
}


def describe(fmt: DataFormat) -> str:
    """A format as a user recognises it: its name and the keys of its records."""
    return f"{fmt} ({FORMAT_KEYS[fmt]})"


Role = Literal["training", "validation"]

# Which role may come next: a state machine keeps the alternation check O(1) a message.
# Each provider keeps the transitions into the roles it knows (ProviderRules.next_roles).
CALLS = "an assistant message with tool_calls"
FUNCTION_CALL = "an assistant message with function_call"
_NEXT: dict[str, tuple[str, ...]] = {
    "": ("system", "user"),
    "system": ("user",),
    "user": ("assistant",),
    "assistant": ("user",),
    CALLS: ("tool", "user"),  # a final tool call with no result is a valid target
    FUNCTION_CALL: ("function", "user"),  # OpenAI's legacy function calling
    "tool": ("tool", "assistant"),
    "function": ("assistant",),
}


@dataclass(frozen=True)
class ProviderRules:
    """What one provider accepts in a fine-tuning data file (providers.md §2–§4)."""

    name: str
    formats: dict[str, frozenset[DataFormat]]  # method → the formats its data may have
    refused: dict[DataFormat, str]  # a format the provider never takes → what to say
    min_training: int  # examples a training file needs at least
    min_validation: int
    max_bytes: int  # per file
    advised_validation_bytes: int | None  # over this: a note on the report, not an error
    roles: tuple[str, ...]  # message roles, in the order messages list them
    weights: bool  # an assistant message may carry "weight": 0 | 1
    tools: bool  # "tools" list, assistant "tool_calls", "tool" messages
    functions: bool  # legacy "functions" list, assistant "function_call", "function" role
    images: bool  # image_url content parts in chat (sft) data
    preference_images: bool  # image_url content parts in a DPO input
    bare_image_urls: bool  # "image_url": "<url>" besides {"url": "<url>"}
    max_images: int | None  # image parts in one example
    labels: bool  # classifier records: a text record needs "labels"; messages may have them
    # a UTF-8 byte-order mark at the start of a file: "accepted" (read past it),
    # "refused" (the provider's reader fails on it) or "unknown" (undocumented: refused,
    # since a re-save costs less than a failed upload at apply)
    byte_order_mark: Literal["accepted", "refused", "unknown"] = "unknown"
    next_roles: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = {state: tuple(r for r in nxt if r in self.roles) for state, nxt in _NEXT.items()}
        object.__setattr__(self, "next_roles", known)


CHAT = DataFormat.CONVERSATIONAL
SFT_ALL = frozenset({CHAT, DataFormat.INSTRUCTION, DataFormat.TEXT})
PREFERENCE_ONLY = frozenset({DataFormat.PREFERENCE})
