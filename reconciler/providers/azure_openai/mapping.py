"""Azure OpenAI's deltas from OpenAI's wire format (providers-next.md §2), as a ``Host``:
``pending`` and ``paused`` statuses, a 40-character suffix that carries our tag (the
job list has no metadata filter), and the Azure-only ``trainingType``. Pure.
"""

from __future__ import annotations

from ...model import CreateRequest, Phase
from ..openai.mapping import STATUS_TO_PHASE, Host
from ..openai.mapping import request_problems as _request_problems

PROVIDER = "azure-openai"
MAX_SUFFIX = 40  # Azure's docs (the v1 document copies OpenAI's 64): [A-Za-z0-9_-]
# omitted = Standard (regional); Global and Developer train elsewhere, cheaper (§2.8)
TRAINING_TYPES = ("globalstandard", "developerTier")
TRAINING_TYPE = "trainingType"
# the one dated version documented to take trainingType (§2.3); job ids are shared
TRAINING_TYPE_API_VERSION = "2025-04-01-preview"

STATUSES: dict[str, Phase] = {
    **STATUS_TO_PHASE,
    "pending": Phase.QUEUED,  # Azure's first status (preview create example; seen live)
}


def _problems(req: CreateRequest) -> list[str]:
    kind = req.options.get(TRAINING_TYPE)
    if kind is None or kind in TRAINING_TYPES:
        return []
    return [
        f"options.{TRAINING_TYPE}: {' or '.join(TRAINING_TYPES)} at azure-openai, not "
        f"{kind!r}; leave it out for Standard (regional) training"
    ]


AZURE = Host(
    PROVIDER,
    statuses=STATUSES,
    max_suffix=MAX_SUFFIX,
    suffix_pattern=r"[A-Za-z0-9_-]+",
    tag_in_suffix=True,
    problems=_problems,
    uploads=False,  # the v1 document has no /uploads; Microsoft advises Blob import instead
)


def request_problems(req: CreateRequest) -> list[str]:
    """What Azure cannot express in a request (for spec validation)."""
    return _request_problems(req, AZURE)


def create_needs_dated_api(payload: dict[str, object], api_version: str | None) -> bool:
    """A create carrying ``trainingType`` must go to a preview ``api-version`` URL: the v1
    schema has no such field."""
    return TRAINING_TYPE in payload and not (api_version or "").endswith("-preview")
