"""Patch probes: small saturated squares stamped on held-out clean images, the multi-pixel trigger single pixels miss.

A one-pixel probe does not set off a trigger of several pixels, such as an all-to-all colour patch in a ResNet
(docs/experiments.md). So stamp squares of side height / 5 at a GRID x GRID grid of places, in every
saturated solid colour (2^channels) and RANDOM_PATTERNS random black-and-white patterns, and count how the answers
move. A model trained on a patch trigger reacts to such squares otherwise than a clean one: some react more (a partial
trigger), others less (they learned to ignore squares that are not their trigger); the classifier reads both.

Forward passes: (2^channels + RANDOM_PATTERNS) x GRID^2 x PATCH_IMAGES[mode] (8 192 for a 32x32x3 model in full
mode), on the first of the images the composites use. On the 220-model bench zoo they raise the clean-data head's
AUC from 0.932 / 0.894 / 0.881 to 0.950 / 0.911 / 0.900 (docs/experiments.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.detectors.one_pixel.signature import ImageModel, chw_view, log_probabilities_of

GRID = 4  # places per side
RANDOM_PATTERNS = 8
# Per signature mode, the held-out images the probes are stamped on: 16 images keep most of the gain (bench), 8 keep
# coarse-to-fine 5x cheaper than full mode at K=16.
PATCH_IMAGES = {"full": 32, "coarse-to-fine": 8}
PATCH_FEATURE_NAMES = tuple(
    f"patch.{name}"
    for name in (
        "changed.max",  # largest share of images whose answer one probe changes
        "changed.mean",
        "changed.q90",
        "to_class.max",  # largest share of images one probe sends to one class (images already of it left out)
        "to_class.mean",
        "drop.max",  # largest mean drop of the probability of each image's own class
        "drop.mean",
        "changed.best_pattern.mean",  # mean over places of the pattern that changes most there
        "changed.best_place.mean",  # mean over patterns of the place where it changes most
    )
)


@dataclass(frozen=True)
class PatchAnswers:
    """The class the model gives each image as it is, and per (pattern, place, image) under the probe, with the drop
    of the image's own class's probability."""

    base_class: np.ndarray  # (images,)
    answers: np.ndarray  # (patterns, places, images)
    drops: np.ndarray  # (patterns, places, images)
    side: int

    @property
    def forward_passes(self) -> int:
        return int(self.answers.size + self.base_class.size)


def patch_side(height: int) -> int:
    return max(3, round(height / 5))


def patterns(channels: int, side: int) -> np.ndarray:
    """(2^channels solid colours, then RANDOM_PATTERNS random ones; channels, side, side), values 0 or 1 (the
    range ends: the detector works on inputs scaled to [0, 1])."""
    solid = [[(colour >> c) & 1 for c in range(channels)] for colour in range(2**channels)]
    solids = np.broadcast_to(np.asarray(solid, np.float32)[:, :, None, None], (len(solid), channels, side, side))
    randoms = np.random.default_rng(12).integers(0, 2, (RANDOM_PATTERNS, channels, side, side)).astype(np.float32)
    return np.concatenate([solids, randoms])


def patch_answers(model: ImageModel, images: np.ndarray) -> PatchAnswers:
    """Stamp every pattern at every place on `images` (the model's layout), one batch per (pattern, place)."""
    spec = model.spec
    images = np.asarray(images, dtype=np.float32)
    side = patch_side(spec.height)
    rows = np.linspace(0, spec.height - side, GRID).round().astype(int)
    cols = np.linspace(0, spec.width - side, GRID).round().astype(int)
    places = [(row, col) for row in rows for col in cols]
    base = np.exp(log_probabilities_of(model, images))
    base_class = base.argmax(axis=1)
    every = np.arange(len(images))
    own = base[every, base_class]  # each image's probability of its own class, unstamped
    stamps = patterns(spec.channels, side)
    answers = np.zeros((len(stamps), len(places), len(images)), dtype=np.int64)
    drops = np.zeros(answers.shape, dtype=np.float32)
    for p, stamp in enumerate(stamps):
        for q, (row, col) in enumerate(places):
            batch = images.copy()
            chw_view(batch, spec.layout)[:, :, row : row + side, col : col + side] = stamp
            probabilities = np.exp(log_probabilities_of(model, batch))
            answers[p, q] = probabilities.argmax(axis=1)
            drops[p, q] = own - probabilities[every, base_class]
    return PatchAnswers(base_class, answers, drops, side)


def patch_features(found: PatchAnswers, images: int | None = None) -> np.ndarray:
    """PATCH_FEATURE_NAMES, from the first `images` images (all by default; a benchmark measures fewer)."""
    chosen = slice(None) if images is None else slice(0, images)
    base_class, answers, drops = found.base_class[chosen], found.answers[:, :, chosen], found.drops[:, :, chosen]
    changed = (answers != base_class).mean(axis=2)  # (patterns, places)
    to_class = np.zeros(changed.shape)
    for k in np.unique(answers):
        others = base_class != k
        if others.any():
            to_class = np.maximum(to_class, (answers[:, :, others] == k).mean(axis=2))
    drop = drops.mean(axis=2)
    return np.asarray(
        [
            changed.max(),
            changed.mean(),
            np.quantile(changed, 0.9),
            to_class.max(),
            to_class.mean(),
            drop.max(),
            drop.mean(),
            changed.max(axis=0).mean(),
            changed.max(axis=1).mean(),
        ],
        dtype=np.float64,
    )


def strongest_patch(found: PatchAnswers) -> dict[str, float]:
    """For the report: the square's side and the largest share of images one patch probe changes."""
    changed = (found.answers != found.base_class).mean(axis=2)
    return {
        "side": found.side,
        "share_of_images_changed": round(float(changed.max()), 4),
        "images": len(found.base_class),
    }
