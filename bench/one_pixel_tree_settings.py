"""How the tree ensemble's size and split features move the one-pixel heads' AUC, over tree seeds.

    python -m bench.one_pixel_tree_settings --zoo DIR [--values 3] [--mode full] [--seeds 5]

Each setting is fitted with `--seeds` tree seeds on the same honest splits (bench.splits): (a) random 5-fold, 3
fold seeds; (b) leave-one-attack-out; (c) leave-one-architecture-out; (d) leave-one-family-out. Prints markdown: per
head (the clean-data head and the synthetic one) the mean AUC over the seeds with its standard error, and the size
of the head fitted on the whole zoo as the shipped file stores it. Features come from the cache that
bench.one_pixel_detection fills.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.splits import SPLITS, tree_seed_cells
from scanner.calibration.one_pixel import default_cache_dir, head_features, zoo_features
from scanner.calibration.zoos import read_zoo
from scanner.detectors.one_pixel.classifier import COMBINED, SPLIT_FEATURES, fit_trees
from scanner.detectors.one_pixel.signature import SignatureSettings

# (label, trees, split features: a count, or a share of the head's features)
TREE_SETTINGS: tuple[tuple[str, int, int | float], ...] = (
    ("64 trees, 30% of the features (tenth session)", 64, 0.3),
    (f"128 trees, {SPLIT_FEATURES} features (shipped)", 128, SPLIT_FEATURES),
    (f"256 trees, {SPLIT_FEATURES} features", 256, SPLIT_FEATURES),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--values", type=int, default=3)
    parser.add_argument("--mode", default="full")
    parser.add_argument("--seeds", type=int, default=5, help="tree seeds per setting")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()

    zoo = read_zoo(args.zoo)
    settings = SignatureSettings(values=args.values, mode=args.mode)
    table = zoo_features(zoo, settings, cache_dir=args.cache or default_cache_dir())
    heads = head_features(table.features)
    print(f"## Tree settings: {len(zoo.models)} models, {settings}, {args.seeds} tree seeds\n")
    print("| head | trees | " + " | ".join(SPLITS) + " | size fitted on the zoo |")
    print("|---|---|" + "---|" * (len(SPLITS) + 1))
    for kind in (COMBINED, "synthetic"):
        features = np.nan_to_num(heads[kind])
        for label, trees, split_features in TREE_SETTINGS:
            aucs = tree_seed_cells(features, zoo.models, args.seeds, trees=trees, split_features=split_features)
            head = fit_trees(features, table.labels, trees=trees, split_features=split_features)
            size = len(json.dumps(head.to_json(), separators=(",", ":"))) / 1000
            print(f"| {kind} | {label} | {aucs} | {size:.0f} KB |", flush=True)


if __name__ == "__main__":
    main()
