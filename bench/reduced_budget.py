"""What a smaller budget costs in detection: the shipped detectors at full and at reduced settings, as `scan` runs them.

    python -m bench.reduced_budget --zoo DIR [--zoo DIR ...] [--fractions 1 0.5 0.25 0.125] [--limit N] [--output FILE]

Each model of the zoos is scanned as `model-scanner scan --clean-data` scans it (both detectors, the shipped fusion,
the default policy; the zoo's clean data and value range for the model), first with full settings (`--budget 0`),
then under budgets of forward passes that are a fraction of what the full scan made. The budget is shared evenly
between the detectors, and each steps its settings down to fit as it would for a large model under the default
budget of seconds (one-pixel: probe grid and probe images; BAN: classes probed). Per fraction: the passes made and
the settings reached, then per detector and fused: AUC, TPR at 5% FPR, and at the shipped threshold (0.5) the share
of clean models blocked and of backdoored models caught. Figures are held out only on zoos no shipped file was
fitted on (their provenance names their zoos). --limit takes the first N clean and N backdoored models of each zoo.
Prints Markdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.zoos import Zoo, ZooModel, in_layout, read_zoo
from scanner.detectors import load_detectors
from scanner.detectors.interface import CleanData, Detector
from scanner.findings import Budget, BudgetUnit, ScanResult, Status
from scanner.policy import load_builtin_policy
from scanner.scan import Scanner, ScanOptions, ScanTarget

THRESHOLD = 0.5
CONFIGURATIONS = ("one_pixel", "ban", "fused")


def scan(model: ZooModel, clean: CleanData, detectors: Sequence[Detector], budget: Budget | None) -> ScanResult:
    options = ScanOptions(
        clean_data=clean,
        value_range=model.value_range,
        normalization=model.normalization,
        budget=budget,
        time_limit_s=None,
    )
    return Scanner(detectors, load_builtin_policy(), options=options).scan_target(ScanTarget.for_file(model.path))


def passes_of(result: ScanResult) -> int:
    return sum(d.forward_passes or 0 for d in result.detectors.values())


def settings_of(result: ScanResult) -> str:
    """The settings each detector ran with, as its budget details say."""
    parts = []
    for name, detector in result.detectors.items():
        chosen = (detector.details.get("budget") or {}).get("settings") or {}
        if chosen:
            parts.append(f"{name} " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in chosen.items()))
    return "; ".join(parts)


def score_of(result: ScanResult, configuration: str) -> float:
    """The detector's (or the fused) score; a detector that did not scan counts as 0 (a scan would not block on it)."""
    if configuration == "fused":
        return result.score if result.score is not None else 0.0
    detector = result.detectors.get(configuration)
    if detector is None or detector.status is not Status.SCANNED or detector.score is None:
        return 0.0
    return float(detector.score)


def summary_cells(labels: np.ndarray, scores: np.ndarray) -> list[str]:
    clean, backdoored = scores[labels == 0], scores[labels == 1]
    return [
        f"{roc_auc(labels, scores):.2f}",
        f"{tpr_at_fpr(labels, scores, 0.05):.2f}",
        f"{np.mean(clean >= THRESHOLD):.0%}",
        f"{np.mean(backdoored >= THRESHOLD):.0%}",
    ]


def chosen_models(directories: Sequence[Path], limit: int | None) -> list[tuple[Zoo, ZooModel]]:
    chosen = []
    for directory in directories:
        zoo = read_zoo(directory)
        for backdoored in (False, True):
            models = [m for m in zoo.models if m.backdoored is backdoored]
            chosen += [(zoo, m) for m in models[:limit]]
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, action="append", required=True, help="repeatable: the zoos are pooled")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.125])
    parser.add_argument("--limit", type=int, help="the first N clean and N backdoored models of each zoo")
    parser.add_argument("--output", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    fractions = [1.0, *sorted({f for f in args.fractions if 0 < f < 1}, reverse=True)]  # full settings first
    detectors = [d for d in load_detectors(["one-pixel", "ban"]).values() if isinstance(d, Detector)]
    models = chosen_models(args.zoo, args.limit)
    labels = np.asarray([int(m.backdoored) for _, m in models])
    scores = {f: {c: np.zeros(len(models)) for c in CONFIGURATIONS} for f in fractions}
    passes = {f: np.zeros(len(models)) for f in fractions}
    reached: dict[float, Counter[str]] = {f: Counter() for f in fractions}
    began = time.perf_counter()
    for index, (zoo, model) in enumerate(models):
        clean = zoo.clean_data_of(model)
        if clean is None:
            raise SystemExit(f"{model.path}: the zoo has no clean data for it (rebuild the zoo with its clean data)")
        clean = in_layout(clean, model.artifact().spec)
        full = scan(model, clean, detectors, None)
        if full.status is not Status.SCANNED:
            raise SystemExit(f"{model.path}: {full.error}")
        full_passes = passes_of(full)
        for fraction in fractions:
            result = (
                full
                if fraction == 1.0
                else scan(model, clean, detectors, Budget(fraction * full_passes, BudgetUnit.PASSES))
            )
            passes[fraction][index] = passes_of(result) / full_passes
            reached[fraction][settings_of(result)] += 1
            for configuration in CONFIGURATIONS:
                scores[fraction][configuration][index] = score_of(result, configuration)
        print(f"{index + 1}/{len(models)} {model.path.name} ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    lines = [
        f"{len(models)} models ({int(labels.sum())} backdoored, {int((labels == 0).sum())} clean) from "
        + ", ".join(str(z) for z in args.zoo)
        + f"; {time.perf_counter() - began:.0f} s.",
        "",
        "| budget (share of the full scan's passes) | passes made (mean share) | configuration | AUC | TPR@5%FPR |"
        " clean blocked | backdoored caught |",
        "|---|---|---|---|---|---|---|",
    ]
    for fraction in fractions:
        budget = "full settings" if fraction == 1.0 else f"{fraction:g}"
        for configuration in CONFIGURATIONS:
            cells = summary_cells(labels, scores[fraction][configuration])
            lines.append(f"| {budget} | {passes[fraction].mean():.2f} | {configuration} | " + " | ".join(cells) + " |")
    lines += ["", "Settings reached (models):", ""]
    for fraction in fractions:
        budget = "full settings" if fraction == 1.0 else f"budget {fraction:g}"
        for settings, count in reached[fraction].most_common():
            lines.append(f"- {budget}: {settings or 'the trained settings'} ({count})")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
