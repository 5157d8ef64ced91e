"""The one-pixel detector fitted to a time budget, on a really trained test-zoo model with and without clean data."""

from __future__ import annotations

import pytest

from scanner.detectors.interface import CleanData, DetectionContext
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.detectors.one_pixel import budget as one_pixel_budget
from scanner.detectors.one_pixel.budget import fit_to_budget, planned_passes
from scanner.detectors.one_pixel.composite import HELD_OUT_IMAGES
from scanner.detectors.one_pixel.patches import PATCH_IMAGES
from scanner.detectors.one_pixel.signature import SignatureSettings
from scanner.findings import Budget, BudgetUnit, DetectorResult, ModelArtifact, ScanResult, Status
from scanner.reports.interface import Report
from scanner.reports.json_report import read_report, render_json
from scanner.reports.markdown import render_markdown


@pytest.mark.parametrize("with_clean_data", [False, True])
def test_a_budget_the_model_fits_changes_nothing_and_the_plan_counts_every_pass(
    shapes_model: tuple[ModelArtifact, CleanData], with_clean_data: bool
) -> None:
    artifact, clean = shapes_model
    detector = OnePixelDetector(threads=1)
    data = clean if with_clean_data else None
    unbudgeted = detector.detect(artifact, DetectionContext(clean_data=data))
    budgeted = detector.detect(artifact, DetectionContext(clean_data=data, budget=Budget(3600.0)))

    assert budgeted.status is Status.SCANNED
    assert (budgeted.score, budgeted.target_class) == (unbudgeted.score, unbudgeted.target_class)
    assert budgeted.forward_passes == unbudgeted.forward_passes
    plan = budgeted.details["budget"]
    assert plan["reduced"] is False and plan["note"] == ""
    assert plan["planned_passes"] == plan["full_passes"] == unbudgeted.forward_passes
    assert "budget" not in unbudgeted.details


def test_a_tight_budget_reduces_the_grid_and_the_probe_images_and_says_so(
    shapes_model: tuple[ModelArtifact, CleanData],
) -> None:
    artifact, clean = shapes_model
    full = OnePixelDetector(threads=1).detect(artifact, DetectionContext(clean_data=clean))
    reduced = OnePixelDetector(threads=1).detect(artifact, DetectionContext(clean_data=clean, budget=Budget(0.05)))

    assert reduced.status is Status.SCANNED and reduced.score is not None
    plan = reduced.details["budget"]
    assert plan["reduced"] is True
    assert plan["settings"] == {
        "max_grid": 8,
        "probe_images": HELD_OUT_IMAGES["full"] // 16,  # the last step: a sixteenth of the images
        "patch_images": PATCH_IMAGES["full"] // 16,
    }
    assert reduced.details["settings"]["max_grid"] == 8
    assert reduced.forward_passes == plan["planned_passes"] < plan["full_passes"] == full.forward_passes
    assert "reduced power to fit a budget of 0.05 s" in plan["note"] and "probe grid of at most 8" in plan["note"]

    assert _entry(reduced)["reduced"] == plan["note"] and _entry(reduced)["budget"] == "0.05 s"
    assert "reduced" not in _entry(full) and "budget" not in _entry(full)
    summary = render_markdown(_report(reduced))
    assert "0.05 s" in summary and "(reduced)" in summary and "reduce" not in render_markdown(_report(full))


class _Shape:
    """Only the spec: all planned_passes reads of a model."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.spec = artifact.spec

    def logits(self, images: object) -> object:
        raise AssertionError("planned_passes runs nothing")


def test_planned_passes_follow_the_grid(shapes_model: tuple[ModelArtifact, CleanData]) -> None:
    model = _Shape(shapes_model[0])
    # 32x32x3, K=3, scales 1 and 2, 4 bases: (1 + cells x 3) passes per base and scale
    assert planned_passes(model, SignatureSettings(), 4, 0, 0) == 4 * (1 + 1024 * 3) + 4 * (1 + 256 * 3)  # type: ignore[arg-type]
    grid_16 = 4 * (1 + 256 * 3) + 4 * (1 + 64 * 3)
    assert planned_passes(model, SignatureSettings(max_grid=16), 4, 0, 0) == grid_16  # type: ignore[arg-type]


def test_a_budget_of_passes_picks_the_same_settings_on_any_machine(
    shapes_model: tuple[ModelArtifact, CleanData],
) -> None:
    """Nothing is timed (the model here cannot even run): the settings follow from the planned passes alone."""
    model, bases = _Shape(shapes_model[0]), shapes_model[1].x[:4]
    full = planned_passes(model, SignatureSettings(), 4, 64, 8)  # type: ignore[arg-type]

    roomy = fit_to_budget(
        model, bases, SignatureSettings(), Budget(full, BudgetUnit.PASSES), probe_images=64, patch_images=8
    )  # type: ignore[arg-type]
    tight = fit_to_budget(
        model, bases, SignatureSettings(), Budget(full // 4, BudgetUnit.PASSES), probe_images=64, patch_images=8
    )  # type: ignore[arg-type]

    assert not roomy.reduced and roomy.settings == SignatureSettings() and roomy.timing_passes == 0
    assert tight.reduced and tight.planned_passes <= full // 4 and tight.timing_passes == 0
    assert tight.settings.max_grid < SignatureSettings().max_grid
    assert tight.details()["seconds_per_pass"] is None and tight.details()["fitted_to"] == f"{full // 4} passes"
    assert f"to fit a budget of {full // 4} passes:" in tight.note()


def test_a_budget_of_passes_reduces_a_scan_and_the_report_says_which_budget_applied(
    shapes_model: tuple[ModelArtifact, CleanData], monkeypatch: pytest.MonkeyPatch
) -> None:
    def untimed(*args: object) -> None:
        raise AssertionError("a budget of passes needs no timing")

    monkeypatch.setattr(one_pixel_budget, "_seconds_per_pass", untimed)
    reduced = OnePixelDetector(threads=1).detect(
        shapes_model[0],
        DetectionContext(budget=Budget(4000, BudgetUnit.PASSES)),  # synthetic bases: 15,368 passes in full
    )

    assert reduced.status is Status.SCANNED and reduced.score is not None
    plan = reduced.details["budget"]
    assert plan["reduced"] is True and plan["settings"]["max_grid"] == 16
    assert reduced.forward_passes == plan["planned_passes"] <= 4000 < plan["full_passes"]
    assert _entry(reduced)["budget"] == "4000 passes" and "4000 passes" in str(_entry(reduced)["reduced"])


def _report(result: DetectorResult) -> Report:
    return Report((ScanResult("m.onnx", None, Status.SCANNED, detectors={"one_pixel": result}),), "p@0", "0")


def _entry(result: DetectorResult) -> dict[str, object]:
    """The detector's entry in a JSON report, after a round trip through the report's reader."""
    import json

    again = render_json(read_report(render_json(_report(result))))
    entry: dict[str, object] = json.loads(again)["results"][0]["detectors"]["one_pixel"]
    return entry
