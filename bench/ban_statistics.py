"""Which BAN statistic separates: each one's AUC on a zoo (overall and per family), and all of them at once out of fold.

    python -m bench.ban_statistics --zoo /work/bench-zoo

Reads the BAN statistics cache that `python -m bench.ban_detection` fills (computes what is missing). An AUC below
0.5 means the statistic is lower for backdoored models. Prints lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from scanner.detectors.ban import settings_from
from scanner.detectors.ban_training import default_cache_dir, zoo_statistics
from scanner.detectors.one_pixel_classifier import fit_logistic, fit_trees
from scanner.detectors.one_pixel_training import random_folds, read_zoo, roc_auc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo", type=Path, required=True)
    args = parser.parse_args()
    zoo = read_zoo(args.zoo)
    records = zoo_statistics(zoo, settings_from({}), cache_dir=default_cache_dir())
    y = np.asarray([m.backdoored for m in zoo.models], dtype=np.int64)
    family = np.asarray([m.family for m in zoo.models])
    per_class = ("targeted_rate_", "clean_margin_")
    names = sorted(k for k in records[0]["statistics"] if not k.startswith(per_class))
    x = np.nan_to_num(np.asarray([[r["statistics"][k] for k in names] for r in records], dtype=np.float64))
    print(f"{len(y)} models, {int(y.sum())} backdoored")
    for i, name in enumerate(names):
        parts = " ".join(f"{f}={roc_auc(y[family == f], x[family == f, i]):.3f}" for f in sorted(set(family)))
        print(f"{name} | AUC {roc_auc(y, x[:, i]):.3f} | {parts}")
    for label, fit in (("logistic", fit_logistic), ("trees", fit_trees)):
        aucs = []
        for seed in range(3):
            scores = np.zeros(len(y))
            for fold in random_folds(len(y), 5, seed):
                train = np.setdiff1d(np.arange(len(y)), fold)
                head = fit(x[train], y[train])
                scores[fold] = [head.probability(row) for row in x[fold]]
            aucs.append(roc_auc(y, scores))
        print(f"all {len(names)} statistics, {label}, random 5-fold x 3 seeds | AUC {np.mean(aucs):.3f}")


if __name__ == "__main__":
    main()
