"""Which classifier head to fit on one-pixel signature features: the same features and folds, several heads.

    python -m bench.one_pixel_heads --zoo /work/bench-zoo

For each base kind (and both kinds' features side by side): random 5-fold AUC (mean of 3 seeds), per family and
per attack (seed 0), and "within": fitted and scored inside one family only. Uses the signature cache. Prints lines.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scanner.calibration.metrics import random_folds, roc_auc
from scanner.calibration.one_pixel import default_cache_dir, zoo_features
from scanner.calibration.zoos import read_zoo
from scanner.detectors.one_pixel.classifier import fit_logistic, fit_trees
from scanner.detectors.one_pixel.signature import SignatureSettings

Head = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (x, y, train, test) -> scores


def _sklearn(make: Callable[[], object]) -> Head:
    def score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = make()
        model.fit(np.nan_to_num(x[train]), y[train])  # type: ignore[attr-defined]
        return np.asarray(model.predict_proba(np.nan_to_num(x[test]))[:, 1])  # type: ignore[attr-defined]

    return score


def _ours(fit: Callable[..., object], **options: object) -> Head:
    def score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = fit(x[train], y[train], **options)
        return np.asarray([head.probability(row) for row in x[test]])  # type: ignore[attr-defined]

    return score


def heads() -> dict[str, Head]:
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier

    return {
        "logistic C=0.3": _ours(fit_logistic, regularisation=0.3),
        "logistic C=0.05": _ours(fit_logistic, regularisation=0.05),
        "extra trees 300": _sklearn(
            lambda: ExtraTreesClassifier(300, min_samples_leaf=3, max_features=0.3, random_state=0, n_jobs=1)
        ),
        "gradient boosting": _sklearn(
            lambda: HistGradientBoostingClassifier(
                max_depth=3, learning_rate=0.05, max_iter=150, l2_regularization=1.0, random_state=0
            )
        ),
        "shipped trees (fit_trees)": _ours(fit_trees),
    }


def out_of_fold(head: Head, x: np.ndarray, y: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    scores = np.zeros(len(rows))
    for fold in random_folds(len(rows), 5, seed):
        train = rows[np.setdiff1d(np.arange(len(rows)), fold)]
        scores[fold] = head(x, y, train, rows[fold])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo", type=Path, required=True)
    args = parser.parse_args()
    table = zoo_features(read_zoo(args.zoo), SignatureSettings(), cache_dir=default_cache_dir())
    y = table.labels
    family = np.asarray([m.family for m in table.models])
    attack = np.asarray([m.attack for m in table.models])
    every = np.arange(len(y))
    features = dict(table.features)
    features["clean+synthetic"] = np.concatenate([features["clean"], features["synthetic"]], axis=1)
    print(f"{len(y)} models, {int(y.sum())} backdoored")
    for kind, x in features.items():
        for name, head in heads().items():
            runs = [out_of_fold(head, x, y, every, seed) for seed in range(3)]
            parts = {f: roc_auc(y[family == f], runs[0][family == f]) for f in sorted(set(family))}
            for a in sorted(set(attack[y == 1])):
                keep = (attack == a) | (y == 0)
                parts[a] = roc_auc(y[keep], runs[0][keep])
            within = {}
            for f in sorted(set(family)):
                rows = np.flatnonzero(family == f)
                within[f] = roc_auc(y[rows], out_of_fold(head, x, y, rows, 0))
            print(
                f"{kind} | {name} | random {np.mean([roc_auc(y, r) for r in runs]):.3f} | "
                + " ".join(f"{k}={v:.2f}" for k, v in parts.items())
                + " | within "
                + " ".join(f"{k}={v:.2f}" for k, v in within.items()),
                flush=True,
            )


if __name__ == "__main__":
    main()
