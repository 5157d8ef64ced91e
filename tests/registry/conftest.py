"""Helpers for the registry tests: real captured MLflow webhook deliveries (tests/data/mlflow-webhooks/)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DELIVERIES = Path(__file__).resolve().parent.parent / "data" / "mlflow-webhooks"
# The secret the captured deliveries were signed with (see tests/data/mlflow-webhooks/INDEX.md).
CAPTURED_SECRET = "s3cret"


def load_captured(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DELIVERIES / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture
def captured() -> Callable[[str], dict[str, Any]]:
    """Loads a captured delivery by its file name under tests/data/mlflow-webhooks/."""
    return load_captured


@pytest.fixture
def model_version_created() -> dict[str, Any]:
    return load_captured("03_model_version.created.json")
