"""Keep API keys out of every line reconciler writes.

Keys are read from the environment only (``providers.http.api_key``), registered
here as they are read, and scrubbed from log events and error messages.
"""

from __future__ import annotations

_SECRETS: set[str] = set()
MASK = "***"


def register(secret: str) -> None:
    # short strings would scrub ordinary words; real keys are long
    if secret and len(secret) >= 8:
        _SECRETS.add(secret)


def scrub(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def clear() -> None:
    """Forget registered secrets (for tests)."""
    _SECRETS.clear()
