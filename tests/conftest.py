"""Shared fixtures: a specs tree written on demand, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Clock, SpecTree

from reconciler import redact


@pytest.fixture
def tree(tmp_path: Path) -> SpecTree:
    return SpecTree(tmp_path / "specs")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    redact.clear()
