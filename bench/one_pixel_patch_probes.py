"""Patch probes, measured and not shipped: small saturated squares stamped on held-out clean images.

    python -m bench.one_pixel_patch_probes --zoo DIR [--seeds 5] [--images 8,16,32]

Single pixels do not set off a multi-pixel trigger (bench/one_pixel_trigger_ranks.py), so this probe tries squares:
of side round(height / 5) (at least 3), at a 4 x 4 grid of places, in each of the 2^channels saturated solid
colours and 8 random black-and-white patterns (a fixed seed), on up to 32 held-out clean images (the first of the
ones the composites use). Per probe: the share of images whose answer changes, the largest share of images sent to
one class (images already of it left out), and the mean drop of the probability of each image's own class. The
features are their maxima, means and upper deciles over probes, and the means over places of the best pattern and
over patterns of the best place.

Prints markdown: the shipped clean-data head's features alone and with the patch features computed on the first n
images, for each n in --images, as the mean AUC over --seeds tree seeds with its standard error (bench.splits), and
the passes the probes add per model. Signature and composite features come from the cache that
bench.one_pixel_detection fills; the probes' answers are cached beside them.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from bench.splits import SPLITS, tree_seed_cells
from scanner.detectors.cache_files import store_atomically
from scanner.detectors.interface import CleanData
from scanner.detectors.one_pixel_classifier import COMBINED
from scanner.detectors.one_pixel_composite import HELD_OUT_IMAGES, held_out_images
from scanner.detectors.one_pixel_signature import ImageModel, SignatureSettings, chw_view, log_probabilities
from scanner.detectors.one_pixel_training import (
    ZooModel,
    artifact_for,
    bases_for,
    default_cache_dir,
    head_features,
    in_layout,
    read_zoo,
    zoo_features,
)
from scanner.runtime import OnnxClassifier

GRID = 4  # places per side
RANDOM_PATTERNS = 8
MAX_IMAGES = 32
FEATURES = ("changed.max", "changed.mean", "changed.q90", "to_class.max", "to_class.mean", "drop.max", "drop.mean",
            "changed.best_pattern.mean", "changed.best_place.mean")  # fmt: skip


def patterns(channels: int, side: int) -> np.ndarray:
    """(2^channels solid colours + RANDOM_PATTERNS random ones, channels, side, side), values 0 or 1."""
    solid = [[(colour >> c) & 1 for c in range(channels)] for colour in range(2**channels)]
    solids = np.broadcast_to(np.asarray(solid, np.float32)[:, :, None, None], (len(solid), channels, side, side))
    randoms = np.random.default_rng(12).integers(0, 2, (RANDOM_PATTERNS, channels, side, side)).astype(np.float32)
    return np.concatenate([solids, randoms])


def patch_answers(model: ImageModel, images: np.ndarray) -> dict[str, np.ndarray]:
    """Per (pattern, place, image): the answer with the patch, and the drop of the image's own class's probability."""
    spec = model.spec
    side = max(3, round(spec.height / 5))
    rows = np.linspace(0, spec.height - side, GRID).round().astype(int)
    cols = np.linspace(0, spec.width - side, GRID).round().astype(int)
    base = np.exp(log_probabilities(model.logits(images)))
    base_class = base.argmax(axis=1)
    own = base[np.arange(len(images)), base_class]
    stamps = patterns(spec.channels, side)
    answers = np.zeros((len(stamps), GRID * GRID, len(images)), dtype=np.int64)
    drops = np.zeros(answers.shape, dtype=np.float32)
    for p, stamp in enumerate(stamps):
        for place, (row, col) in enumerate((r, c) for r in rows for c in cols):
            batch = images.copy()
            chw_view(batch, spec.layout)[:, :, row : row + side, col : col + side] = stamp
            probabilities = np.exp(log_probabilities(model.logits(batch)))
            answers[p, place] = probabilities.argmax(axis=1)
            drops[p, place] = own - probabilities[np.arange(len(images)), base_class]
    return {"base_class": base_class, "answers": answers, "drops": drops}


def cached_patch_answers(
    model: ZooModel, clean: CleanData, settings: SignatureSettings, cache: Path
) -> dict[str, np.ndarray]:
    """patch_answers on the first MAX_IMAGES of the images the composites use, from the cache when there."""
    artifact = artifact_for(model.path)
    bases = bases_for("clean", artifact.spec, clean, settings)
    images = held_out_images(in_layout(clean, artifact.spec), bases, HELD_OUT_IMAGES[settings.mode])[:MAX_IMAGES]
    key = hashlib.sha256(artifact.sha256.encode() + images.tobytes() + b"patch-probes-v1").hexdigest()[:24]
    path = cache / f"{key}-patches.npz"
    if not path.exists():
        found = patch_answers(OnnxClassifier(artifact, threads=1), images)
        store_atomically(path, lambda partial: np.savez_compressed(partial, **found))
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def patch_features(found: dict[str, np.ndarray], images: int) -> np.ndarray:
    """FEATURES from the first `images` images."""
    base_class = found["base_class"][:images]
    answers, drops = found["answers"][:, :, :images], found["drops"][:, :, :images]
    changed = (answers != base_class).mean(axis=2)  # (patterns, places)
    to_class = np.zeros(changed.shape)
    for k in np.unique(answers):
        others = base_class != k
        if others.any():
            to_class = np.maximum(to_class, (answers[:, :, others] == k).mean(axis=2))
    drop = drops.mean(axis=2)
    return np.asarray([
        changed.max(), changed.mean(), np.quantile(changed, 0.9), to_class.max(), to_class.mean(), drop.max(),
        drop.mean(), changed.max(axis=0).mean(), changed.max(axis=1).mean(),
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5, help="tree seeds per feature set")
    parser.add_argument("--images", default="8,16,32", help="images the patch features are computed on")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()

    zoo = read_zoo(args.zoo)
    settings = SignatureSettings()
    cache = args.cache or default_cache_dir()
    shipped = np.nan_to_num(head_features(zoo_features(zoo, settings, cache_dir=cache).features)[COMBINED])
    clean = {family: zoo.clean_data(family) for family in {m.family for m in zoo.models}}
    found = []
    for model in zoo.models:
        data = clean[model.family]
        if data is None:
            raise SystemExit(f"{model.family} has no clean data in {args.zoo}: the patch probes need it")
        found.append(cached_patch_answers(model, data, settings, cache))
    passes = np.mean([f["answers"].shape[0] * f["answers"].shape[1] for f in found])
    print(f"## Patch probes: {len(zoo.models)} models, {settings}, {args.seeds} tree seeds\n")
    print(f"Probes per image: {passes:.0f} on average (256 for 3 channels, 160 for 1).\n")
    print("| clean-data head | passes added per model | " + " | ".join(SPLITS) + " |")
    print("|---|---|" + "---|" * len(SPLITS))
    print(f"| shipped features | 0 | {tree_seed_cells(shipped, zoo.models, args.seeds)} |", flush=True)
    for images in (int(n) for n in args.images.split(",")):
        patches = np.asarray([patch_features(f, images) for f in found])
        cells = tree_seed_cells(np.hstack([shipped, patches]), zoo.models, args.seeds)
        print(f"| + patch probes on {images} images | {passes * images:.0f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
