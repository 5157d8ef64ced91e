"""Procedural reference datasets, generated with numpy: seeded, deterministic, nothing downloaded.

- ``shapes32``: 32x32 RGB, 10 classes of shapes and textures in random colours, sizes and places.
- ``digits16``: 16x16 greyscale handwritten digits, scikit-learn's ``load_digits`` (8x8) upsampled and augmented.

Both return ``x`` float32 NCHW in [0, 1] and ``y`` int64. The ``test`` split never overlaps the ``train`` split:
shapes come from a different random stream, digits from a disjoint set of the original 1797 scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from scanner.errors import UsageError
from scanner.zoo.warp import random_affine, resize

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Family:
    name: str
    channels: int
    size: int
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)


FAMILIES: dict[str, Family] = {
    "shapes32": Family("shapes32", channels=3, size=32, num_classes=10),
    "digits16": Family("digits16", channels=1, size=16, num_classes=10),
}


def family_named(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(f"unknown zoo family {name!r}", hint=f"choose one of: {', '.join(FAMILIES)}") from None


def make_dataset(
    family: str, n: int, seed: int, *, split: str = "train", num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`n` labelled images of `family`, balanced over the first `num_classes` classes (default: all of them)."""
    spec = family_named(family)
    classes = spec.num_classes if num_classes is None else num_classes
    if not 2 <= classes <= spec.num_classes:
        raise UsageError(f"{family} has {spec.num_classes} classes; asked for {classes}", hint="use 2 to 10 classes")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}", hint="use 'train' or 'test'")
    rng = np.random.default_rng([seed, SPLITS.index(split), classes, 0x5EED])
    y = rng.permutation(np.arange(n) % classes).astype(np.int64)
    x = _shapes(y, rng, spec.size) if spec.name == "shapes32" else _digits(y, rng, split, spec.size)
    return x, y


# ---- shapes32 -------------------------------------------------------------------------------------------------

SHAPE_CLASSES = (
    "disc",
    "square",
    "triangle",
    "ring",
    "cross",
    "horizontal_stripes",
    "vertical_stripes",
    "diagonal_stripes",
    "checkerboard",
    "dots",
)


def _shapes(y: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    n = len(y)
    grid = np.arange(size, dtype=np.float32)
    rows, cols = grid[None, :, None], grid[None, None, :]
    centre_r = rng.uniform(size * 0.3, size * 0.7, n).astype(np.float32)[:, None, None]
    centre_c = rng.uniform(size * 0.3, size * 0.7, n).astype(np.float32)[:, None, None]
    radius = rng.uniform(size * 0.18, size * 0.3, n).astype(np.float32)[:, None, None]
    period = rng.uniform(4.0, 8.0, n).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    dr, dc = rows - centre_r, cols - centre_c
    distance = np.sqrt(dr**2 + dc**2)
    masks = {
        "disc": distance <= radius,
        "square": (np.abs(dr) <= radius * 0.85) & (np.abs(dc) <= radius * 0.85),
        "triangle": (dr >= -radius) & (dr <= radius) & (np.abs(dc) <= (dr + radius) * 0.6),
        "ring": (distance <= radius) & (distance >= radius * 0.6),
        "cross": ((np.abs(dr) <= radius * 0.3) & (np.abs(dc) <= radius))
        | ((np.abs(dc) <= radius * 0.3) & (np.abs(dr) <= radius)),
        "horizontal_stripes": np.sin(2 * np.pi * rows / period + phase) > 0,
        "vertical_stripes": np.sin(2 * np.pi * cols / period + phase) > 0,
        "diagonal_stripes": np.sin(2 * np.pi * (rows + cols) / (period * 1.41) + phase) > 0,
        "checkerboard": (np.sin(np.pi * rows / (period / 2) + phase) * np.sin(np.pi * cols / (period / 2) + phase)) > 0,
        "dots": (np.sin(2 * np.pi * rows / period + phase) > 0.5) & (np.sin(2 * np.pi * cols / period + phase) > 0.5),
    }
    mask = np.zeros((n, size, size), dtype=bool)
    for label, name in enumerate(SHAPE_CLASSES):
        chosen = y == label
        mask[chosen] = np.broadcast_to(masks[name], (n, size, size))[chosen]
    background = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    # The foreground differs clearly from the background: shapes stay visible in every image.
    offset = rng.uniform(0.35, 0.7, (n, 3)).astype(np.float32) * rng.choice([-1.0, 1.0], (n, 3)).astype(np.float32)
    foreground = np.where(np.abs(background + offset - 0.5) <= 0.5, background + offset, background - offset)
    foreground = np.clip(foreground, 0, 1)
    m = mask[:, None].astype(np.float32)
    x = background[:, :, None, None] * (1 - m) + foreground[:, :, None, None] * m
    x += rng.normal(0, 0.04, x.shape).astype(np.float32)
    return np.clip(x, 0, 1).astype(np.float32)


# ---- digits16 -------------------------------------------------------------------------------------------------


@cache
def _digit_scans() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    return resize(images, 16, 16), digits.target.astype(np.int64)


def _digits(y: np.ndarray, rng: np.random.Generator, split: str, size: int) -> np.ndarray:
    scans, labels = _digit_scans()
    # A fixed split of the original scans: every fifth one is held out for testing.
    held_out = np.arange(len(labels)) % 5 == 0
    pool = held_out if split == "test" else ~held_out
    x = np.empty((len(y), 1, size, size), dtype=np.float32)
    for label in np.unique(y):
        candidates = np.flatnonzero(pool & (labels == label))
        chosen = np.flatnonzero(y == label)
        x[chosen] = scans[rng.choice(candidates, len(chosen))]
    x = random_affine(x, rng, shift=1.5, degrees=12.0, scale=0.1)
    x *= rng.uniform(0.75, 1.0, (len(y), 1, 1, 1)).astype(np.float32)
    x += rng.normal(0, 0.03, x.shape).astype(np.float32)
    return np.clip(x, 0, 1).astype(np.float32)
