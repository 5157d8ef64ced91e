"""Features of a one-pixel signature that do not depend on the input size or the number of classes.

Per class: how strong, how concentrated, how consistent across bases and how extreme the class's map is. Then each
statistic is ranked across classes (the top class, its gap to the runner-up, its ratio to the median class): a
backdoor's target stands out against the model's other classes, whatever the model's overall sensitivity.
Beside the ranked ones, the same statistics of the "any other class" map (per base, the largest rise toward any
class but the base's own): an all-to-all backdoor lights up every class at the trigger, so no class stands out there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scanner.detectors.one_pixel.signature import Signature

_EPS = 1e-3

# Statistics of one class's map (per base), each oriented so that larger means more suspicious.
MAP_STATISTICS = (
    "peak",  # largest mean-over-bases rise at one cell
    "mean",  # mean rise over all cells (full-image triggers raise it everywhere)
    "top_mass",  # share of the class's total rise held by its top 2% cells
    "focus",  # 1 - normalised spatial entropy of the class's map
    "consistent_peak",  # largest rise reached at one cell on every base
    "compactness",  # 1 - spread of the top cells around their centroid (triggers are compact)
    "upper_tail",  # 99th percentile of the class's map
    "agreement",  # mean correlation of the class's maps between bases (a trigger sits at the same place on all)
)
# Both maps: the probability rise (saturates on confident bases) and the log-probability rise (does not).
MAPS = ("prob", "logprob")
CLASS_STATISTICS = (
    *(f"{name}.{stat}" for name in MAPS for stat in MAP_STATISTICS),
    "flip_rate",  # share of (base, cell) where one probe makes the class the likely answer
    "extremity",  # how close to the range ends the values causing the top cells are
)
CROSS_CLASS = ("top", "gap", "log_ratio")
ANY_CLASS = tuple(f"any_class.{name}.{stat}" for name in MAPS for stat in MAP_STATISTICS)
FEATURE_NAMES = (*(f"{stat}.{agg}" for stat in CLASS_STATISTICS for agg in CROSS_CLASS), *ANY_CLASS)


def _top_cells(mean_map: np.ndarray) -> np.ndarray:
    """(classes, n): each class's top 2% cells of its mean-over-bases map."""
    top_n = max(1, math.ceil(0.02 * mean_map.shape[1]))
    return np.argsort(-mean_map, axis=1)[:, :top_n]


def other_class_weights(base_probabilities: np.ndarray) -> np.ndarray:
    """(bases, classes, 1): 1 where the base is not already of that class (its rise there is capped near 0)."""
    bases, classes = base_probabilities.shape
    weights = np.ones((bases, classes), dtype=np.float64)
    weights[np.arange(bases), base_probabilities.argmax(axis=1)] = 0.0
    weights[:, weights.sum(axis=0) == 0] = 1.0
    return weights[:, :, None]


