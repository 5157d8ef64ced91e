"""The report extension point: what every format renders, and how a format is called."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from scanner.findings import Action, DetectorResult, ScanResult, Status


@dataclass(frozen=True)
class Report:
    """One scan's results under one policy: what every format renders."""

    results: tuple[ScanResult, ...]
    policy: str  # Policy.label: name@digest
    scanner_version: str

    def count(self, action: Action) -> int:
        return sum(1 for result in self.results if result.decision is not None and result.decision.action is action)

    @property
    def errors(self) -> int:
        return sum(1 for result in self.results if result.status is Status.ERROR)


# A format: Report -> the text written to stdout or --output.
Renderer = Callable[[Report], str]


def reduced_note(result: DetectorResult) -> str:
    """What a detector gave up to fit its budget ("" when it ran at full power)."""
    budget = result.details.get("budget") if isinstance(result.details, Mapping) else None
    return str(budget.get("note") or "") if isinstance(budget, Mapping) and budget.get("reduced") else ""


def budget_fitted_to(result: DetectorResult) -> str:
    """The budget a detector fitted its settings to, '300 s' or '75000 passes' ("" when it had none)."""
    budget = result.details.get("budget") if isinstance(result.details, Mapping) else None
    return str(budget.get("fitted_to") or "") if isinstance(budget, Mapping) else ""


def score_text(score: float | None, *, missing: str) -> str:
    return missing if score is None else f"{score:.2f}"


def detector_cell(result: DetectorResult | None, *, missing: str) -> str:
    """A detector's entry in a one-line-per-model table: its score and suspected class, or why it did not scan."""
    if result is None:
        return missing
    if result.status is not Status.SCANNED:
        return str(result.status.value).replace("_", " ")
    target = f" (class {result.target_class})" if result.target_class is not None else ""
    return f"{score_text(result.score, missing=missing)}{target}{' (reduced)' if reduced_note(result) else ''}"
