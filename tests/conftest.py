"""Shared fixtures. Real components wherever a user would meet them: real ONNX Runtime, really trained models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def zoo() -> Path:
    """The small test zoo: a directory with manifest.json, clean and backdoored ONNX models of both families
    (digits16: 4 clean + 4 backdoored, shapes32: 3 + 3; all architectures, both exporters, five attacks) and
    clean_<family>.npz. Built once (a few minutes) and cached under $MODEL_SCANNER_CACHE (default
    ~/.cache/model-scanner), keyed by the zoo code's hash; read it with scanner.zoo.manifest.read_manifest(zoo)."""
    from scanner.zoo.cache import ensure_test_zoo

    cache_root = Path(os.environ.get("MODEL_SCANNER_CACHE") or Path.home() / ".cache" / "model-scanner")
    return ensure_test_zoo(cache_root)
