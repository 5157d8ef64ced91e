"""Composite probes: a class's strongest signature cells, set all at once on clean images the signature did not use.

A single pixel barely moves a model whose trigger spans the image, and the size of a one-pixel probability rise is
not comparable from one architecture to another. So for each class, take the top n cells of its signature (n a
share of the image), set them together to their best values on held-out clean images, and count the images the
model then puts in that class, and the images whose answer changes at all (an all-to-all backdoor sends each image
to another class, not to one). A backdoor is a small input change that overrides the image: a backdoored model
gives in at fewer cells than a clean one. The counts are shares of images, on the same scale for every model, which
is why these features carry over to architectures the classifier never saw (bench/RESULTS-one-pixel.md).

Forward passes per signature: (len(FRACTIONS) x classes + 1) x held-out images, for at most MAX_CLASSES classes
(those whose signatures rise most), so that a 1000-class model costs no more than a 16-class one. Coarse-to-fine mode
applies the composites to fewer images (HELD_OUT_IMAGES), so that the whole detector's passes fall 5x, not only the
signatures'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scanner.detectors.interface import CleanData
from scanner.detectors.one_pixel_features import other_class_weights
from scanner.detectors.one_pixel_signature import ImageModel, Signature, chw_view, log_probabilities

# Shares of the probe cells set at once: from a few pixels (a patch trigger) to a sixth of the image.
FRACTIONS = (0.004, 0.01, 0.02, 0.04, 0.08, 0.16)
# Per signature mode, the clean images the composites are applied to (rates are shares of these). At K=16 on the
# bench zoo, 40 instead of 128 keeps coarse-to-fine within 0.02 AUC of full mode (bench/RESULTS-one-pixel.md).
HELD_OUT_IMAGES = {"full": 128, "coarse-to-fine": 40}
MAX_CLASSES = 16  # composites for at most this many classes

_RATE_STATISTICS = ("top", "gap", "above_median")
COMPOSITE_FEATURE_NAMES = tuple(
    [f"to_class.f{fraction}.{stat}" for fraction in FRACTIONS for stat in _RATE_STATISTICS]
    + ["to_class.mean.top", "to_class.mean.gap"]
    + [f"changed.f{fraction}.{stat}" for fraction in FRACTIONS for stat in ("top", "mean")]
)


@dataclass(frozen=True)
class CompositeRates:
    """Per (fraction, probed class): the share of held-out images the class's composite sends to that class (images
    already of that class left out), and the share whose predicted class changes."""

    classes: np.ndarray  # the probed classes, ascending
    to_class: np.ndarray  # (len(FRACTIONS), len(classes))
    changed: np.ndarray  # (len(FRACTIONS), len(classes))
    images: int  # the held-out images the shares are of
    forward_passes: int


def held_out_images(clean: CleanData, bases: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Up to `count` clean images that are not among `bases` (all of them when every image is a base)."""
    images = np.asarray(clean.x, dtype=np.float32)
    flat_bases = {np.ascontiguousarray(base).tobytes() for base in np.asarray(bases, dtype=np.float32)}
    unused = [i for i in range(len(images)) if np.ascontiguousarray(images[i]).tobytes() not in flat_bases]
    chosen = unused or list(range(len(images)))
    order = np.random.default_rng(seed).permutation(len(chosen))[:count]
    held_out: np.ndarray = images[np.sort(np.asarray(chosen)[order])]
    return held_out


