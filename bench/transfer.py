"""Does detection fitted on one zoo generator transfer to another? The one-pixel heads across two zoos.

    python -m bench.transfer [--zoo-a DIR ...] --zoo-b DIR [--zoo-b DIR ...] [--ban] [--output FILE]

First the detectors as shipped (no refit) on zoo B: the one-pixel detector without clean data (the default scan) and
with clean data, and with --ban also BAN and the fused score (the shipped fusion of one-pixel with clean data and
BAN; where BAN does not apply to a model, the one-pixel score alone, as a scan does). BAN costs seconds per model; its
statistics are cached under $MODEL_SCANNER_CACHE/ban-statistics.

With --zoo-a, then for each one-pixel head (`synthetic`: the default scan, no clean data;
`clean+synthetic+composite`: with clean data) and each setting: the shipped head as it is on zoo B and on zoo A; a
head of the shipped kind (`fit_trees`) fitted on A, tested on B; fitted on B, tested on A; and leave-one-family-out
over the families of both zoos (each family scored by a head fitted on every other family's models).

Reports AUC, TPR at 1% and 5% FPR, and at the shipped threshold (0.5: a score of 0.5 or more is `backdoored`) the
share of clean models blocked and of backdoored models caught; then the same per attack, architecture and data family
of the tested models. Features are the detector's own (scanner.calibration.one_pixel), cached under
$MODEL_SCANNER_CACHE/one-pixel-signatures. Prints Markdown. BAN and the fusion are not refitted here.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scanner.calibration.ban import default_cache_dir as default_ban_cache_dir
from scanner.calibration.ban import model_statistics
from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.one_pixel import (
    ZooFeatures,
    combined_features,
    default_cache_dir,
    head_features,
    zoo_features,
)
from scanner.calibration.zoos import Zoo, ZooModel, read_zoo
from scanner.detectors.one_pixel.classifier import COMBINED, SignatureClassifier, fit_trees
from scanner.detectors.one_pixel.signature import SignatureSettings

THRESHOLD = 0.5  # the detector's and the fusion's: a probability of 0.5 or more is `backdoored`
HEADS = ("synthetic", COMBINED)
GROUPS = ("attack", "architecture", "family")
TABLE_HEADER = [
    "| group | backdoored / clean | AUC | TPR@1%FPR | TPR@5%FPR | clean blocked | backdoored caught |",
    "|---|---|---|---|---|---|---|",
]


def at_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(share of clean models blocked, share of backdoored models caught) at THRESHOLD; nan where none."""
    flagged = scores >= THRESHOLD
    clean, backdoored = labels == 0, labels == 1
    blocked = float(flagged[clean].mean()) if clean.any() else float("nan")
    caught = float(flagged[backdoored].mean()) if backdoored.any() else float("nan")
    return blocked, caught


def summary_row(name: str, labels: np.ndarray, scores: np.ndarray) -> str:
    blocked, caught = at_threshold(labels, scores)
    cells = [
        name,
        f"{int(labels.sum())} / {int((1 - labels).sum())}",
        f"{roc_auc(labels, scores):.3f}",
        f"{tpr_at_fpr(labels, scores, 0.01):.3f}",
        f"{tpr_at_fpr(labels, scores, 0.05):.3f}",
        f"{blocked:.0%}",
        f"{caught:.0%}",
    ]
    return "| " + " | ".join(cells) + " |"


def group_rows(setting: str, models: Sequence[ZooModel], labels: np.ndarray, scores: np.ndarray) -> list[str]:
    """Per attack (its backdoored models against all clean ones), per architecture and family (their own models)."""
    rows = []
    for group in GROUPS:
        values = np.asarray([getattr(m, group) for m in models])
        for value in sorted(set(values)):
            if group == "attack":
                if value == "clean":
                    continue
                chosen = (values == value) | (labels == 0)
            else:
                chosen = values == value
            rows.append(summary_row(f"{setting}: {group} {value}", labels[chosen], scores[chosen]))
    return rows