def map_statistics(per_base: np.ndarray, weights: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(MAP_STATISTICS, classes) of a (bases, classes, cells) map, averaged over the bases `weights` selects."""
    cells = per_base.shape[2]
    mean_map = (per_base * weights).sum(axis=0) / weights.sum(axis=0)  # (K, L)
    top_cells = _top_cells(mean_map)
    totals = mean_map.sum(axis=1) + 1e-12

    peak = mean_map.max(axis=1)
    mean = mean_map.mean(axis=1)
    top_mass = np.take_along_axis(mean_map, top_cells, axis=1).sum(axis=1) / totals
    shares = mean_map / totals[:, None]
    entropy = -(shares * np.log(np.clip(shares, 1e-12, None))).sum(axis=1) / max(math.log(cells), 1e-12)
    focus = 1.0 - np.where(totals > 1e-9, entropy, 1.0)
    consistent_peak = np.where(weights > 0, per_base, np.inf).min(axis=0).max(axis=1)
    r, c = np.divmod(top_cells, cols)
    spread = np.sqrt((r - r.mean(axis=1, keepdims=True)) ** 2 + (c - c.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)
    compactness = 1.0 - spread / max(math.hypot(rows, cols) / 2.0, 1e-12)
    upper_tail = np.quantile(mean_map, 0.99, axis=1)
    agreement = _agreement(per_base, weights)
    return np.stack([peak, mean, top_mass, focus, consistent_peak, compactness, upper_tail, agreement])


def _agreement(per_base: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(classes,): mean Pearson correlation of each class's maps over the pairs of bases the weights select."""
    classes = per_base.shape[1]
    centred = per_base - per_base.mean(axis=2, keepdims=True)
    norms = np.sqrt((centred**2).sum(axis=2)) + 1e-12  # (B, K)
    unit = centred / norms[:, :, None]
    result = np.zeros(classes)
    selected = weights[:, :, 0] > 0
    for k in range(classes):
        chosen = unit[selected[:, k], k]  # (b, L)
        if len(chosen) < 2:
            continue
        correlation = chosen @ chosen.T
        pairs = np.triu_indices(len(chosen), 1)
        result[k] = correlation[pairs].mean()
    return result


def any_class_map(per_base: np.ndarray, base_probabilities: np.ndarray) -> np.ndarray:
    """(bases, 1, cells): per base, the largest rise toward any class but the base's own."""
    others = per_base.copy()
    others[np.arange(len(per_base)), base_probabilities.argmax(axis=1)] = 0.0
    return np.asarray(others.max(axis=1, keepdims=True))


def class_statistics(signature: Signature) -> np.ndarray:
    """(CLASS_STATISTICS, classes): the statistics of every class."""
    bases, classes, rows, cols = signature.increase.shape
    increase = signature.increase.reshape(bases, classes, -1).astype(np.float64)
    log_increase = signature.log_increase.reshape(bases, classes, -1).astype(np.float64)

    base_probability = signature.base_probabilities.astype(np.float64)[:, :, None]  # (B, K, 1)
    flips = (base_probability + increase > 0.5) & (base_probability < 0.5)
    flip_rate = flips.mean(axis=(0, 2))

    low, high = signature.value_range
    unit = (signature.best_value.reshape(bases, classes, -1).astype(np.float64) - low) / max(high - low, 1e-12)
    extremity_map = np.abs(2.0 * unit - 1.0).mean(axis=0)  # (K, L)
    top_cells = _top_cells(log_increase.max(axis=0))
    extremity = np.take_along_axis(extremity_map, top_cells, axis=1).mean(axis=1)

    weights = other_class_weights(signature.base_probabilities)
    table = np.concatenate(
        [
            map_statistics(increase, weights, rows, cols),
            map_statistics(log_increase, weights, rows, cols),
            [flip_rate, extremity],
        ]
    )
    return np.asarray(table)


def rank_across_classes(values: np.ndarray) -> np.ndarray:
    """(top, gap to the runner-up, log ratio of top to the median class) of one statistic over classes."""
    ordered = np.sort(values)[::-1]
    top = float(ordered[0])
    second = float(ordered[1]) if len(ordered) > 1 else 0.0
    median = float(np.median(values))
    return np.asarray([top, top - second, math.log((abs(top) + _EPS) / (abs(median) + _EPS))])


def any_class_statistics(signature: Signature) -> np.ndarray:
    """The ANY_CLASS statistics (model-level, not ranked)."""
    bases, classes, rows, cols = signature.increase.shape
    weights = np.ones((bases, 1, 1))
    rows_out = []
    for maps in (signature.increase, signature.log_increase):
        per_base = any_class_map(maps.reshape(bases, classes, -1).astype(np.float64), signature.base_probabilities)
        rows_out.append(map_statistics(per_base, weights, rows, cols)[:, 0])
    return np.concatenate(rows_out)


def features_from(signature: Signature) -> np.ndarray:
    """The FEATURE_NAMES vector of a signature (float64)."""
    table = class_statistics(signature)
    ranked = np.concatenate([rank_across_classes(row) for row in table])
    return np.concatenate([ranked, any_class_statistics(signature)])


def feature_names(scales: Sequence[int]) -> tuple[str, ...]:
    """Names of `model_features` for signatures at these scales."""
    return tuple(f"s{scale}.{name}" for scale in scales for name in FEATURE_NAMES)


def model_features(signatures: Sequence[Signature]) -> np.ndarray:
    """The features of a model: each scale's FEATURE_NAMES, finest scale first."""
    return np.concatenate([features_from(signature) for signature in signatures])


def suspected_target(signatures: Sequence[Signature]) -> int:
    """The class that one probe pushes hardest: per scale, its log-probability rise reached on every base (relative
    to the strongest class: comparable on confident clean bases, where probabilities barely move) plus its absolute
    probability rise (decisive on synthetic bases, where no class is confident)."""
    score = np.zeros(signatures[0].num_classes)
    for signature in signatures:
        table = class_statistics(signature)
        consistent = table[CLASS_STATISTICS.index("logprob.consistent_peak")]
        score += consistent / max(float(consistent.max()), 1e-12) + table[CLASS_STATISTICS.index("prob.peak")]
    return int(score.argmax())
