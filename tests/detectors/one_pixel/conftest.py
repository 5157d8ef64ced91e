"""Fixtures the one-pixel tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.calibration.zoos import artifact_for, read_zoo
from scanner.detectors.interface import CleanData
from scanner.findings import ModelArtifact


@pytest.fixture(scope="module")
def shapes_model(zoo: Path) -> tuple[ModelArtifact, CleanData]:
    """A backdoored shapes32 model of the test zoo and its family's clean data."""
    loaded = read_zoo(zoo)
    model = next(m for m in loaded.models if m.family == "shapes32" and m.backdoored)
    clean = loaded.clean_data("shapes32")
    assert clean is not None
    return artifact_for(model.path), clean
