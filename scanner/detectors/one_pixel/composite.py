"""Composite probes: a class's strongest signature cells, set all at once on clean images the signature did not use.

A single pixel barely moves a model whose trigger spans the image, and the size of a one-pixel probability rise is
not comparable from one architecture to another. So for each class, take the top n cells of its signature (n a
share of the image), set them together to their best values on held-out clean images, and count the images the
model then puts in that class, and the images whose answer changes at all (an all-to-all backdoor sends each image
to another class, not to one). A backdoor is a small input change that overrides the image: a backdoored model
gives in at fewer cells than a clean one. The counts are shares of images, on the same scale for every model, which
is why these features carry over to architectures the classifier never saw (bench/RESULTS-one-pixel.md).

Beside them, blend probes: the whole image moved a share of the way (BLENDS) toward a class's value map, the best
value of every cell. A trigger spread over the whole image (a blended pattern, a faint signal) moves no single pixel
far, but the value map still leans its way, and a backdoored model follows it at a smaller share than a clean one.

Forward passes per signature: ((len(FRACTIONS) + len(BLENDS)) x classes + 1) x held-out images, for at most
MAX_CLASSES classes (those whose signatures rise most), so that a 1000-class model costs no more than a 16-class one.
Coarse-to-fine mode probes only the finest scale's signature (COMPOSITE_SCALES), on fewer images (HELD_OUT_IMAGES),
so that the whole detector's passes fall 5x, not only the signatures'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from scanner.detectors.interface import CleanData
from scanner.detectors.one_pixel.features import other_class_weights
from scanner.detectors.one_pixel.patches import PATCH_FEATURE_NAMES, PATCH_IMAGES, PatchAnswers, patch_features
from scanner.detectors.one_pixel.signature import ImageModel, Signature, chw_view, log_probabilities_of

# Shares of the probe cells set at once: from a few pixels (a patch trigger) to a sixth of the image.
FRACTIONS = (0.004, 0.01, 0.02, 0.04, 0.08, 0.16)
# How far each blend probe moves every pixel toward the class's value map (0: the image, 1: the value map).
BLENDS = (0.1, 0.2, 0.35, 0.5)
# Per signature mode, the clean images the composites are applied to (rates are shares of these), and how many of
# the scales' signatures (finest first; None: all) get them. Coarse-to-fine has the passes for 36 images at both
# scales or 72 at the finest: the second scale's composites added nothing there, and twice the images bring its AUC
# within 0.02 of full mode's at K=16 (bench/RESULTS-one-pixel.md).
HELD_OUT_IMAGES = {"full": 128, "coarse-to-fine": 72}
COMPOSITE_SCALES = {"full": None, "coarse-to-fine": 1}
MAX_CLASSES = 16  # composites for at most this many classes
T = TypeVar("T")

_RATE_STATISTICS = ("top", "gap", "above_median")
COMPOSITE_FEATURE_NAMES = tuple(
    [f"to_class.f{fraction}.{stat}" for fraction in FRACTIONS for stat in _RATE_STATISTICS]
    + ["to_class.mean.top", "to_class.mean.gap"]
    + [f"changed.f{fraction}.{stat}" for fraction in FRACTIONS for stat in ("top", "mean")]
    + [f"blend.a{alpha}.{stat}" for alpha in BLENDS for stat in (*_RATE_STATISTICS, "changed_top", "changed_mean")]
)


@dataclass(frozen=True)
class CompositeRates:
    """Per (fraction, probed class): the share of held-out images the class's composite sends to that class (images
    already of that class left out), and the share whose predicted class changes. The same per (blend, probed
    class) for the blend probes."""

    classes: np.ndarray  # the probed classes, ascending
    to_class: np.ndarray  # (len(FRACTIONS), len(classes))
    changed: np.ndarray  # (len(FRACTIONS), len(classes))
    blend_to_class: np.ndarray  # (len(BLENDS), len(classes))
    blend_changed: np.ndarray  # (len(BLENDS), len(classes))
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


def probe_images(clean: CleanData, bases: np.ndarray, mode: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The held-out clean images signature `mode` probes: (the composites' and blends', HELD_OUT_IMAGES of them;
    the patch probes', the first PATCH_IMAGES of those)."""
    images = held_out_images(clean, bases, HELD_OUT_IMAGES[mode], seed=seed)
    return images, images[: PATCH_IMAGES[mode]]


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
    """The class the model gives each held-out image as it is, under each (fraction, probed class) composite and
    under each (blend, probed class) blend probe."""

    classes: np.ndarray  # the probed classes, ascending
    base_class: np.ndarray  # (images,)
    predicted: np.ndarray  # (len(FRACTIONS), len(classes), images)
    blended: np.ndarray  # (len(BLENDS), len(classes), images)


