"""The detector extension point: one small ABC, one file per implementation."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from scanner.findings import Budget, Deadline, DetectorResult, ModelArtifact, Progress, no_progress


@dataclass(frozen=True)
class CleanData:
    """A little clean sample data, in the model's own input layout and value range (docs/interface.md)."""

    x: np.ndarray
    y: np.ndarray | None = None


@dataclass(frozen=True)
class DetectionContext:
    clean_data: CleanData | None = None
    device: str = "auto"  # auto | cpu | cuda
    artifacts_dir: Path | None = None  # where to write pictures (heatmaps), when asked for
    progress: Progress = no_progress  # the scanner's progress also checks the deadline
    seed: int = 0
    deadline: Deadline | None = None  # None: no time limit
    model_name: str = ""  # what people call the model (registered name or file stem): names and captions pictures
    budget: Budget | None = None  # this detector's share of --budget, to fit its settings to (None: full settings)


class Detector(abc.ABC):
    """Looks at one model and says how likely it is to carry a backdoor.

    `detect` never raises for a model it cannot handle: it returns `DetectorResult.not_applicable(...)` or
    `DetectorResult.failed(...)`, so one detector's trouble never hides another's finding.
    """

    name: ClassVar[str]  # key in the JSON report: "one_pixel", "ban"
    version: ClassVar[str]  # bumped when results change; part of the re-scan key

    @abc.abstractmethod
    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult: ...
