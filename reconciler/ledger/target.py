"""What ``--ledger`` names: a SQLite file (a path, the default ``state/ledger.db``) or a
PostgreSQL database (a ``postgresql://`` or ``postgres://`` URL). URLs are shown with
their password replaced by ``***``, everywhere."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.lower().startswith(SCHEMES)


def password_of(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def display(url: str) -> str:
    """The URL without its password (and without a ``password=`` query parameter)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:***@{host}"
    except ValueError:
        return "postgresql://(unreadable URL)"
    query = "&".join(
        "password=***" if kv.lower().startswith("password=") else kv
        for kv in parts.query.split("&")
        if kv
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
