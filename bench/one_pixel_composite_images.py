"""What the composite probes lose when they run on fewer held-out clean images.

    python -m bench.one_pixel_composite_images --zoo DIR [--values 16] [--mode coarse-to-fine] \\
        [--images 32,40,48,64] [--samples 10]

Per zoo model, the composites of the mode's cached clean signatures (of the scales that get them in that mode) run
once on the full mode's 128 held-out images.
Each image count is then scored on `--samples` random subsets of those answers, one subset for all models (as in the
product, where the same clean data gives every model the same images), counted by the product's own `rates_of`. The
clean-data head (clean + synthetic signatures + composites) is fitted and scored on the honest splits for each
subset: (a) random 5-fold, 3 seeds; (b) leave-one-attack-out; (c) leave-one-architecture-out; (d) leave-one-family-
out. Prints markdown: per image count, the mean AUC over the subsets, its standard error and the worst subset, and
the composites' forward passes per model. The answers take minutes; the signatures come from the cache that
bench.one_pixel_detection fills.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.splits import SPLITS, split_aucs, tree_scorer
from scanner.calibration.one_pixel import BASE_KINDS, bases_for, cached_signature, default_cache_dir
from scanner.calibration.zoos import Zoo, artifact_for, in_layout, read_zoo
from scanner.detectors.one_pixel.composite import (
    HELD_OUT_IMAGES,
    CompositeAnswers,
    composite_answers,
    composite_features,
    held_out_images,
    probed_scales,
    rates_of,
)
from scanner.detectors.one_pixel.features import model_features
from scanner.detectors.one_pixel.signature import SignatureSettings
from scanner.runtime import OnnxClassifier

PerScale = list[CompositeAnswers]


def probe_zoo(zoo: Zoo, settings: SignatureSettings, cache_dir: Path) -> tuple[np.ndarray, list[PerScale]]:
    """Per model: its clean and synthetic signatures' features (from the cache), and per scale the composites'
    answers on the full mode's held-out images."""
    features, answers = [], []
    for done, model in enumerate(zoo.models):
        artifact = artifact_for(model.path)
        clean = zoo.clean_data(model.family)
        bases = {kind: bases_for(kind, artifact.spec, clean, settings) for kind in BASE_KINDS}  # needs clean data
        signatures = {
            kind: [cached_signature(artifact, bases[kind], kind, settings, cache_dir, scale=s) for s in settings.scales]
            for kind in BASE_KINDS
        }
        features.append(np.concatenate([model_features(signatures[kind]) for kind in BASE_KINDS]))
        assert clean is not None
        images = held_out_images(in_layout(clean, artifact.spec), bases["clean"], HELD_OUT_IMAGES["full"])
        runner = OnnxClassifier(artifact, threads=1)
        probed = probed_scales(signatures["clean"], settings.mode)
        answers.append([composite_answers(runner, signature, images) for signature in probed])
        print(f"\r  answers {done + 1}/{len(zoo.models)}", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    return np.nan_to_num(np.asarray(features)), answers


def _cell(aucs: np.ndarray) -> str:
    """Mean AUC over the subsets, its standard error and the worst subset."""
    if len(aucs) == 1:
        return f"{aucs[0]:.3f}"
    return f"{aucs.mean():.3f} +- {aucs.std(ddof=1) / np.sqrt(len(aucs)):.3f} (worst {aucs.min():.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--values", type=int, default=16)
    parser.add_argument("--mode", default="coarse-to-fine")
    parser.add_argument("--images", default="32,40,48,64", help="comma-separated image counts (128: all, once)")
    parser.add_argument("--samples", type=int, default=10, help="random image subsets per count")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    settings = SignatureSettings(values=args.values, mode=args.mode)
    cache_dir = args.cache or default_cache_dir()
    zoo = read_zoo(args.zoo)
    signatures, answers = probe_zoo(zoo, settings, cache_dir)
    pool = min(len(per_scale[0].base_class) for per_scale in answers)
    labels = np.asarray([m.backdoored for m in zoo.models], dtype=np.int64)

    print(f"## Composite probes on fewer held-out images: {len(zoo.models)} models, settings {settings}\n")
    print("| images | composite passes per model | " + " | ".join(SPLITS) + " |")
    print("|---|---|" + "---|" * len(SPLITS))
    for count in [int(c) for c in args.images.split(",")]:
        rows, passes = [], []
        for sample in range(args.samples if count < pool else 1):
            # One subset for every model, as the product does: the same clean data gives every model the same images.
            chosen = np.sort(np.random.default_rng(100 + sample).permutation(pool)[:count])
            composites, sample_passes = [], []
            for per_scale in answers:
                rates = [rates_of(a, chosen) for a in per_scale]
                composites.append(np.concatenate([composite_features(r) for r in rates]))
                sample_passes.append(sum(r.forward_passes for r in rates))
            features = np.hstack([signatures, np.asarray(composites)])
            rows.append(split_aucs(tree_scorer(features, labels), zoo.models))
            passes.append(np.mean(sample_passes))
        aucs = np.asarray(rows)
        cells = [_cell(aucs[:, split]) for split in range(len(SPLITS))]
        print(f"| {count} ({len(aucs)} subsets) | {np.mean(passes):.0f} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
