"""What the blend probes add to the clean-data head: the same features with and without them, over tree seeds.

    python -m bench.one_pixel_blend_probes --zoo DIR [--values 3] [--mode full] [--seeds 5]

The tree ensemble's own randomness moves a split's AUC by about 0.01 (leave-one-family-out by 0.04), as much as the
differences between feature sets, so each feature set is fitted with `--seeds` tree seeds on the same honest splits:
(a) random 5-fold, 3 fold seeds; (b) leave-one-attack-out; (c) leave-one-architecture-out; (d) leave-one-family-out.
Prints markdown: the mean AUC over the tree seeds and its standard error. Features come from the cache that
bench.one_pixel_detection fills.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.splits import SPLITS, tree_seed_cells
from scanner.calibration.one_pixel import default_cache_dir, zoo_features
from scanner.calibration.zoos import read_zoo
from scanner.detectors.one_pixel.composite import composite_feature_names
from scanner.detectors.one_pixel.signature import SignatureSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--values", type=int, default=3)
    parser.add_argument("--mode", default="full")
    parser.add_argument("--seeds", type=int, default=5, help="tree seeds per feature set")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()

    zoo = read_zoo(args.zoo)
    settings = SignatureSettings(values=args.values, mode=args.mode)
    table = zoo_features(zoo, settings, cache_dir=args.cache or default_cache_dir())
    signatures = np.hstack([np.nan_to_num(table.features[kind]) for kind in ("clean", "synthetic")])
    composites = np.nan_to_num(table.features["composite"])
    without = np.asarray([".blend." not in name for name in composite_feature_names(settings.scales)])
    print(f"## Blend probes: {len(zoo.models)} models, {settings}, {args.seeds} tree seeds\n")
    print("| clean-data head | " + " | ".join(SPLITS) + " |")
    print("|---|" + "---|" * len(SPLITS))
    for label, chosen in (("without the blend probes", without), ("with them (shipped)", np.ones_like(without))):
        features = np.hstack([signatures, composites[:, chosen]])
        print(f"| {label} | {tree_seed_cells(features, zoo.models, args.seeds)} |")


if __name__ == "__main__":
    main()
