"""The fused score: the larger of both detectors' gate-calibrated scores, shifted by the fusion's own offset; the
survivor alone when one detector did not scan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scanner.calibration.fusion import fit_gate_fusion
from scanner.detectors.fusion import MaxFusion, fuse, fuse_with, load_fusion, shipped_fusion
from scanner.detectors.logistic import CalibrationError, gate_shifted, logit
from scanner.findings import DetectorResult, Status, Verdict


def scanned(name: str, score: float) -> DetectorResult:
    return DetectorResult(detector=name, status=Status.SCANNED, score=score)


def both(one_pixel: float, ban: float) -> dict[str, DetectorResult]:
    return {"one_pixel": scanned("one_pixel", one_pixel), "ban": scanned("ban", ban)}


def test_shipped_fusion_says_where_it_came_from_and_either_confident_detector_decides() -> None:
    fusion = shipped_fusion()
    assert fusion.provenance["models"] > 0 and "zoo" in fusion.provenance and "gate_clean_quantile" in fusion.provenance
    low, _ = fuse(both(0.05, 0.05))
    assert low is not None and low < 0.5
    for one_pixel, ban in ((0.999, 0.05), (0.05, 0.999)):
        score, verdict = fuse(both(one_pixel, ban))
        assert score is not None and score >= 0.5 and verdict is Verdict.BACKDOORED


def test_the_fused_score_is_the_larger_score_shifted_by_the_offset() -> None:
    fusion = MaxFusion(offset=logit(0.7))
    assert fuse_with(both(0.7, 0.2), fusion)[0] == pytest.approx(0.5)
    assert fuse_with(both(0.2, 0.9), fusion) == (pytest.approx(gate_shifted(0.9, logit(0.7))), Verdict.BACKDOORED)
    rising = [fuse_with(both(p, 0.1), fusion)[0] for p in (0.1, 0.5, 0.9)]
    assert rising == sorted(rising) and rising[0] != rising[-1]  # type: ignore[type-var]


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


def test_fit_gate_fusion_puts_the_threshold_above_the_clean_models_larger_scores() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    informative = np.where(labels == 1, rng.uniform(0.6, 0.99, 200), rng.uniform(0.01, 0.7, 200))
    noise = rng.uniform(0.01, 0.6, 200)
    fusion = fit_gate_fusion(labels, one_pixel=noise, ban=informative, models=200)
    fused = np.asarray(
        [fusion.probability({"one_pixel": o, "ban": b}) for o, b in zip(noise, informative, strict=True)]
    )
    assert (fused[labels == 0] >= 0.5).mean() <= 0.02 and (fused[labels == 1] >= 0.5).mean() > 0.3
    assert fusion.provenance["models"] == 200 and fusion.provenance["out_of_fold_auc_fused"] > 0.7
    reloaded = MaxFusion.from_json(json.loads(json.dumps(fusion.to_json())))
    assert reloaded.offset == fusion.offset


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "model-scanner/calibration/v1"}, "not a model-scanner/fusion/v2 max fusion"),
        ({"rule": "mean"}, "not a model-scanner/fusion/v2 max fusion"),
        ({"offset": math.inf}, "offset must be a finite number"),
        ({"offset": "1.0"}, "offset must be a finite number"),
        ({"detectors": ["one_pixel"]}, "fitted on other detectors"),
    ],
)
def test_fusion_files_are_validated_on_load(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = tmp_path / "fusion.json"
    path.write_text(json.dumps({**MaxFusion(offset=0.3).to_json(), **change}))
    with pytest.raises(CalibrationError, match=message):
        load_fusion(path)
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="not JSON"):
        load_fusion(path)


def test_logit_is_finite_at_the_edges() -> None:
    assert np.isfinite([logit(0.0), logit(1.0)]).all()
