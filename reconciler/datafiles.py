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

from .datarules import MB, DataFormat, Role
from .errors import SpecError
from .records import RecordError, check_record, json_kind

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


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; providers' strict parsers do not
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


_BOM = b"\xef\xbb\xbf"


def _bom_problem(lineno: int, rule: str, provider: str) -> str | None:
    """What is wrong with a line that starts with a UTF-8 byte-order mark; None where the
    provider reads past one. Never "invalid JSON": the user needs to know what to fix."""
    if lineno > 1:
        return "a UTF-8 byte-order mark in the middle of the file (were files joined?): remove it"
    if rule == "accepted":
        return None
    why = "refuses it" if rule == "refused" else "does not document accepting it"
    return f"data file starts with a UTF-8 byte-order mark; {provider} {why}: save it without BOM"


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
            if line.startswith(_BOM):
                bom = _bom_problem(lineno, rules.byte_order_mark, p)
                if bom is not None:
                    raise at_line(lineno, None, bom)
                line = line[len(_BOM) :]
            if line.isspace() or not line:
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
                raise at_line(lineno, None, f"must be a JSON object, got {json_kind(record)}")
            try:
                kind, chars, calls_tools = check_record(record, rules)
            except RecordError as e:
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
