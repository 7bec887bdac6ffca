"""The tag: what a job carries at the provider to say whose it is and which spec asked.

    rc<ns:4>-<key:11>      e.g. rc3f9a-0c1d2e3f4a5   (18 characters: Mistral's suffix)

``ns`` is a code of the project's namespace (``reconciler.yaml``): a job whose tag
carries another code belongs to another project and is never adopted, cancelled or
counted. ``key`` hashes (namespace, spec name, fingerprint) and not the attempt
number, so a lost ledger finds the live job of every current spec whatever its
attempt; the ledger keeps the attempt. Tags written before namespaces existed
(``rc-<12 hex>``) are still matched where the ledger recorded them. Pure module.
"""

from __future__ import annotations

import functools
import hashlib
import re

LENGTH = 18
LEGACY_LENGTH = 15
# one alternation for both forms; drivers embed it where the tag sits in a wire field
PATTERN = r"rc(?:[0-9a-z]{4}-[0-9a-f]{11}|-[0-9a-f]{12})"
_WHOLE = re.compile(f"^{PATTERN}$")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
DEFAULT_NAMESPACE = "default"


@functools.lru_cache(maxsize=64)  # one namespace per project: asked once per spec
def namespace_code(namespace: str) -> str:
    """Four base-36 characters of the namespace's hash (1.7 million codes)."""
    n = int.from_bytes(hashlib.sha256(namespace.encode()).digest()[:8], "big")
    out = ""
    for _ in range(4):
        n, digit = divmod(n, 36)
        out += _ALPHABET[digit]
    return out


def tag_for(namespace: str, name: str, fingerprint: str) -> str:
    """The tag of every attempt of ``name`` at ``fingerprint`` in ``namespace``."""
    key = hashlib.sha256(f"{namespace}\0{name}\0{fingerprint}".encode()).hexdigest()[:11]
    return f"rc{namespace_code(namespace)}-{key}"


def is_tag(text: str) -> bool:
    return bool(_WHOLE.match(text))


def code_of(tag: str) -> str | None:
    """The namespace code a tag carries; None for a legacy tag (it carries none)."""
    return tag[2:6] if len(tag) == LENGTH and is_tag(tag) else None


def is_ours(tag: str | None, namespace: str) -> bool:
    """A tag of this project's namespace (legacy tags are ours only where the ledger
    recorded them, which callers check themselves)."""
    return tag is not None and code_of(tag) == namespace_code(namespace)


PLACEHOLDER = tag_for(DEFAULT_NAMESPACE, "placeholder", "0" * 64)