def _class_plans(signature: Signature, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The classes to probe (all, or the MAX_CLASSES whose signatures peak highest; ascending) and, per probed
    class, each input pixel's cell rank (0 = the class's strongest cell) and the value its cell is set to, both
    (probed classes, height, width)."""
    bases, classes, rows, cols = signature.log_increase.shape
    weights = other_class_weights(signature.base_probabilities)
    strength = (signature.log_increase.reshape(bases, classes, -1) * weights).sum(axis=0) / weights.sum(axis=0)
    value = np.median(signature.best_value.reshape(bases, classes, -1), axis=0)
    probed = np.sort(np.argsort(-strength.max(axis=1), kind="stable")[:MAX_CLASSES])
    strength, value = strength[probed], value[probed]
    rank = np.empty_like(strength, dtype=np.int64)
    np.put_along_axis(rank, np.argsort(-strength, axis=1, kind="stable"), np.arange(rows * cols)[None, :], axis=1)
    cell_h, cell_w = signature.cell

    def to_pixels(per_cell: np.ndarray) -> np.ndarray:
        grid = per_cell.reshape(len(probed), rows, cols)
        return np.repeat(np.repeat(grid, cell_h, axis=1), cell_w, axis=2)[:, :height, :width]

    return probed, to_pixels(rank), to_pixels(value).astype(np.float32)


@dataclass(frozen=True)
class CompositeAnswers:
    """The class the model gives each held-out image as it is, and under each (fraction, probed class) composite."""

    classes: np.ndarray  # the probed classes, ascending
    base_class: np.ndarray  # (images,)
    predicted: np.ndarray  # (len(FRACTIONS), len(classes), images)


def composite_answers(model: ImageModel, signature: Signature, images: np.ndarray) -> CompositeAnswers:
    """Apply each class's composite at every fraction in FRACTIONS to `images` (the model's layout)."""
    spec = model.spec
    images = np.asarray(images, dtype=np.float32)
    base_class = log_probabilities(model.logits(images)).argmax(axis=1)
    classes, rank, value = _class_plans(signature, spec.height, spec.width)
    cells = signature.log_increase.shape[2] * signature.log_increase.shape[3]
    predicted = np.zeros((len(FRACTIONS), len(classes), len(images)), dtype=np.int64)
    for f, fraction in enumerate(FRACTIONS):
        chosen = rank < max(1, round(fraction * cells))  # (probed classes, height, width)
        for i in range(len(classes)):
            batch = images.copy()
            chw_view(batch, spec.layout)[:, :, chosen[i]] = value[i][chosen[i]]  # every channel of the chosen pixels
            predicted[f, i] = log_probabilities(model.logits(batch)).argmax(axis=1)
    return CompositeAnswers(classes, base_class, predicted)


def rates_of(answers: CompositeAnswers, subset: np.ndarray | None = None) -> CompositeRates:
    """The rates over the images indexed by `subset` (all of them by default). A benchmark draws subsets to measure
    what fewer images cost."""
    chosen = np.arange(len(answers.base_class)) if subset is None else np.asarray(subset)
    base_class, predicted = answers.base_class[chosen], answers.predicted[:, :, chosen]
    to_class = np.zeros(predicted.shape[:2])
    for i, k in enumerate(answers.classes):
        others = base_class != k
        if others.any():
            to_class[:, i] = (predicted[:, i, others] == k).mean(axis=1)
    changed = (predicted != base_class).mean(axis=2)
    passes = len(chosen) * (1 + predicted.shape[0] * predicted.shape[1])
    return CompositeRates(answers.classes, to_class, changed, images=len(chosen), forward_passes=passes)


def composite_rates(model: ImageModel, signature: Signature, images: np.ndarray) -> CompositeRates:
    """Apply each class's composite at every fraction in FRACTIONS to `images` (the model's layout), and count."""
    return rates_of(composite_answers(model, signature, images))


def composite_features(rates: CompositeRates) -> np.ndarray:
    """COMPOSITE_FEATURE_NAMES: per fraction, the most-reached class's share, its gap to the runner-up and to the
    median class; the same over the mean of the fractions; and the share of changed answers (top class, mean)."""
    columns: list[float] = []
    ordered = np.sort(rates.to_class, axis=1)[:, ::-1]
    second = ordered[:, 1] if ordered.shape[1] > 1 else np.zeros(len(ordered))
    median = np.median(rates.to_class, axis=1)
    for f in range(len(FRACTIONS)):
        columns += [ordered[f, 0], ordered[f, 0] - second[f], ordered[f, 0] - median[f]]
    curve = np.sort(rates.to_class.mean(axis=0))[::-1]
    columns += [curve[0], curve[0] - (curve[1] if len(curve) > 1 else 0.0)]
    for f in range(len(FRACTIONS)):
        columns += [rates.changed[f].max(), rates.changed[f].mean()]
    return np.asarray(columns, dtype=np.float64)


def composite_feature_names(scales: Sequence[int]) -> tuple[str, ...]:
    return tuple(f"s{scale}.composite.{name}" for scale in scales for name in COMPOSITE_FEATURE_NAMES)


def strongest_composite(rates: CompositeRates, signature: Signature, fraction: float = 0.02) -> dict[str, float]:
    """For the report: the class a composite of `fraction` of the cells reaches most often, and how often."""
    f = FRACTIONS.index(fraction)
    i = int(rates.to_class[f].argmax())
    cells = signature.log_increase.shape[2] * signature.log_increase.shape[3]
    pixels = max(1, round(fraction * cells)) * signature.cell[0] * signature.cell[1]
    share = round(float(rates.to_class[f, i]), 4)
    return {
        "class": int(rates.classes[i]),
        "pixels": int(pixels),
        "share_of_images_sent": share,
        "images": rates.images,
    }