def settings_scores(
    heads_a: dict[str, np.ndarray],
    heads_b: dict[str, np.ndarray],
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    families: np.ndarray,
    head: str,
    shipped: SignatureClassifier,
    seed: int = 0,
) -> dict[str, tuple[str, np.ndarray]]:
    """setting -> (which zoo its scores are of: "A", "B" or "A+B", scores)."""
    a, b = heads_a[head], heads_b[head]

    def fitted(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray) -> np.ndarray:
        classifier = fit_trees(train, train_labels, seed=seed)
        return np.asarray([classifier.probability(row) for row in test])

    both, labels = np.concatenate([a, b]), np.concatenate([labels_a, labels_b])
    out_of_family = np.full(len(labels), np.nan)
    for family in sorted(set(families)):
        held = families == family
        if len(set(labels[~held])) == 2:
            out_of_family[held] = fitted(both[~held], labels[~held], both[held])
    return {
        "shipped on B": ("B", np.asarray([shipped.probability(row, head) for row in b])),
        "shipped on A": ("A", np.asarray([shipped.probability(row, head) for row in a])),
        "fit A, test B": ("B", fitted(a, labels_a, b)),
        "fit B, test A": ("A", fitted(b, labels_b, a)),
        "leave one family out (A+B)": ("A+B", out_of_family),
    }


def shipped_ban_scores(zoos: Sequence[Zoo], cache: Path | None) -> tuple[np.ndarray, list[float], dict[str, int]]:
    """The shipped BAN calibration's probability for each model (nan where BAN does not apply), its seconds per
    scanned model, and why models were not scanned."""
    from scanner.detectors.ban.detector import BanDetector, BanSettings
    from scanner.errors import ScannerError

    calibration = BanDetector().calibration()
    scores: list[float] = []
    seconds: list[float] = []
    skipped: dict[str, int] = {}
    for zoo in zoos:
        for model in zoo.models:
            try:
                record = model_statistics(model, zoo, BanSettings(), cache_dir=cache)
            except ScannerError as error:  # the op table lacks an operator, the data does not fit, ...
                reason = error.one_line().split(" (")[0]  # e.g. unsupported ONNX operator(s): Range
                skipped[reason] = skipped.get(reason, 0) + 1
                scores.append(float("nan"))
                continue
            scores.append(calibration.probability(record["statistics"]))
            seconds.append(float(record["seconds"]))
    return np.asarray(scores), seconds, skipped


def shipped_fused(one_pixel: np.ndarray, ban: np.ndarray) -> np.ndarray:
    """The shipped fusion of one-pixel (with clean data) and BAN; one-pixel alone where BAN did not scan."""
    from scanner.detectors.fusion import FEATURE_OF, logit, shipped_fusion

    fusion = shipped_fusion()
    return np.asarray([
        o if np.isnan(b) else fusion.probability({FEATURE_OF["one_pixel"]: logit(o), FEATURE_OF["ban"]: logit(b)})
        for o, b in zip(one_pixel, ban, strict=True)
    ])  # fmt: skip


