"""The signature classifier: features of a one-pixel signature -> probability that the model is backdoored.

A standardised logistic regression per base kind ("clean" bases when clean data is given, "synthetic" otherwise),
stored as versioned JSON and evaluated with numpy alone. scikit-learn is used only to fit it (`fit_logistic`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from scanner.detectors.one_pixel_features import feature_names
from scanner.errors import DetectorError

FORMAT = "model-scanner/one-pixel-classifier/v1"
SHIPPED = "one_pixel_classifier.json"


class ClassifierFileError(DetectorError):
    kind = "detector_classifier"
    hint = "retrain it with: model-scanner detector train --zoo DIR --out FILE"


@dataclass(frozen=True)
class LogisticHead:
    """p = sigmoid(coef . (x - mean) / scale + intercept)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, features: np.ndarray) -> float:
        z = float(np.dot(self.coef, (np.asarray(features, dtype=np.float64) - self.mean) / self.scale) + self.intercept)
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "logistic",
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogisticHead:
        if data.get("kind") != "logistic":
            raise ClassifierFileError(f"unknown classifier head kind {data.get('kind')!r}")
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
        )


@dataclass(frozen=True)
class SignatureClassifier:
    heads: dict[str, LogisticHead]  # base kind -> head
    settings: dict[str, Any]  # the SignatureSettings the heads were trained with
    provenance: dict[str, Any]

    def probability(self, features: np.ndarray, base_kind: str) -> float:
        head = self.heads.get(base_kind) or next(iter(self.heads.values()))
        return head.probability(features)

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(self.settings.get("scales", (1,)))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "feature_names": list(feature_names(self.scales)),
            "settings": self.settings,
            "heads": {kind: head.to_json() for kind, head in self.heads.items()},
            "provenance": self.provenance,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> SignatureClassifier:
        if data.get("format") != FORMAT:
            raise ClassifierFileError(f"{source}: not a {FORMAT} file (format {data.get('format')!r})")
        settings = dict(data.get("settings", {}))
        if tuple(data.get("feature_names", ())) != feature_names(tuple(settings.get("scales", (1,)))):
            raise ClassifierFileError(f"{source}: trained on other features than this scanner computes")
        heads = {kind: LogisticHead.from_json(head) for kind, head in data["heads"].items()}
        if not heads:
            raise ClassifierFileError(f"{source}: holds no classifier")
        return cls(heads=heads, settings=settings, provenance=dict(data.get("provenance", {})))

    @classmethod
    def load(cls, path: Path | None = None) -> SignatureClassifier:
        """The classifier in `path`, or the one shipped in the package."""
        source = f"the shipped {SHIPPED}" if path is None else str(path)
        try:
            if path is None:
                text = resources.files("scanner.detectors").joinpath("data", SHIPPED).read_text()
            else:
                text = Path(path).read_text()
        except OSError as error:
            raise ClassifierFileError(f"cannot read {source}: {error.strerror}") from error
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ClassifierFileError(f"{source}: not JSON ({error.msg})") from error
        return cls.from_json(data, source)


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, regularisation: float = 0.3) -> LogisticHead:
    """Fit a standardised L2 logistic regression (scikit-learn, at training time only)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:
        from scanner.errors import MissingDependency

        raise MissingDependency("scikit-learn", "torch") from error
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=regularisation, max_iter=5000, class_weight="balanced")
    model.fit((x - mean) / scale, np.asarray(labels, dtype=np.int64))
    return LogisticHead(
        mean=mean, scale=scale, coef=model.coef_[0].astype(np.float64), intercept=float(model.intercept_[0])
    )
