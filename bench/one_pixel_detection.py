"""Detection quality of the one-pixel signature classifier on a zoo, with honest splits.

    python -m bench.one_pixel_detection --zoo DIR [--zoo DIR ...] [--kinds clean,synthetic] [--values 3] [--mode full]

Signatures are cached per model under $MODEL_SCANNER_CACHE/one-pixel-signatures, so reruns only refit. Splits:
(a) random 5-fold over models (repeated with 3 seeds); (b) leave-one-attack-out: fit without one attack (and
without a fold of the clean models), score that attack and the held-out clean models; (c) leave-one-architecture-out;
(d) leave-one-family-out. AUC and TPR at 5% FPR for each, and per attack. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bench.splits import Scorer, leave_one_attack_out, leave_one_domain_out, random_split
from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.one_pixel import (
    BASE_KINDS,
    ZooFeatures,
    combined_features,
    default_cache_dir,
    head_features,
    zoo_features,
)
from scanner.calibration.zoos import read_zoo
from scanner.detectors.one_pixel.classifier import fit_logistic, fit_trees
from scanner.detectors.one_pixel.signature import SignatureSettings

HEADS = {"trees": fit_trees, "logistic": fit_logistic}
FIT = fit_trees  # set by --head


def _scorer(features: np.ndarray, labels: np.ndarray) -> Scorer:
    """The --head classifier fitted on the train models' features, scoring the test models."""

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = FIT(features[train], labels[train])
        return np.asarray([head.probability(row) for row in features[test]])

    return score


def _row(name: str, labels: np.ndarray, scores: np.ndarray) -> str:
    positives, negatives = int(labels.sum()), int((1 - labels).sum())
    return f"| {name} | {positives} / {negatives} | {roc_auc(labels, scores):.3f} | {tpr_at_fpr(labels, scores):.3f} |"


def _pooled(results: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    aucs = [roc_auc(y, s) for y, s in results.values()]
    tprs = [tpr_at_fpr(y, s) for y, s in results.values()]
    return float(np.mean(aucs)), float(np.mean(tprs))


def report(table: ZooFeatures, kind: str) -> tuple[str, dict[str, float]]:
    features = table.features[kind]
    labels = table.labels
    attacks = np.asarray([m.attack for m in table.models])
    architectures = np.asarray([m.architecture for m in table.models])
    families = np.asarray([m.family for m in table.models])
    header = "| split | backdoored / clean | AUC | TPR @ 5% FPR |\n|---|---|---|---|"
    lines = [f"### {kind} bases" if kind in BASE_KINDS else f"### {kind} (the clean-data head)", ""]
    summary: dict[str, float] = {}

    scorer = _scorer(features, labels)
    runs = [random_split(scorer, len(labels), seed) for seed in range(3)]
    aucs = [roc_auc(labels, s) for s in runs]
    tprs = [tpr_at_fpr(labels, s) for s in runs]
    summary["random_auc"], summary["random_tpr"] = float(np.mean(aucs)), float(np.mean(tprs))
    lines += [
        "(a) random 5-fold split of models, mean of 3 seeds "
        f"(AUC {np.mean(aucs):.3f} +- {np.std(aucs):.3f}); per attack: that attack's models vs all clean models, "
        "out-of-fold scores of seed 0",
        "",
        header,
        _row("all", labels, runs[0]),
    ]
    for attack in sorted(set(attacks[labels == 1])):
        keep = (attacks == attack) | (labels == 0)
        lines.append(_row(attack, labels[keep], runs[0][keep]))

    lines += ["", "(b) leave-one-attack-out (fit without the attack and without the scored clean fold)", "", header]
    loao = leave_one_attack_out(scorer, labels, attacks)
    for attack, (y, s) in loao.items():
        lines.append(_row(attack, y, s))
    summary["loao_auc"], summary["loao_tpr"] = _pooled(loao)
    lines.append(f"| mean over attacks | | {summary['loao_auc']:.3f} | {summary['loao_tpr']:.3f} |")

    lines += ["", "(c) leave-one-architecture-out (fit on the other architectures)", "", header]
    loar = leave_one_domain_out(scorer, labels, architectures)
    for arch, (y, s) in loar.items():
        lines.append(_row(arch, y, s))
    summary["loarch_auc"], summary["loarch_tpr"] = _pooled(loar)
    lines.append(f"| mean over architectures | | {summary['loarch_auc']:.3f} | {summary['loarch_tpr']:.3f} |")

    lofam = leave_one_domain_out(scorer, labels, families)
    if lofam:
        lines += ["", "(d) leave-one-family-out (fit on the other data family)", "", header]
        for family, (y, s) in lofam.items():
            lines.append(_row(family, y, s))
    return "\n".join(lines), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, action="append", required=True, help="repeatable: the zoos are pooled")
    parser.add_argument("--kinds", default="clean,synthetic")
    parser.add_argument("--values", type=int, default=3)
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--mode", default="full")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the summary numbers here")
    parser.add_argument("--head", choices=sorted(HEADS), default="trees", help="the classifier fitted on the features")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    global FIT
    FIT = HEADS[args.head]
    settings = SignatureSettings(values=args.values, per_channel=args.per_channel, mode=args.mode)
    zoos = [read_zoo(directory) for directory in args.zoo]
    kinds = tuple(args.kinds.split(","))
    started = time.perf_counter()
    table = combined_features(
        [
            zoo_features(zoo, settings, kinds=kinds, cache_dir=args.cache or default_cache_dir(), threads=args.threads)
            for zoo in zoos
        ]
    )
    print(f"## one-pixel detection: {len(table.models)} models, settings {settings}\n")
    print("zoos: " + ", ".join(f"{zoo.directory} ({len(zoo.models)})" for zoo in zoos) + "\n")
    families = sorted({m.family for m in table.models})
    for family in families:
        of_family = [m for m in table.models if m.family == family]
        counts = {a: sum(m.attack == a for m in of_family) for a in sorted({m.attack for m in of_family})}
        arch_counts = {
            a: sum(m.architecture == a for m in of_family) for a in sorted({m.architecture for m in of_family})
        }
        print(f"{family}: {counts}; architectures {arch_counts}\n")
    print(
        f"{int(table.labels.sum())} backdoored, {int((1 - table.labels).sum())} clean; "
        f"mean forward passes per model (all base kinds) {table.forward_passes.mean():.0f}; "
        f"signatures + features {time.perf_counter() - started:.0f} s (cached signatures load in ms)\n"
    )
    summaries = {}
    features = head_features(table.features)  # adds the clean-data head when both kinds and the composites ran
    table = ZooFeatures(table.models, features, table.forward_passes, table.seconds)
    for kind in features:
        text, summaries[kind] = report(table, kind)
        print(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=1))


if __name__ == "__main__":
    main()
