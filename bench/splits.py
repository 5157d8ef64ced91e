"""The honest splits every detection benchmark reports, for any scorer.

A scorer `(train indices, test indices) -> test scores` fits on the models indexed by `train`. Random: 5 folds
(one seed per call). Leave-one-attack-out: for each attack, fit without its models and without a fold of the clean
models, score both. Leave-one-domain-out (architecture, family): fit on the other domains. The grouped splits return
group -> (labels, scores), so reports can show each group; `mean_auc` pools them. `split_aucs` gives the four
splits' AUCs of a zoo at once, `tree_scorer` the scorer of the shipped kind of head, and `tree_seed_cells`
those AUCs averaged over tree seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scanner.calibration.metrics import random_folds, roc_auc
from scanner.calibration.zoos import ZooModel
from scanner.detectors.one_pixel.classifier import fit_trees

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
GroupResults = dict[str, tuple[np.ndarray, np.ndarray]]


def random_split(scorer: Scorer, count: int, seed: int = 0) -> np.ndarray:
    """Out-of-fold scores of every model over 5 random folds."""
    scores = np.zeros(count)
    for fold in random_folds(count, 5, seed):
        scores[fold] = scorer(np.setdiff1d(np.arange(count), fold), fold)
    return scores


def leave_one_attack_out(scorer: Scorer, labels: np.ndarray, attacks: np.ndarray) -> GroupResults:
    """For each attack: its models and every clean model (each scored out of fold), from fits without that attack."""
    clean = np.flatnonzero(labels == 0)
    folds = random_folds(len(clean), 5, seed=7)
    out = {}
    for attack in sorted(set(attacks[labels == 1])):
        held = np.flatnonzero((attacks == attack) & (labels == 1))
        scores_held, scores_clean = np.zeros(len(held)), np.zeros(len(clean))
        for fold in folds:
            train = np.setdiff1d(np.arange(len(labels)), np.concatenate([held, clean[fold]]))
            scores_clean[fold] = scorer(train, clean[fold])
            scores_held += scorer(train, held) / len(folds)
        out[attack] = (np.r_[np.ones(len(held)), np.zeros(len(clean))], np.r_[scores_held, scores_clean])
    return out


def leave_one_domain_out(scorer: Scorer, labels: np.ndarray, domains: np.ndarray) -> GroupResults:
    """For each domain with both kinds of model on both sides: its models, scored by a fit on the other domains."""
    out = {}
    for domain in sorted(set(domains)):
        test, train = np.flatnonzero(domains == domain), np.flatnonzero(domains != domain)
        if len(set(labels[train])) == 2 and len(set(labels[test])) == 2:
            out[domain] = (labels[test], scorer(train, test))
    return out


def mean_auc(results: GroupResults) -> float:
    return float(np.mean([roc_auc(y, s) for y, s in results.values()]))


def random_split_auc(scorer: Scorer, labels: np.ndarray, seeds: int = 3) -> float:
    return float(np.mean([roc_auc(labels, random_split(scorer, len(labels), seed)) for seed in range(seeds)]))


SPLITS = ("random", "leave-one-attack-out", "leave-one-architecture-out", "leave-one-family-out")


def split_aucs(scorer: Scorer, models: Sequence[ZooModel]) -> tuple[float, float, float, float]:
    """The AUC on each of SPLITS: random (mean of 3 fold seeds), and the grouped ones pooled by `mean_auc`."""
    labels = np.asarray([m.backdoored for m in models], dtype=np.int64)

    def of(key: str) -> np.ndarray:
        return np.asarray([getattr(m, key) for m in models])

    return (
        random_split_auc(scorer, labels),
        mean_auc(leave_one_attack_out(scorer, labels, of("attack"))),
        mean_auc(leave_one_domain_out(scorer, labels, of("architecture"))),
        mean_auc(leave_one_domain_out(scorer, labels, of("family"))),
    )


def tree_scorer(features: np.ndarray, labels: np.ndarray, seed: int = 0, **settings: Any) -> Scorer:
    """Fit the shipped kind of head (`fit_trees`, tree seed `seed`, other `settings` passed on) on the training
    rows, score the test rows."""

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = fit_trees(features[train], labels[train], seed=seed, **settings)
        return np.asarray([head.probability(row) for row in features[test]])

    return score


def tree_seed_cells(features: np.ndarray, models: Sequence[ZooModel], seeds: int, **settings: Any) -> str:
    """Markdown cells: per split, the mean AUC of `tree_scorer` heads over tree seeds 0..seeds-1 and its standard
    error (the ensemble's own randomness moves a split by 0.01-0.04, as much as most feature changes)."""
    labels = np.asarray([m.backdoored for m in models], dtype=np.int64)
    runs = np.asarray([split_aucs(tree_scorer(features, labels, seed, **settings), models) for seed in range(seeds)])
    means, errors = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
    return " | ".join(f"{m:.3f} +- {e:.3f}" for m, e in zip(means, errors, strict=True))
