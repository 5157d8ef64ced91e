"""The detector extension point: one small ABC, one file per implementation."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from scanner.errors import DetectorError
from scanner.findings import DetectorResult, ModelArtifact

# Called as progress(done, total) by long-running work; the CLI turns it into a progress bar.
Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    del done, total


@dataclass(frozen=True)
class CleanData:
    """A little clean sample data, in the model's own input layout and value range (DESIGN.md)."""

    x: np.ndarray
    y: np.ndarray | None = None


class TimeLimitExceeded(DetectorError):
    """A model's scan ran past its time limit: a graph that never ends (a Loop of 2^62 turns), or a model too big for
    this machine."""

    kind = "time_limit"
    hint = "raise --time-limit, or scan on a faster machine (--device cuda); a model that never finishes is suspect"


@dataclass(frozen=True)
class Deadline:
    """When a model's scan must end. Detectors check it between batches (`check`); the ONNX Runtime session stops a
    forward pass that is still running when it passes."""

    seconds: float
    at: float  # on time.monotonic()'s clock

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise TimeLimitExceeded(f"the scan ran past its time limit of {self.seconds:g} s")


@dataclass(frozen=True)
class DetectionContext:
    clean_data: CleanData | None = None
    device: str = "auto"  # auto | cpu | cuda
    artifacts_dir: Path | None = None  # where to write pictures (heatmaps), when asked for
    progress: Progress = no_progress  # the scanner's progress also checks the deadline
    seed: int = 0
    deadline: Deadline | None = None  # None: no time limit
    model_name: str = ""  # what people call the model (registered name or file stem): names and captions pictures


class Detector(abc.ABC):
    """Looks at one model and says how likely it is to carry a backdoor.

    `detect` never raises for a model it cannot handle: it returns `DetectorResult.not_applicable(...)` or
    `DetectorResult.failed(...)`, so one detector's trouble never hides another's finding.
    """

    name: ClassVar[str]  # key in the JSON report: "one_pixel", "ban"
    version: ClassVar[str]  # bumped when results change; part of the re-scan key

    @abc.abstractmethod
    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult: ...
