"""What coarse-to-fine mode costs in detection against full mode, over tree seeds and draws of the clean images.

    python -m bench.one_pixel_coarse_to_fine --zoo DIR [--values 16] [--seeds 5] [--draws 3]

The clean-data head (clean + synthetic signatures, composite, blend and patch probes) in full mode and in
coarse-to-fine mode, each scored on bench.splits' honest splits as the mean AUC over --seeds tree seeds with its
standard error. Coarse-to-fine's probes use fewer held-out clean images, so which images are drawn moves its AUC by
about 0.01: it is scored on --draws draws (zoo_features' image_seed 0, 1, ...; 0 is the detector's default), full
mode on the first. Prints markdown with the mean forward passes per model and the ratio. Features come from the cache
that bench.one_pixel_detection fills; new draws' probes take a few minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.splits import SPLITS, tree_seed_cells
from scanner.calibration.one_pixel import default_cache_dir, head_features, zoo_features
from scanner.calibration.zoos import read_zoo
from scanner.detectors.one_pixel.classifier import COMBINED
from scanner.detectors.one_pixel.signature import SignatureSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--values", type=int, default=16, help="K candidate values per pixel")
    parser.add_argument("--seeds", type=int, default=5, help="tree seeds per row")
    parser.add_argument("--draws", type=int, default=3, help="draws of coarse-to-fine's held-out clean images")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()

    zoo, cache = read_zoo(args.zoo), args.cache or default_cache_dir()
    print(f"## Coarse-to-fine against full mode: {len(zoo.models)} models, K={args.values}, {args.seeds} tree seeds\n")
    print("| mode | image draw | passes per model | " + " | ".join(SPLITS) + " |")
    print("|---|---|---|" + "---|" * len(SPLITS))
    full_passes = 0.0
    for mode, draws in (("full", 1), ("coarse-to-fine", args.draws)):
        settings = SignatureSettings(values=args.values, mode=mode)
        for draw in range(draws):
            found = zoo_features(zoo, settings, cache_dir=cache, image_seed=draw)
            features = np.nan_to_num(head_features(found.features)[COMBINED])
            passes = float(found.forward_passes.mean())
            full_passes = full_passes or passes
            cells = tree_seed_cells(features, zoo.models, args.seeds)
            print(f"| {mode} | {draw} | {passes:.0f} ({full_passes / passes:.2f}x fewer) | {cells} |", flush=True)


if __name__ == "__main__":
    main()
