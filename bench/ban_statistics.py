"""Which BAN statistics separate: each one's AUC on a zoo (overall and per family), then named sets of them fitted
out of fold with the three splits of bench/ban_detection.py.

    python -m bench.ban_statistics --zoo /work/bench-zoo

Reads the BAN statistics cache that `python -m bench.ban_detection` fills (computes what is missing). An AUC below
0.5 means the statistic is lower for backdoored models. Sets: the top-class share under noise alone (the second
session's calibration), the statistics under noise plus those through the mask's complement (the third session's
calibration), the targeted universal perturbations alone, both (the fourth session's calibration), both with
whether they point at one class (the shipped calibration, scanner.calibration.ban.FEATURES), plus the clean
ones. (The targeted-noise statistics of the
first sessions were measured with commit 7f13f2d's version of this script and removed: bench/RESULTS-ban.md.)
Prints lines.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.splits import leave_one_attack_out, leave_one_domain_out, mean_auc, random_split_auc
from scanner.calibration.ban import (
    FEATURES,
    NEURON_NOISE_FEATURES,
    UNIVERSAL_FEATURES,
    default_cache_dir,
    zoo_statistics,
)
from scanner.calibration.metrics import roc_auc
from scanner.calibration.zoos import read_zoo
from scanner.detectors.ban.detector import settings_from
from scanner.detectors.one_pixel.classifier import fit_logistic, fit_trees

CLEAN = ("clean_accuracy", "clean_top_share", "clean_error_top_share")
SETS = {
    "noisy_top_share": ("noisy_top_share",),
    "neuron noise (under noise + through the mask's complement)": NEURON_NOISE_FEATURES,
    "universal perturbations": UNIVERSAL_FEATURES,
    "neuron noise + universal perturbations": NEURON_NOISE_FEATURES + UNIVERSAL_FEATURES,
    "shipped (neuron noise + universal perturbations + target agreement)": FEATURES,
    "shipped + clean": (*FEATURES, *CLEAN),
}


def three_splits(x: np.ndarray, y: np.ndarray, attack: np.ndarray, arch: np.ndarray, fit: Callable) -> str:
    """Random 5-fold (mean of 3 seeds) / leave-one-attack-out / leave-one-architecture-out AUC, as ban_detection."""

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = fit(x[train], y[train])
        return np.asarray([head.probability(row) for row in x[test]])

    random = random_split_auc(score, y)
    loao = mean_auc(leave_one_attack_out(score, y, attack))
    loarch = mean_auc(leave_one_domain_out(score, y, arch))
    return " | ".join(f"{split} {auc:.3f}" for split, auc in (("random", random), ("loao", loao), ("loarch", loarch)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo", type=Path, required=True)
    args = parser.parse_args()
    zoo = read_zoo(args.zoo)
    records = zoo_statistics(zoo, settings_from({}), cache_dir=default_cache_dir())
    y = np.asarray([m.backdoored for m in zoo.models], dtype=np.int64)
    family = np.asarray([m.family for m in zoo.models])
    attack = np.asarray([m.attack for m in zoo.models])
    arch = np.asarray([m.architecture for m in zoo.models])

    def matrix(names: tuple[str, ...]) -> np.ndarray:
        return np.nan_to_num(np.asarray([[r["statistics"][k] for k in names] for r in records], dtype=np.float64))

    names = tuple(sorted(records[0]["statistics"]))
    x = matrix(names)
    print(f"{len(y)} models, {int(y.sum())} backdoored")
    for i, name in enumerate(names):
        parts = " ".join(f"{f}={roc_auc(y[family == f], x[family == f, i]):.3f}" for f in sorted(set(family)))
        print(f"{name} | AUC {roc_auc(y, x[:, i]):.3f} | {parts}")
    for label, statistics in SETS.items():
        for head, fit in (("logistic", fit_logistic), ("trees", fit_trees)):
            splits = three_splits(matrix(statistics), y, attack, arch, fit)
            print(f"{label}, {len(statistics)} statistics, {head} | {splits}")


if __name__ == "__main__":
    main()
