"""Detection quality of BAN alone, one-pixel alone, and the fused score, on a zoo, with honest splits.

    python -m bench.ban_detection --zoo /work/bench-zoo [--no-one-pixel] [--family digits16]
                                  [--ban-setting noise_steps=10 ...]

BAN statistics are cached per model under $MODEL_SCANNER_CACHE/ban-statistics and one-pixel signatures under
$MODEL_SCANNER_CACHE/one-pixel-signatures, so reruns only refit. Splits, as bench/one_pixel_detection.py: (a) random
5-fold over models; (b) leave-one-attack-out (fit without the attack and without the scored fold of clean models);
(c) leave-one-architecture-out. The fused score is fitted as shipped: a logistic on the logits of the two detectors'
probabilities, fitted on inner out-of-fold scores of the training models only. Prints markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bench.splits import Scorer, leave_one_attack_out, leave_one_domain_out, random_split
from scanner.calibration.ban import FEATURES, default_cache_dir, zoo_statistics
from scanner.calibration.metrics import random_folds, roc_auc, tpr_at_fpr
from scanner.calibration.one_pixel import default_cache_dir as signature_cache_dir
from scanner.calibration.one_pixel import head_features, zoo_features
from scanner.calibration.zoos import read_zoo
from scanner.detectors.ban.detector import settings_from
from scanner.detectors.logistic import fit_logistic, logit
from scanner.detectors.one_pixel.classifier import COMBINED, fit_trees
from scanner.detectors.one_pixel.signature import SignatureSettings


def logistic_scorer(matrix: np.ndarray, labels: np.ndarray) -> Scorer:
    names = [f"f{i}" for i in range(matrix.shape[1])]

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        rows = [dict(zip(names, row, strict=True)) for row in matrix]
        fitted = fit_logistic("bench", names, [rows[i] for i in train], labels[train].tolist(), regularization=0.3)
        return np.asarray([fitted.probability(rows[i]) for i in test])

    return score


def trees_scorer(matrix: np.ndarray, labels: np.ndarray) -> Scorer:
    """The one-pixel detector's own head (scanner.detectors.one_pixel.classifier.fit_trees)."""

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = fit_trees(matrix[train], labels[train])
        return np.asarray([head.probability(matrix[i]) for i in test])

    return score


# The in-zoo fusion this bench measures: a logistic on both detectors' logits (the shipped fusion is the larger
# score: scanner.detectors.fusion).
FUSION_FEATURES = ("one_pixel_logit", "ban_logit")


def fused_scorer(one_pixel: Scorer, ban: Scorer, labels: np.ndarray) -> Scorer:
    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        inner_op, inner_ban = np.zeros(len(train)), np.zeros(len(train))
        for fold in random_folds(len(train), 5, seed=11):
            rest = np.setdiff1d(np.arange(len(train)), fold)
            inner_op[fold] = one_pixel(train[rest], train[fold])
            inner_ban[fold] = ban(train[rest], train[fold])
        rows = [
            {FUSION_FEATURES[0]: logit(o), FUSION_FEATURES[1]: logit(b)}
            for o, b in zip(inner_op, inner_ban, strict=True)
        ]
        fusion = fit_logistic("fusion", FUSION_FEATURES, rows, labels[train].tolist())
        outer_op, outer_ban = one_pixel(train, test), ban(train, test)
        return np.asarray(
            [
                fusion.probability({FUSION_FEATURES[0]: logit(o), FUSION_FEATURES[1]: logit(b)})
                for o, b in zip(outer_op, outer_ban, strict=True)
            ]
        )

    return score


def _row(name: str, labels: np.ndarray, scores: np.ndarray) -> str:
    return (f"| {name} | {int(labels.sum())} / {int((1 - labels).sum())} | {roc_auc(labels, scores):.3f} | "
            f"{tpr_at_fpr(labels, scores):.3f} |")  # fmt: skip


