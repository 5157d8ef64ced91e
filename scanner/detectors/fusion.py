"""Fusion: one score in [0, 1] from the detectors that ran.

The larger of the detectors' own scores (each already calibrated for the gate: scanner/calibration/gate.py), shifted
once more on the log-odds scale by the fusion's own gate offset, so that taking the larger of two does not add up
their false alarms. A model is `backdoored` when either detector sees enough: one-pixel and BAN fail on different
models (patch triggers, full-image triggers), and on a second zoo generator the larger of the two ranked models better
than a logistic combination fitted on one zoo (bench/RESULTS.md). Shipped as data/fusion_v2.json, fitted by
`model-scanner detector train --detector fusion`. When only one detector scanned, its own score decides alone; when
none did, the verdict is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from scanner.detectors.logistic import CalibrationError, finite_number, gate_shifted
from scanner.findings import DetectorResult, Status, Verdict

FUSION_FILE = "fusion_v2.json"
FORMAT = "model-scanner/fusion/v2"
DETECTORS = ("one_pixel", "ban")  # the detectors (DetectorResult.detector) the fusion was fitted on
THRESHOLD = 0.5  # a fused score of 0.5 or more is `backdoored`


@dataclass(frozen=True)
class MaxFusion:
    """score = the larger detector score, its log-odds lowered by `offset`."""

    offset: float
    provenance: Mapping[str, Any] = field(default_factory=dict)
    threshold: float = THRESHOLD

    def probability(self, scores: Mapping[str, float]) -> float:
        return gate_shifted(max(scores.values()), self.offset)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rule": "max",
            "detectors": list(DETECTORS),
            "offset": self.offset,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = FUSION_FILE) -> MaxFusion:
        if data.get("format") != FORMAT or data.get("rule") != "max":
            raise CalibrationError(
                f"{source}: not a {FORMAT} max fusion (format {data.get('format')!r}, rule {data.get('rule')!r})",
                hint="re-run 'model-scanner detector train --detector fusion' with this scanner version",
            )
        offset = data.get("offset")
        if not finite_number(offset):
            raise CalibrationError(f"{source}: its offset must be a finite number", hint="re-train the fusion")
        if list(data.get("detectors", ())) != list(DETECTORS):
            raise CalibrationError(f"{source}: fitted on other detectors than {list(DETECTORS)}", hint="re-train it")
        return cls(offset=float(offset), provenance=dict(data.get("provenance", {})))


def load_fusion(path: Path | None = None) -> MaxFusion:
    """The shipped fusion (scanner/detectors/data/), or the file at `path`."""
    source = str(path) if path is not None else f"the shipped {FUSION_FILE}"
    text = (
        path.read_text() if path is not None else resources.files(__package__).joinpath("data", FUSION_FILE).read_text()
    )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CalibrationError(f"{source}: not JSON ({error.msg})", hint="re-train the fusion") from error
    return MaxFusion.from_json(data, source)


@lru_cache(maxsize=1)
def shipped_fusion() -> MaxFusion:
    return load_fusion()


def fuse(results: Mapping[str, DetectorResult]) -> tuple[float | None, Verdict]:
    return fuse_with(results, shipped_fusion())


def fuse_with(results: Mapping[str, DetectorResult], fusion: MaxFusion) -> tuple[float | None, Verdict]:
    scores = {
        r.detector: float(r.score) for r in results.values() if r.status is Status.SCANNED and r.score is not None
    }
    fitted = {name: score for name, score in scores.items() if name in DETECTORS}
    if len(fitted) == len(DETECTORS):
        score = fusion.probability(fitted)
    elif len(scores) == 1:
        (score,) = scores.values()  # the other detector did not apply: this one decides alone
    elif scores:
        score = sum(scores.values()) / len(scores)  # detectors the fusion was not fitted on: their mean
    else:
        return None, Verdict.UNKNOWN
    return score, Verdict.BACKDOORED if score >= fusion.threshold else Verdict.CLEAN
