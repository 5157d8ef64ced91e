"""The shared vocabulary of the scanner: what a model is, what a detector found, what the policy decided.

Every type here is a frozen dataclass or a str-Enum, so results can be passed between threads, processes and
Ray workers, compared in tests, and turned into JSON without surprises. This module imports nothing of the package.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Called as progress(done, total) by long-running work; the CLI turns it into a progress bar.
Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    del done, total


@dataclass(frozen=True)
class Deadline:
    """When a model's scan must end. Detectors check it between batches (the scanner's progress raises
    `scanner.errors.TimeLimitExceeded` once it has `passed`); the ONNX Runtime session stops a forward pass that is
    still running when it passes."""

    seconds: float
    at: float  # on time.monotonic()'s clock

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0


class BudgetUnit(str, enum.Enum):
    SECONDS = "s"
    PASSES = "passes"


@dataclass(frozen=True)
class Budget:
    """What a model's detectors fit their settings to (`--budget`). Seconds are turned into settings from the model's
    cost of a forward pass measured on this machine, so a slower machine runs less; forward passes (forward-
    equivalents: a pass with its backward counts 3) need no timing, so a model gets the same settings anywhere."""

    amount: float
    unit: BudgetUnit = BudgetUnit.SECONDS

    @property
    def in_passes(self) -> bool:
        return self.unit is BudgetUnit.PASSES

    def share(self, parts: int) -> Budget:
        """One of `parts` even shares (each detector's)."""
        return Budget(self.amount / max(1, parts), self.unit)

    def __str__(self) -> str:
        return f"{self.amount:.0f} passes" if self.in_passes else f"{self.amount:g} s"


class Status(str, enum.Enum):
    """Whether a detector (or a whole scan) produced a result."""

    SCANNED = "scanned"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


class Verdict(str, enum.Enum):
    CLEAN = "clean"
    BACKDOORED = "backdoored"
    UNKNOWN = "unknown"


class Action(str, enum.Enum):
    """What the policy does with a model; ordered from most to least permissive."""

    ALLOW = "allow"
    WARN = "warn"
    BLOCK = "block"


class Layout(str, enum.Enum):
    NCHW = "NCHW"
    NHWC = "NHWC"


@dataclass(frozen=True)
class Normalization:
    """Per-channel (x - mean) / std that the model expects applied to images in its value range (most ImageNet
    models: mean 0.485,0.456,0.406 and std 0.229,0.224,0.225 on [0, 1]), one number per channel in channel order."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class InputSpec:
    """How to feed a model images: read from the ONNX graph, value range and normalisation from the caller or the
    policy."""

    input_name: str
    output_name: str
    layout: Layout
    channels: int
    height: int
    width: int
    num_classes: int
    value_range: tuple[float, float] = (0.0, 1.0)
    normalization: Normalization | None = None  # applied after value_range: the model's inputs are normalised

    @property
    def channel_ranges(self) -> tuple[tuple[float, float], ...]:
        """Each channel's (low, high) in the model's own input space: the value range, normalised when the model
        expects it ([(low - mean) / std, (high - mean) / std] per channel)."""
        low, high = self.value_range
        if self.normalization is None:
            return ((low, high),) * self.channels
        pairs = zip(self.normalization.mean, self.normalization.std, strict=True)
        return tuple(((low - mean) / std, (high - mean) / std) for mean, std in pairs)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image without the batch axis, in the model's own layout."""
        if self.layout is Layout.NCHW:
            return (self.channels, self.height, self.width)
        return (self.height, self.width, self.channels)


@dataclass(frozen=True)
class ModelArtifact:
    """A model that passed the intake's safety checks: self-contained ONNX bytes and how to feed it.

    `onnx_bytes` has any external data already inlined (after checking it lies inside the model's directory),
    so nothing downstream ever touches the file system on the model's behalf.
    """

    path: str
    sha256: str
    onnx_bytes: bytes = field(repr=False)
    spec: InputSpec


@dataclass(frozen=True)
class ErrorInfo:
    kind: str
    message: str


@dataclass(frozen=True)
class DetectorResult:
    """One detector's finding on one model. "Could not run" is a status with a reason, never an exception."""

    detector: str
    status: Status
    score: float | None = None
    target_class: int | None = None
    forward_passes: int | None = None
    seconds: float | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # What the detector saw, in a reader's words, strongest first: the Markdown report shows it for flagged models.
    evidence: tuple[str, ...] = ()

    @classmethod
    def not_applicable(cls, detector: str, reason: str) -> DetectorResult:
        return cls(detector=detector, status=Status.NOT_APPLICABLE, reason=reason)

    @classmethod
    def failed(cls, detector: str, reason: str) -> DetectorResult:
        return cls(detector=detector, status=Status.ERROR, reason=reason)


@dataclass(frozen=True)
class Decision:
    action: Action
    reasons: tuple[str, ...]
    rule: str | None = None


@dataclass(frozen=True)
class ScanResult:
    """Everything known about one target after scanning and judging it."""

    target: str
    sha256: str | None
    status: Status
    verdict: Verdict = Verdict.UNKNOWN
    score: float | None = None
    error: ErrorInfo | None = None
    detectors: Mapping[str, DetectorResult] = field(default_factory=dict)
    decision: Decision | None = None
    artifacts: tuple[str, ...] = ()
    clean_data: str | None = None  # where the clean sample data the detectors used came from, if any
    normalization: Normalization | None = None  # the per-channel normalisation the model was probed with
    channel_ranges: tuple[tuple[float, float], ...] = ()  # with a normalisation: each channel's range, as probed
