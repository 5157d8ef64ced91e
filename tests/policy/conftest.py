"""Fixtures for policy tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def policy_file(tmp_path: Path) -> Callable[..., Path]:
    """Writes YAML text (dedented) to a policy file and returns its path."""

    def write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
