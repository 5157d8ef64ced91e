"""The fused score: a calibrated combination when both detectors scanned, the survivor alone otherwise."""

from __future__ import annotations

import numpy as np

from scanner.calibration.fusion import fit_fusion
from scanner.detectors.fusion import FEATURE_OF, fuse, fuse_with, logit, shipped_fusion
from scanner.detectors.logistic import LogisticCalibration
from scanner.findings import DetectorResult, Status, Verdict


def scanned(name: str, score: float) -> DetectorResult:
    return DetectorResult(detector=name, status=Status.SCANNED, score=score)


def both(one_pixel: float, ban: float) -> dict[str, DetectorResult]:
    return {"one_pixel": scanned("one_pixel", one_pixel), "ban": scanned("ban", ban)}


def test_shipped_fusion_combines_both_detectors_and_says_where_it_came_from() -> None:
    fusion = shipped_fusion()
    assert set(fusion.features) == set(FEATURE_OF.values())
    assert fusion.provenance["models"] > 0 and "zoo" in fusion.provenance
    low, _ = fuse(both(0.05, 0.05))
    high, verdict = fuse(both(0.95, 0.95))
    assert low is not None and high is not None
    assert low < 0.5 < high and verdict is Verdict.BACKDOORED


def test_fused_score_rises_with_each_detector_and_either_one_confident_decides_against_an_undecided_other() -> None:
    # On the benchmark zoo the fusion was fitted on, BAN separates better than one-pixel (AUC 0.95 vs 0.82;
    # bench/RESULTS.md) and its probabilities are more extreme, so per unit of logit the two weigh about the same.
    scores = [fuse(both(p, 0.5))[0] for p in (0.1, 0.5, 0.9)]
    assert scores == sorted(scores) and scores[0] != scores[-1]  # type: ignore[type-var]
    by_ban = [fuse(both(0.5, p))[0] for p in (0.1, 0.5, 0.9)]
    assert by_ban == sorted(by_ban) and by_ban[0] != by_ban[-1]  # type: ignore[type-var]
    for low, high in ((scores[0], scores[-1]), (by_ban[0], by_ban[-1])):
        assert low is not None and high is not None and low < 0.5 < high


def test_when_one_detector_does_not_apply_the_other_decides_alone() -> None:
    results = {
        "one_pixel": scanned("one_pixel", 0.83),
        "ban": DetectorResult.not_applicable("ban", "BAN needs clean sample data (--clean-data FILE.npz)"),
    }
    assert fuse(results) == (0.83, Verdict.BACKDOORED)
    results = {"one_pixel": DetectorResult.failed("one_pixel", "boom"), "ban": scanned("ban", 0.2)}
    assert fuse(results) == (0.2, Verdict.CLEAN)


def test_nothing_scanned_is_unknown() -> None:
    assert fuse({"ban": DetectorResult.not_applicable("ban", "no clean data")}) == (None, Verdict.UNKNOWN)
    assert fuse({}) == (None, Verdict.UNKNOWN)


def test_fit_fusion_weights_the_detector_that_separates() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    informative = np.where(labels == 1, rng.uniform(0.6, 0.99, 200), rng.uniform(0.01, 0.4, 200))
    noise = rng.uniform(0.01, 0.99, 200)
    fusion = fit_fusion(labels, one_pixel=noise, ban=informative)
    weights = dict(zip(fusion.features, fusion.coef, strict=True))
    assert abs(weights[FEATURE_OF["ban"]]) > 5 * abs(weights[FEATURE_OF["one_pixel"]])
    reloaded = LogisticCalibration.from_json(fusion.to_json())
    assert fuse_with(both(0.5, 0.95), reloaded)[1] is Verdict.BACKDOORED
    assert fuse_with(both(0.5, 0.05), reloaded)[1] is Verdict.CLEAN


def test_logit_is_finite_at_the_edges() -> None:
    assert np.isfinite([logit(0.0), logit(1.0)]).all()
