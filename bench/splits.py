"""The honest splits every detection benchmark reports, as mean AUCs, for any scoring function.

`score(train, test)` fits on the models indexed by `train` and returns scores for `test`. Random: 5 folds, mean of 3
seeds. Leave-one-attack-out: for each attack, fit without its models and without a fold of the clean models, score
both (as bench.one_pixel_detection). Leave-one-domain-out (architecture, family): fit on the other domains.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from scanner.detectors.one_pixel_training import random_folds, roc_auc

Score = Callable[[np.ndarray, np.ndarray], np.ndarray]


def random_split_auc(score: Score, y: np.ndarray, seeds: int = 3) -> float:
    aucs = []
    for seed in range(seeds):
        scores = np.zeros(len(y))
        for fold in random_folds(len(y), 5, seed):
            scores[fold] = score(np.setdiff1d(np.arange(len(y)), fold), fold)
        aucs.append(roc_auc(y, scores))
    return float(np.mean(aucs))


def leave_one_attack_out_auc(score: Score, y: np.ndarray, attack: np.ndarray) -> float:
    clean, aucs = np.flatnonzero(y == 0), []
    for held_attack in sorted(set(attack[y == 1])):
        held = np.flatnonzero((attack == held_attack) & (y == 1))
        scores_held, scores_clean = np.zeros(len(held)), np.zeros(len(clean))
        for fold in random_folds(len(clean), 5, seed=7):
            train = np.setdiff1d(np.arange(len(y)), np.concatenate([held, clean[fold]]))
            scores_clean[fold] = score(train, clean[fold])
            scores_held += score(train, held) / 5
        aucs.append(roc_auc(np.r_[np.ones(len(held)), np.zeros(len(clean))], np.r_[scores_held, scores_clean]))
    return float(np.mean(aucs))


def leave_one_domain_out_auc(score: Score, y: np.ndarray, domains: np.ndarray) -> float:
    aucs = []
    for domain in sorted(set(domains)):
        test, train = np.flatnonzero(domains == domain), np.flatnonzero(domains != domain)
        aucs.append(roc_auc(y[test], score(train, test)))
    return float(np.mean(aucs))
