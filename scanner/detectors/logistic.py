"""Shipped logistic calibrations: a few named statistics -> probability that a model is backdoored.

One small versioned JSON file per calibration under scanner/detectors/data/, written by `model-scanner detector
train` from a zoo, with its provenance. Plain numpy at scan time: no scikit-learn needed to score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeGuard

from scanner.errors import DetectorError

FORMAT = "model-scanner/calibration/v1"
_CLIP = 1e-4


def logit(probability: float) -> float:
    p = min(max(float(probability), _CLIP), 1.0 - _CLIP)
    return math.log(p / (1.0 - p))


def finite_number(value: object) -> TypeGuard[int | float]:
    """A JSON number that is finite (booleans are not numbers here): what a calibration file's offset must be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def gate_shifted(probability: float, offset: float) -> float:
    """`probability` with its log-odds lowered by `offset`: how a gate offset (scanner.calibration.gate) is applied
    to a score, so that the calibration zoos' clean quantile maps to just under 0.5, the shipped threshold."""
    return 1.0 / (1.0 + math.exp(-(logit(probability) - offset)))


class CalibrationError(DetectorError):
    kind = "calibration"


@dataclass(frozen=True)
class LogisticCalibration:
    """p = sigmoid(intercept + sum(coef * (feature - mean) / scale)); `threshold` turns p into a verdict."""

    name: str
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def probability(self, values: Mapping[str, float]) -> float:
        missing = [f for f in self.features if f not in values]
        if missing:
            raise CalibrationError(
                f"calibration {self.name!r} needs statistics {missing}", hint="re-run 'model-scanner detector train'"
            )
        logit = self.intercept + sum(
            c * (float(values[f]) - m) / s
            for f, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))

    def contributions(self, values: Mapping[str, float]) -> list[tuple[str, float]]:
        """Each statistic's term in the log-odds, (name, term), largest first: what pushed the score up most."""
        terms = [
            (f, c * (float(values[f]) - m) / s)
            for f, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True)
        ]
        return sorted(terms, key=lambda term: -term[1])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "threshold": self.threshold,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogisticCalibration:
        if data.get("format") != FORMAT:
            raise CalibrationError(
                f"calibration format {data.get('format')!r} is not {FORMAT!r}",
                hint="re-run 'model-scanner detector train' with this scanner version",
            )
        features = tuple(str(f) for f in data["features"])
        arrays = [tuple(float(v) for v in data[k]) for k in ("mean", "scale", "coef")]
        if any(len(a) != len(features) for a in arrays):
            raise CalibrationError(f"calibration {data.get('name')!r} has mismatched lengths", hint="re-train it")
        return cls(
            name=str(data["name"]),
            features=features,
            mean=arrays[0],
            scale=arrays[1],
            coef=arrays[2],
            intercept=float(data["intercept"]),
            threshold=float(data.get("threshold", 0.5)),
            provenance=dict(data.get("provenance", {})),
        )


def load_calibration(filename: str, path: Path | None = None) -> LogisticCalibration:
    """A shipped calibration by file name (scanner/detectors/data/), or the file at `path`."""
    if path is not None:
        text = path.read_text()
    else:
        text = resources.files("scanner.detectors").joinpath("data", filename).read_text()
    return LogisticCalibration.from_json(json.loads(text))


def fit_logistic(
    name: str,
    features: Sequence[str],
    rows: Sequence[Mapping[str, float]],
    labels: Sequence[int],
    *,
    regularization: float = 1.0,
    provenance: Mapping[str, Any] | None = None,
) -> LogisticCalibration:
    """Fit a standardised, class-balanced L2 logistic regression (scikit-learn); threshold 0.5."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[float(row[f]) for f in features] for row in rows], dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    # Balanced: a zoo's share of backdoored models is not the world's; the threshold should not inherit it.
    model = LogisticRegression(C=regularization, max_iter=1000, class_weight="balanced").fit((x - mean) / scale, y)
    return LogisticCalibration(
        name=name,
        features=tuple(features),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        provenance=dict(provenance or {}),
    )
