"""Fusion: one calibrated score in [0, 1] from the detectors that ran.

A logistic combination of the detectors' own (calibrated) probabilities, on the logit scale, trained on the zoo with
out-of-fold scores (`model-scanner detector train --detector fusion`) and shipped as data/fusion_v1.json. When only
one detector scanned, its own probability decides alone; when none did, the verdict is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

from scanner.detectors.logistic import LogisticCalibration, load_calibration
from scanner.findings import DetectorResult, Status, Verdict

FUSION_FILE = "fusion_v1.json"
# Detector name (DetectorResult.detector) -> the calibration feature its score feeds.
FEATURE_OF = {"one_pixel": "one_pixel_logit", "ban": "ban_logit"}
_CLIP = 1e-4


def logit(probability: float) -> float:
    p = min(max(probability, _CLIP), 1.0 - _CLIP)
    return math.log(p / (1.0 - p))


@lru_cache(maxsize=1)
def shipped_fusion() -> LogisticCalibration:
    return load_calibration(FUSION_FILE)


def fuse(results: Mapping[str, DetectorResult]) -> tuple[float | None, Verdict]:
    return fuse_with(results, shipped_fusion())


def fuse_with(results: Mapping[str, DetectorResult], fusion: LogisticCalibration) -> tuple[float | None, Verdict]:
    scores = {
        r.detector: float(r.score) for r in results.values() if r.status is Status.SCANNED and r.score is not None
    }
    features = {FEATURE_OF[name]: logit(score) for name, score in scores.items() if name in FEATURE_OF}
    if all(feature in features for feature in fusion.features):
        score = fusion.probability(features)
    elif len(scores) == 1:
        (score,) = scores.values()  # the other detector did not apply: this one decides alone
    elif scores:
        score = sum(scores.values()) / len(scores)  # detectors the fusion was not trained on: their mean
    else:
        return None, Verdict.UNKNOWN
    return score, Verdict.BACKDOORED if score >= fusion.threshold else Verdict.CLEAN
