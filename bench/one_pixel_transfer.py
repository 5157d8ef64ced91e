"""Do other readings of the one-pixel features transfer to unseen architectures and families better than the
shipped head's? (It does not, so far: bench/RESULTS-one-pixel.md, "Transfer".)

    python -m bench.one_pixel_transfer --zoo /work/bench-zoo

Reads the cached default signatures (what `python -m bench.one_pixel_detection --zoo DIR` fills). Variants:
clean and synthetic features side by side (the shipped clean-data head), plus their difference (a per-model
self-normalisation: how a model reacts on its own clean images relative to synthetic ones), the difference alone;
and heads fitted only on the k features whose worst AUC over the training models' (architecture, family) groups is
highest, chosen inside each fold (features that separate in every group should transfer to a new one). AUC for the
random 5-fold split (mean of 3 seeds), leave-one-attack-out, leave-one-architecture-out and leave-one-family-out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.splits import leave_one_attack_out, leave_one_domain_out, mean_auc, random_split_auc
from scanner.calibration.metrics import roc_auc
from scanner.calibration.one_pixel import default_cache_dir, zoo_features
from scanner.calibration.zoos import read_zoo
from scanner.detectors.one_pixel.classifier import fit_logistic, fit_trees
from scanner.detectors.one_pixel.signature import SignatureSettings

Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], float]]


def plain(base: Callable[..., object]) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Callable[[np.ndarray], float]:
        head = base(x, y)
        return head.probability  # type: ignore[attr-defined, no-any-return]

    return fit


def most_stable(k: int, base: Callable[..., object]) -> Fit:
    """A head on the k features whose smallest per-group AUC (over the training models' groups) is largest."""

    def fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Callable[[np.ndarray], float]:
        worst = np.asarray(
            [
                min(roc_auc(y[groups == g], x[groups == g, j]) for g in set(groups) if len(set(y[groups == g])) == 2)
                for j in range(x.shape[1])
            ]
        )
        keep = np.argsort(-worst)[:k]
        head = base(x[:, keep], y)
        return lambda row: float(head.probability(row[keep]))  # type: ignore[attr-defined]

    return fit


def splits(x: np.ndarray, y: np.ndarray, fit: Fit, attack: np.ndarray, arch: np.ndarray, family: np.ndarray) -> str:
    groups = np.asarray([f"{a}/{f}" for a, f in zip(arch, family, strict=True)])

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = fit(x[train], y[train], groups[train])
        return np.asarray([head(x[i]) for i in test])

    random = random_split_auc(score, y)
    loao = mean_auc(leave_one_attack_out(score, y, attack))
    loarch, lofam = (mean_auc(leave_one_domain_out(score, y, domains)) for domains in (arch, family))
    return f"{random:.3f} | {loao:.3f} | {loarch:.3f} | {lofam:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo", type=Path, required=True)
    args = parser.parse_args()
    zoo = read_zoo(args.zoo)
    table = zoo_features(zoo, SignatureSettings(), kinds=("clean", "synthetic"), cache_dir=default_cache_dir())
    y = table.labels
    attack = np.asarray([m.attack for m in table.models])
    arch = np.asarray([m.architecture for m in table.models])
    family = np.asarray([m.family for m in table.models])
    clean, synthetic = (np.nan_to_num(table.features[kind]) for kind in ("clean", "synthetic"))
    both = np.hstack([clean, synthetic])
    variants = [
        ("clean + synthetic (shipped clean-data head)", both, plain(fit_trees)),
        ("clean + synthetic + their difference", np.hstack([both, clean - synthetic]), plain(fit_trees)),
        ("clean - synthetic only", clean - synthetic, plain(fit_trees)),
        *(
            (f"clean + synthetic, {k} most stable features, {name}", both, most_stable(k, base))
            for k in (10, 40)
            for name, base in (("trees", fit_trees), ("logistic", fit_logistic))
        ),
    ]
    print(f"{len(y)} models, {int(y.sum())} backdoored\n")
    print("| features, head | random | leave-one-attack-out | leave-one-architecture-out | leave-one-family-out |")
    print("|---|---|---|---|---|")
    for name, x, fit in variants:
        print(f"| {name} | {splits(x, y, fit, attack, arch, family)} |", flush=True)


if __name__ == "__main__":
    main()
