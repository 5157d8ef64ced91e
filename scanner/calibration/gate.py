"""Gate calibration: where the shipped threshold sits, set by the clean models of more than one zoo.

A fitted score's ranking may carry over to models built elsewhere; its level does not: every probability fitted on
one zoo sat higher on a second zoo's clean models than on its own (bench/RESULTS.md, "Transfer"). So each shipped
score is shifted on the log-odds scale until the threshold, 0.5, sits just above the out-of-fold score that all but
`GATE_ALPHA` of the calibration zoos' clean models reach: a conformal threshold, which says how many clean models of
a zoo like those may be blocked, and which the transfer bench checks on zoos left out of the fit. Out of fold,
because a model's in-fold score is lower than any new model's will be; and out of family (`gate_folds`), because a
new data family shifts every score: with random folds the head without clean data, fitted on the other families,
blocked 30% of a left-out family's clean models (docs/experiments.md).

Gate zoos (`model-scanner detector train --gate-zoo DIR`) add clean models that no fit sees, scored by the final fit
as a new model would be: the threshold sits above the quantile of the out-of-fold scores and above that of the gate
zoos' scores, so that it holds for both. They bring the data families, recipes and builders that the fitted zoos
lack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scanner.calibration.metrics import random_folds
from scanner.detectors.logistic import logit
from scanner.errors import UsageError

# Share of calibration clean models allowed at or above the threshold. The gate's promise is "rarely blocks a clean
# model" (issue: at most 5% on zoos never seen); 2% leaves room for the shift from the calibration zoos to others.
GATE_ALPHA = 0.02
_ABOVE = 1e-3  # log-odds: the threshold sits this far above the quantile, so the quantile's own model passes


def gate_folds(count: int, groups: Sequence[str] | None = None, seed: int = 0) -> list[np.ndarray]:
    """The folds the out-of-fold scores come from: one per group (data family) when there are at least three, so that
    each model is scored by a fit that never saw its family; else five random folds."""
    if groups is not None and len(set(groups)) >= 3:
        names = np.asarray(list(groups))
        return [np.flatnonzero(names == name) for name in sorted(set(names))]
    return random_folds(count, seed=seed)


def folds_description(groups: Sequence[str] | None) -> str:
    """What `gate_folds` chose for these groups, as the shipped files' provenance records it."""
    return "one per data family" if groups is not None and len(set(groups)) >= 3 else "5 random"


def clean_quantile(
    scores: np.ndarray, labels: np.ndarray, alpha: float = GATE_ALPHA, clean_elsewhere: Sequence[float] = ()
) -> float:
    """The conformal (1 - alpha) quantile of the clean models' scores: the ceil((n + 1)(1 - alpha))-th smallest of
    n, or the largest when n is too small for alpha. With `clean_elsewhere` (scores of gate zoos' clean models), the
    larger of the two sets' quantiles: the threshold holds for each, and a large set of easy clean models cannot pull
    it below what the other needs."""
    fitted = _quantile(np.asarray(scores, dtype=np.float64)[np.asarray(labels) == 0], alpha)
    if len(clean_elsewhere) == 0:
        return fitted
    return max(fitted, _quantile(np.asarray(clean_elsewhere, dtype=np.float64), alpha))


def _quantile(clean: np.ndarray, alpha: float) -> float:
    clean = np.sort(clean[~np.isnan(clean)])
    if len(clean) == 0:
        raise UsageError("the gate calibration needs clean models with scores", hint="build a zoo with clean models")
    rank = min(len(clean), math.ceil((len(clean) + 1) * (1.0 - alpha)))
    return float(clean[rank - 1])


def gate_offset(
    scores: np.ndarray, labels: np.ndarray, alpha: float = GATE_ALPHA, clean_elsewhere: Sequence[float] = ()
) -> float:
    """The log-odds shift that maps the clean quantile of `scores` (and `clean_elsewhere`) to just under 0.5."""
    return logit(clean_quantile(scores, labels, alpha, clean_elsewhere)) + _ABOVE


def quantile_of(offset: float) -> float:
    """The score a gate offset maps to 0.5: what the shipped files record as `gate_clean_quantile`."""
    return round(1.0 / (1.0 + math.exp(-offset)), 4)
