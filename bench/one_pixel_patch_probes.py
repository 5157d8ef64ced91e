"""What the patch probes add to the clean-data head, and on how many images, over tree seeds.

    python -m bench.one_pixel_patch_probes --zoo DIR [--seeds 5] [--images 8,16]

The patch probes (scanner.detectors.one_pixel.patches) stamp small saturated squares on held-out clean images.
Prints markdown: the clean-data head's features without them, with them computed on the first n of their images for
each n in --images, and as shipped (PATCH_IMAGES["full"] images), as the mean AUC over --seeds tree seeds with its
standard error on bench.splits' honest splits, and the passes the probes add per model. Features come from the
cache that bench.one_pixel_detection fills (it fills the patch probes' answers too).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.splits import SPLITS, tree_seed_cells
from scanner.calibration.one_pixel import (
    bases_for,
    cached_patch_answers,
    default_cache_dir,
    head_features,
    zoo_features,
)
from scanner.calibration.zoos import Zoo, artifact_for, in_layout, read_zoo
from scanner.detectors.one_pixel.classifier import COMBINED
from scanner.detectors.one_pixel.composite import probe_images
from scanner.detectors.one_pixel.patches import PATCH_FEATURE_NAMES, PATCH_IMAGES, PatchAnswers, patch_features
from scanner.detectors.one_pixel.signature import SignatureSettings


def zoo_patch_answers(zoo: Zoo, settings: SignatureSettings, cache: Path) -> list[PatchAnswers]:
    """Every model's patch probe answers, on the images zoo_features stamps them on."""
    found = []
    for model in zoo.models:
        artifact, clean = artifact_for(model.path), zoo.clean_data(model.family)
        assert clean is not None  # zoo_features gave the clean-data head's features
        bases = bases_for("clean", artifact.spec, clean, settings)
        _, patch_images = probe_images(in_layout(clean, artifact.spec), bases, settings.mode)
        found.append(cached_patch_answers(artifact, patch_images, cache))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5, help="tree seeds per feature set")
    parser.add_argument("--images", default="8,16", help="fewer images than shipped to compute the features on")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()

    zoo = read_zoo(args.zoo)
    settings = SignatureSettings()
    cache = args.cache or default_cache_dir()
    shipped = np.nan_to_num(head_features(zoo_features(zoo, settings, cache_dir=cache).features)[COMBINED])
    without = shipped[:, : -len(PATCH_FEATURE_NAMES)]
    found = zoo_patch_answers(zoo, settings, cache)
    probes = np.mean([f.answers.shape[0] * f.answers.shape[1] for f in found])  # per image
    print(f"## Patch probes: {len(zoo.models)} models, {settings}, {args.seeds} tree seeds\n")
    print(f"{probes:.0f} probes per image on average (256 for 3 channels, 160 for 1).\n")
    print("| clean-data head | passes added per model | " + " | ".join(SPLITS) + " |")
    print("|---|---|" + "---|" * len(SPLITS))
    print(f"| without the patch probes | 0 | {tree_seed_cells(without, zoo.models, args.seeds)} |", flush=True)
    for images in [int(n) for n in args.images.split(",")] + [PATCH_IMAGES[settings.mode]]:
        patches = np.asarray([patch_features(f, images) for f in found])
        cells = tree_seed_cells(np.hstack([without, patches]), zoo.models, args.seeds)
        label = "shipped" if images == PATCH_IMAGES[settings.mode] else "with them"
        print(f"| {label}, on {images} images | {(probes + 1) * images:.0f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