def report(name: str, scorer: Scorer, labels: np.ndarray, attacks: np.ndarray, archs: np.ndarray) -> str:
    header = "| split | backdoored / clean | AUC | TPR @ 5% FPR |\n|---|---|---|---|"
    scores = random_split(scorer, len(labels))
    lines = [f"### {name}", "", "(a) random 5-fold; per attack: its models vs all clean models", "", header,
             _row("all", labels, scores)]  # fmt: skip
    for attack in sorted(set(attacks[labels == 1])):
        keep = (attacks == attack) | (labels == 0)
        lines.append(_row(attack, labels[keep], scores[keep]))
    lines += ["", "(b) leave-one-attack-out", "", header]
    loao = leave_one_attack_out(scorer, labels, attacks)
    lines += [_row(a, y, s) for a, (y, s) in loao.items()]
    lines.append(f"| mean over attacks | | {np.mean([roc_auc(y, s) for y, s in loao.values()]):.3f} | "
                 f"{np.mean([tpr_at_fpr(y, s) for y, s in loao.values()]):.3f} |")  # fmt: skip
    lines += ["", "(c) leave-one-architecture-out", "", header]
    loarch = leave_one_domain_out(scorer, labels, archs)
    lines += [_row(a, y, s) for a, (y, s) in loarch.items()]
    if loarch:
        lines.append(f"| mean over architectures | | {np.mean([roc_auc(y, s) for y, s in loarch.values()]):.3f} | "
                     f"{np.mean([tpr_at_fpr(y, s) for y, s in loarch.values()]):.3f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--ban-setting", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--no-one-pixel", action="store_true", help="BAN alone (no fused numbers)")
    parser.add_argument("--only-cached", action="store_true", help="skip models whose BAN statistics are not cached")
    parser.add_argument("--family", default=None, help="only this family's models (e.g. digits16: the cheap half)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    settings = settings_from(dict(item.split("=", 1) for item in args.ban_setting))
    zoo = read_zoo(args.zoo)
    if args.family:
        zoo = dataclasses.replace(zoo, models=tuple(m for m in zoo.models if m.family == args.family))
    started = time.perf_counter()
    records = zoo_statistics(
        zoo, settings, cache_dir=default_cache_dir(),
        progress=lambda done, total: print(f"BAN {done}/{total}", file=sys.stderr),
    )  # fmt: skip
    labels = np.asarray([m.backdoored for m in zoo.models], dtype=np.int64)
    attacks = np.asarray([m.attack for m in zoo.models])
    archs = np.asarray([m.architecture for m in zoo.models])
    ban_matrix = np.asarray([[r["statistics"][f] for f in FEATURES] for r in records])
    seconds = np.asarray([r["seconds"] for r in records])
    forwards = np.asarray([r["cost"]["forward_equivalents"] for r in records])
    print(f"## BAN on {len(labels)} models ({int(labels.sum())} backdoored), settings {settings}\n")
    print(f"BAN cost per model: {forwards.mean():.0f} forward-equivalents (mean), {np.median(seconds):.1f} s median "
          f"({seconds.mean():.1f} s mean) on this machine, 1 torch thread; "
          f"statistics pass {time.perf_counter() - started:.0f} s "
          "(cached statistics load in ms)\n")  # fmt: skip
    single_target = [(r, m) for r, m in zip(records, zoo.models, strict=True) if m.target is not None]
    if single_target:
        hits = sum(r["target_class"] == m.target for r, m in single_target)
        negative = sum(int(r["statistics"]["noisy_negative_top_class"]) == m.target for r, m in single_target)
        print(f"BAN target class right for {hits} / {len(single_target)} single-target backdoored models "
              f"(the class the noisy negative path collapses onto: {negative})\n")  # fmt: skip
    ban = logistic_scorer(ban_matrix, labels)
    print(report("BAN alone", ban, labels, attacks, archs) + "\n")
    if not args.no_one_pixel:
        table = zoo_features(zoo, SignatureSettings(), cache_dir=signature_cache_dir())
        one_pixel = trees_scorer(head_features(table.features)[COMBINED], labels)
        print(report("one-pixel alone (clean-data head: signatures + composites)", one_pixel, labels, attacks, archs))
        print()
        print(report("fused (logistic on both logits, inner out-of-fold)", fused_scorer(one_pixel, ban, labels),
                     labels, attacks, archs) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
