"""Does the one-pixel signature find a patch trigger? Where the trigger's pixels rank in the signature, per model.

    python -m bench.one_pixel_trigger_ranks --zoo DIR [--values 3]

For every patch and all-to-all model of a zoo (the manifest records the patch's place and size), the clean-base
signature at the finest scale gives each cell a strength: the mean over bases of the largest log-probability rise
toward a class other than the base's own (an all-to-all backdoor sends each class elsewhere, so no one class is
asked for). Prints markdown: per attack and architecture, the best rank any trigger cell reaches (0 = the strongest
cell of the image), as a median over the models and as the share of models with a trigger cell in the top 2% of
cells. Signatures come from the cache that bench.one_pixel_detection fills.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from scanner.calibration.one_pixel import bases_for, cached_signature, default_cache_dir
from scanner.calibration.zoos import artifact_for, read_zoo
from scanner.detectors.one_pixel.features import any_class_map
from scanner.detectors.one_pixel.signature import Signature, SignatureSettings

PATCH_ATTACKS = ("patch", "all_to_all")


def any_class_strength(signature: Signature) -> np.ndarray:
    """(rows, cols): per cell, the mean over bases of the largest rise toward a class other than the base's."""
    bases, classes, rows, cols = signature.log_increase.shape
    rises = signature.log_increase.reshape(bases, classes, -1).astype(np.float64)
    return np.asarray(any_class_map(rises, signature.base_probabilities).mean(axis=0).reshape(rows, cols))


def best_trigger_rank(strength: np.ndarray, trigger: dict[str, int]) -> int:
    """The rank (0 = strongest) of the strongest cell inside the trigger's square."""
    order = np.argsort(-strength.ravel(), kind="stable")
    rank = np.empty(strength.size, dtype=np.int64)
    rank[order] = np.arange(strength.size)
    row, col, size = trigger["row"], trigger["col"], trigger["size"]
    return int(rank.reshape(strength.shape)[row : row + size, col : col + size].min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--values", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()

    zoo = read_zoo(args.zoo)
    settings = SignatureSettings(values=args.values)
    ranks: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    cells: dict[str, int] = {}
    for model in zoo.models:
        if model.attack not in PATCH_ATTACKS or not model.trigger:
            continue
        artifact = artifact_for(model.path)
        bases = bases_for("clean", artifact.spec, zoo.clean_data(model.family), settings)
        signature = cached_signature(artifact, bases, "clean", settings, args.cache or default_cache_dir(), scale=1)
        strength = any_class_strength(signature)
        cells[model.family] = strength.size
        ranks[(model.family, model.attack, model.architecture)].append(best_trigger_rank(strength, model.trigger))
    print(f"## Best trigger-cell rank in the clean-base signature (scale 1): {settings}\n")
    print("| family | attack | architecture | models | median best rank | of cells | trigger cell in the top 2% |")
    print("|---|---|---|---|---|---|---|")
    for (family, attack, architecture), found in sorted(ranks.items()):
        top = np.mean(np.asarray(found) < max(1, round(0.02 * cells[family])))
        print(
            f"| {family} | {attack} | {architecture} | {len(found)} | {int(np.median(found))} | {cells[family]} |"
            f" {top:.0%} |"
        )


if __name__ == "__main__":
    main()