def composite_answers(model: ImageModel, signature: Signature, images: np.ndarray) -> CompositeAnswers:
    """Apply each class's composite at every fraction in FRACTIONS, and its blend probe at every share in BLENDS, to
    `images` (the model's layout)."""
    spec = model.spec
    images = np.asarray(images, dtype=np.float32)
    base_class = log_probabilities_of(model, images).argmax(axis=1)
    classes, rank, value = _class_plans(signature, spec.height, spec.width)
    cells = signature.log_increase.shape[2] * signature.log_increase.shape[3]
    predicted = np.zeros((len(FRACTIONS), len(classes), len(images)), dtype=np.int64)
    for f, fraction in enumerate(FRACTIONS):
        chosen = rank < max(1, round(fraction * cells))  # (probed classes, height, width)
        for i in range(len(classes)):
            batch = images.copy()
            chw_view(batch, spec.layout)[:, :, chosen[i]] = value[i][chosen[i]]  # every channel of the chosen pixels
            predicted[f, i] = log_probabilities_of(model, batch).argmax(axis=1)
    blended = np.zeros((len(BLENDS), len(classes), len(images)), dtype=np.int64)
    for b, alpha in enumerate(BLENDS):
        for i in range(len(classes)):
            batch = images.copy()
            pixels = chw_view(batch, spec.layout)
            pixels += np.float32(alpha) * (value[i] - pixels)  # every channel toward the value map
            blended[b, i] = log_probabilities_of(model, batch).argmax(axis=1)
    return CompositeAnswers(classes, base_class, predicted, blended)


def rates_of(answers: CompositeAnswers, subset: np.ndarray | None = None) -> CompositeRates:
    """The rates over the images indexed by `subset` (all of them by default). A benchmark draws subsets to measure
    what fewer images cost."""
    chosen = np.arange(len(answers.base_class)) if subset is None else np.asarray(subset)
    base_class = answers.base_class[chosen]
    to_class, changed = _shares(answers.predicted[:, :, chosen], base_class, answers.classes)
    blend_to_class, blend_changed = _shares(answers.blended[:, :, chosen], base_class, answers.classes)
    probes = answers.predicted.shape[0] + answers.blended.shape[0]
    passes = len(chosen) * (1 + probes * len(answers.classes))
    return CompositeRates(
        answers.classes, to_class, changed, blend_to_class, blend_changed, images=len(chosen), forward_passes=passes
    )


def _shares(predicted: np.ndarray, base_class: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (probe, probed class) of `predicted` (probes, classes, images): the share of the images not already of
    the class that go to it, and the share of all images whose answer changes."""
    to_class = np.zeros(predicted.shape[:2])
    for i, k in enumerate(classes):
        others = base_class != k
        if others.any():
            to_class[:, i] = (predicted[:, i, others] == k).mean(axis=1)
    return to_class, (predicted != base_class).mean(axis=2)


def composite_rates(model: ImageModel, signature: Signature, images: np.ndarray) -> CompositeRates:
    """Apply each class's composites and blend probes to `images` (the model's layout), and count."""
    return rates_of(composite_answers(model, signature, images))


def composite_features(rates: CompositeRates) -> np.ndarray:
    """COMPOSITE_FEATURE_NAMES: per fraction, the most-reached class's share, its gap to the runner-up and to the
    median class; the same over the mean of the fractions; the share of changed answers (top class, mean); and per
    blend, the ranked shares and the changed answers together."""
    columns: list[float] = []
    for f in range(len(FRACTIONS)):
        columns += _ranked(rates.to_class[f])
    curve = rates.to_class.mean(axis=0)
    columns += _ranked(curve)[:2]
    for f in range(len(FRACTIONS)):
        columns += [rates.changed[f].max(), rates.changed[f].mean()]
    for b in range(len(BLENDS)):
        columns += [*_ranked(rates.blend_to_class[b]), rates.blend_changed[b].max(), rates.blend_changed[b].mean()]
    return np.asarray(columns, dtype=np.float64)


def _ranked(shares: np.ndarray) -> list[float]:
    """The top class's share, its gap to the runner-up and to the median class."""
    ordered = np.sort(shares)[::-1]
    top, second = float(ordered[0]), float(ordered[1]) if len(ordered) > 1 else 0.0
    return [top, top - second, top - float(np.median(shares))]


def probed_scales(per_scale: Sequence[T], mode: str) -> tuple[T, ...]:
    """Of `per_scale` (one item per scale, finest first: the scales themselves, or their signatures), those of the
    scales whose signatures get composite probes in signature `mode`."""
    return tuple(per_scale)[: COMPOSITE_SCALES[mode]]


def composite_feature_names(scales: Sequence[int], mode: str = "full") -> tuple[str, ...]:
    """The probe features of the clean-data head: the composites and blends of each scale that gets them in `mode`,
    then the patch probes (scanner.detectors.one_pixel.patches), which do not depend on a signature."""
    probed = probed_scales(scales, mode)
    per_scale = tuple(f"s{scale}.composite.{name}" for scale in probed for name in COMPOSITE_FEATURE_NAMES)
    return per_scale + PATCH_FEATURE_NAMES


def probe_features(rates: Sequence[CompositeRates], patches: PatchAnswers) -> np.ndarray:
    """The values of composite_feature_names: `rates` one per probed scale (finest first), then the patch probes."""
    return np.concatenate([*(composite_features(r) for r in rates), patch_features(patches)])


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
