"""The signature classifier: features of a one-pixel signature -> probability that the model is backdoored.

One head per base kind ("synthetic" bases when no clean data is given; with clean data, "clean+synthetic+composite":
the features of both signatures side by side and of the composite probes, and "clean" for classifiers without that
head), stored as versioned JSON and evaluated with numpy alone; scikit-learn is used only to fit it. Two kinds of
head: an extremely randomised tree ensemble (`fit_trees`, the default: on the 220-model benchmark zoo it scores AUC
0.80 where the logistic scores 0.71, bench/RESULTS-one-pixel.md) and a standardised logistic regression
(`fit_logistic`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from scanner.detectors.logistic import finite_number, gate_shifted
from scanner.detectors.one_pixel.composite import COMPOSITE_SCALES, composite_feature_names
from scanner.detectors.one_pixel.features import feature_names
from scanner.errors import DetectorError

FORMAT = "model-scanner/one-pixel-classifier/v1"
# The head for clean-data scans: both signatures' features (clean first), then the clean signatures' composite
# features (scanner.detectors.one_pixel.composite). Figures on the 220-model benchmark zoo: bench/RESULTS-one-pixel.md.
COMBINED = "clean+synthetic+composite"
SHIPPED = "one_pixel_classifier.json"
SPLIT_FEATURES = 40  # features each tree split chooses among (fit_trees)


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
class TreeEnsembleHead:
    """p = mean over trees of the backdoored share of the training models in the leaf the features reach.

    Each tree is five flat arrays over its nodes: the feature tested (-1 at a leaf), the threshold (go left when the
    feature is <= it), the left and right children, and the leaf's value.
    """

    trees: tuple[dict[str, np.ndarray], ...]

    def probability(self, features: np.ndarray) -> float:
        # As scikit-learn compares: the features in float32, the thresholds as fitted.
        x = np.nan_to_num(np.asarray(features, dtype=np.float32)).astype(np.float64)
        total = 0.0
        for tree in self.trees:
            node = 0
            while (feature := tree["feature"][node]) >= 0:
                node = tree["left"][node] if x[feature] <= tree["threshold"][node] else tree["right"][node]
            total += float(tree["value"][node])
        return total / len(self.trees)

    def to_json(self) -> dict[str, Any]:
        def rounded(values: np.ndarray) -> list[float]:
            return [float(f"{v:.7g}") for v in values]

        return {
            "kind": "trees",
            "trees": [
                {
                    "feature": tree["feature"].tolist(),
                    "threshold": rounded(tree["threshold"]),
                    "left": tree["left"].tolist(),
                    "right": tree["right"].tolist(),
                    "value": [round(float(v), 4) for v in tree["value"]],
                }
                for tree in self.trees
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TreeEnsembleHead:
        trees = []
        for tree in data["trees"]:
            arrays = {
                "feature": np.asarray(tree["feature"], dtype=np.int64),
                "threshold": np.asarray(tree["threshold"], dtype=np.float64),
                "left": np.asarray(tree["left"], dtype=np.int64),
                "right": np.asarray(tree["right"], dtype=np.int64),
                "value": np.asarray(tree["value"], dtype=np.float64),
            }
            nodes = len(arrays["feature"])
            if nodes == 0 or any(len(a) != nodes for a in arrays.values()):
                raise ClassifierFileError("a tree's node arrays are empty or differ in length")
            inner = np.flatnonzero(arrays["feature"] >= 0)
            for child in (arrays["left"][inner], arrays["right"][inner]):
                # Children point forward to existing nodes: every walk ends at a leaf.
                if np.any(child <= inner) or np.any(child >= nodes):
                    raise ClassifierFileError("a tree's children do not point forward to existing nodes")
            trees.append(arrays)
        if not trees:
            raise ClassifierFileError("a tree ensemble without trees")
        return cls(trees=tuple(trees))


Head = LogisticHead | TreeEnsembleHead
HEAD_KINDS: dict[str, Any] = {"logistic": LogisticHead, "trees": TreeEnsembleHead}


def head_from_json(data: dict[str, Any]) -> Head:
    kind = HEAD_KINDS.get(str(data.get("kind")))
    if kind is None:
        raise ClassifierFileError(f"unknown classifier head kind {data.get('kind')!r}")
    head: Head = kind.from_json(data)
    return head


@dataclass(frozen=True)
class SignatureClassifier:
    heads: dict[str, Head]  # base kind -> head
    settings: dict[str, Any]  # the SignatureSettings the heads were trained with
    provenance: dict[str, Any]
    offsets: dict[str, float] = field(default_factory=dict)  # base kind -> gate offset (log-odds; none: 0)

    def probability(self, features: np.ndarray, base_kind: str) -> float:
        kind = base_kind if base_kind in self.heads else next(iter(self.heads))
        probability = self.heads[kind].probability(features)
        offset = self.offsets.get(kind, 0.0)
        return gate_shifted(probability, offset) if offset else probability

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(self.settings.get("scales", (1,)))

    @property
    def mode(self) -> str:
        return str(self.settings.get("mode", "full"))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "feature_names": list(feature_names(self.scales)),
            "composite_feature_names": list(composite_feature_names(self.scales, self.mode)),
            "settings": self.settings,
            "heads": {kind: head.to_json() for kind, head in self.heads.items()},
            "offsets": self.offsets,
            "provenance": self.provenance,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n")  # compact: tens of thousands of nodes

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> SignatureClassifier:
        if data.get("format") != FORMAT:
            raise ClassifierFileError(f"{source}: not a {FORMAT} file (format {data.get('format')!r})")
        settings = dict(data.get("settings", {}))
        scales, mode = tuple(settings.get("scales", (1,))), str(settings.get("mode", "full"))
        if mode not in COMPOSITE_SCALES:
            raise ClassifierFileError(f"{source}: unknown signature mode {mode!r}")
        heads = {kind: head_from_json(head) for kind, head in data["heads"].items()}
        composite = tuple(data.get("composite_feature_names", ()))
        if tuple(data.get("feature_names", ())) != feature_names(scales) or (
            COMBINED in heads and composite != composite_feature_names(scales, mode)
        ):
            raise ClassifierFileError(f"{source}: trained on other features than this scanner computes")
        if not heads:
            raise ClassifierFileError(f"{source}: holds no classifier")
        offsets = data.get("offsets", {})
        if not isinstance(offsets, dict) or any(
            kind not in heads or not finite_number(value) for kind, value in offsets.items()
        ):
            raise ClassifierFileError(f"{source}: its offsets must be finite numbers for heads it holds")
        return cls(
            heads=heads,
            settings=settings,
            provenance=dict(data.get("provenance", {})),
            offsets={kind: float(value) for kind, value in offsets.items()},
        )

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


def fit_trees(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    trees: int = 128,
    split_features: int | float = SPLIT_FEATURES,
    seed: int = 0,
) -> TreeEnsembleHead:
    """Fit extremely randomised trees (scikit-learn, at training time only), class-balanced, >= 4 models per leaf.

    Each split is drawn from `split_features` features (a count, capped at the head's; a float is a share), however
    many the head has: the clean-data head has 384, the synthetic one 140. Against the previous 64 trees choosing
    among 30% of the features, 128 trees among 40 raised leave-one-architecture-out by 0.016 and
    leave-one-family-out by 0.05 over tree seeds (docs/experiments.md). The three heads stay under 1 MB.
    """
    try:
        from sklearn.ensemble import ExtraTreesClassifier
    except ImportError as error:
        from scanner.errors import MissingDependency

        raise MissingDependency("scikit-learn", "torch") from error
    features = np.nan_to_num(np.asarray(features, dtype=np.float64))
    model = ExtraTreesClassifier(
        n_estimators=trees,
        min_samples_leaf=4,
        max_features=min(split_features, features.shape[1]) if isinstance(split_features, int) else split_features,
        class_weight="balanced",
        random_state=seed,
        n_jobs=1,
    )
    model.fit(features, np.asarray(labels, dtype=np.int64))
    backdoored = list(model.classes_).index(1) if 1 in model.classes_ else None
    fitted = []
    for estimator in model.estimators_:
        tree = estimator.tree_
        counts = tree.value[:, 0, :]  # per node: the (class-weighted) share of each class
        share = counts[:, backdoored] / counts.sum(axis=1) if backdoored is not None else np.zeros(len(counts))
        share[tree.children_left >= 0] = 0.0  # only leaves' values are read: zeros keep the file small
        fitted.append(
            {
                "feature": np.where(tree.children_left >= 0, tree.feature, -1).astype(np.int64),
                "threshold": tree.threshold.astype(np.float64),
                "left": tree.children_left.astype(np.int64),
                "right": tree.children_right.astype(np.int64),
                "value": share.astype(np.float64),
            }
        )
    return TreeEnsembleHead(trees=tuple(fitted))