def shipped_section(
    zoo_b: Sequence[Path],
    models: Sequence[ZooModel],
    heads_b: dict[str, np.ndarray],
    labels: np.ndarray,
    shipped: SignatureClassifier,
    *,
    ban: bool,
    ban_cache: Path | None,
) -> list[str]:
    """The detectors as shipped, no refit, on zoo B: one row per configuration, then per attack, architecture and
    family."""
    configurations = {
        "one-pixel, no clean data (default scan)": np.asarray(
            [shipped.probability(row, "synthetic") for row in heads_b["synthetic"]]
        ),
        "one-pixel with clean data": np.asarray([shipped.probability(row, COMBINED) for row in heads_b[COMBINED]]),
    }
    notes = []
    if ban:
        started = time.perf_counter()
        ban_scores, seconds, skipped = shipped_ban_scores([read_zoo(d) for d in zoo_b], ban_cache)
        configurations["BAN with clean data"] = ban_scores
        configurations["fused with clean data"] = shipped_fused(configurations["one-pixel with clean data"], ban_scores)
        notes.append(
            f"BAN scanned {len(seconds)} of {len(labels)} models"
            + (f" (not scanned: {'; '.join(f'{v} x {k}' for k, v in sorted(skipped.items()))})" if skipped else "")
            + (f", {np.mean(seconds):.1f} s per model on one thread" if seconds else "")
            + f" ({time.perf_counter() - started:.0f} s in this run, cached statistics included); the fused score "
            "falls back to one-pixel alone where BAN did not scan."
        )
    lines = [
        "### the detectors as shipped, on zoo B (no refit)",
        "",
        "| configuration | backdoored / clean | AUC | TPR@1%FPR | TPR@5%FPR | clean blocked | backdoored caught |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: list[str] = []
    for name, scores in configurations.items():
        keep = ~np.isnan(scores)
        kept = [m for m, k in zip(models, keep, strict=True) if k]
        lines.append(summary_row(name, labels[keep], scores[keep]))
        groups += group_rows(name, kept, labels[keep], scores[keep])
    return [*lines, "", *notes, "", "<details><summary>per attack, architecture and family</summary>", "",
            *TABLE_HEADER, *groups, "", "</details>", ""]  # fmt: skip


def features_of(directories: Sequence[Path], settings: SignatureSettings, cache: Path | None) -> ZooFeatures:
    return combined_features([zoo_features(read_zoo(d), settings, cache_dir=cache) for d in directories])


def report(
    zoo_a: Sequence[Path],
    zoo_b: Sequence[Path],
    *,
    cache: Path | None,
    seed: int = 0,
    ban: bool = False,
    ban_cache: Path | None = None,
) -> str:
    shipped = SignatureClassifier.load()
    settings = SignatureSettings(
        values=int(shipped.settings.get("values", 3)),
        per_channel=bool(shipped.settings.get("per_channel", False)),
        mode=shipped.mode,
        scales=shipped.scales,
    )
    started = time.perf_counter()
    table_b = features_of(zoo_b, settings, cache)
    table_a = features_of(zoo_a, settings, cache) if zoo_a else None
    heads_b = head_features(table_b.features)
    labels_b = table_b.labels
    counted = [table_b] if table_a is None else [table_a, table_b]
    passes = np.concatenate([t.forward_passes for t in counted])
    described = [
        f"Zoo {name}: {', '.join(map(str, dirs))} ({len(t.labels)} models, {int(t.labels.sum())} backdoored)"
        for name, dirs, t in (("A", zoo_a, table_a), ("B", zoo_b, table_b))
        if t is not None
    ]
    lines = [
        f"{'; '.join(described)}. Threshold {THRESHOLD}. One-pixel features of {len(passes)} models in "
        f"{time.perf_counter() - started:.0f} s ({np.mean(passes):.0f} forward passes per model; cached ones "
        "included).",
        "",
        *shipped_section(zoo_b, table_b.models, heads_b, labels_b, shipped, ban=ban, ban_cache=ban_cache),
    ]
    if table_a is None:
        return "\n".join(lines)
    heads_a = head_features(table_a.features)
    models = {"A": list(table_a.models), "B": list(table_b.models)}
    models["A+B"] = models["A"] + models["B"]
    labels = {"A": table_a.labels, "B": labels_b, "A+B": np.concatenate([table_a.labels, labels_b])}
    families = np.asarray([m.family for m in models["A+B"]])
    for head in HEADS:
        scored = settings_scores(heads_a, heads_b, labels["A"], labels["B"], families, head, shipped, seed)
        lines += [
            f"### one-pixel, head `{head}`" + (" (default scan, no clean data)" if head == "synthetic" else
                                                " (with clean data)"),
            "",
            "| setting | backdoored / clean | AUC | TPR@1%FPR | TPR@5%FPR | clean blocked | backdoored caught |",
            "|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        groups: list[str] = []
        for setting, (zoo, scores) in scored.items():
            keep = ~np.isnan(scores)
            zoo_models = [m for m, k in zip(models[zoo], keep, strict=True) if k]
            lines.append(summary_row(setting, labels[zoo][keep], scores[keep]))
            groups += group_rows(setting, zoo_models, labels[zoo][keep], scores[keep])
        lines += ["", "<details><summary>per attack, architecture and family</summary>", "",
                  *TABLE_HEADER, *groups, "", "</details>", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transfer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--zoo-a", type=Path, action="append", default=[], metavar="DIR", help="zoo A to refit on (repeatable)"
    )
    parser.add_argument("--zoo-b", type=Path, action="append", required=True, metavar="DIR", help="zoo B (repeatable)")
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="signature cache directory")
    parser.add_argument("--seed", type=int, default=0, help="tree seed of the refitted heads")
    parser.add_argument("--ban", action="store_true", help="also BAN and the fused score, as shipped (slow)")
    parser.add_argument("--ban-cache", type=Path, default=default_ban_cache_dir(), help="BAN statistics cache")
    parser.add_argument("--output", type=Path, help="write the Markdown here (default: stdout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    text = report(args.zoo_a, args.zoo_b, cache=args.cache, seed=args.seed, ban=args.ban, ban_cache=args.ban_cache)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
