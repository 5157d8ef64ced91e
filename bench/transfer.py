"""Does detection fitted on one zoo generator transfer to another? The shipped recipe across two zoos.

    python -m bench.transfer [--zoo-a DIR ...] --zoo-b DIR [--zoo-b DIR ...] [--gate-zoo DIR ...] [--ban] [--output F]

First the detectors as shipped (no refit) on zoo B: the one-pixel detector without clean data (the default scan) and
with clean data, and with --ban also BAN and the fused score (the shipped fusion of one-pixel with clean data and BAN;
where BAN does not apply to a model, the one-pixel score alone, as a scan does). Held out only when no shipped file
was fitted on zoo B nor took it as a gate zoo (their provenance names their zoos). BAN costs seconds per model; its
statistics are cached under $MODEL_SCANNER_CACHE/ban-statistics.

With --zoo-a, then the shipped recipe refitted per setting, as `model-scanner detector train` fits the shipped files
(each head's chosen features and gate offset, BAN's calibration and gate offset, the max fusion's gate offset; the
offsets from one fold per data family of the training models, and with --gate-zoo from its clean models too), on: zoo
A, tested on B; B, tested on A; and each data family of both left out in turn. BAN and the fusion need --ban.

Reports AUC, TPR at 1% and 5% FPR, and at the shipped threshold (0.5: a score of 0.5 or more is `backdoored`) the
share of clean models blocked and of backdoored models caught, and the worst of the settings per configuration; then
the same per attack, architecture, data family, training recipe (optimiser and schedule) and inputs (value range or
mean/std normalisation) of the tested models.
Features are the detector's own (scanner.calibration.one_pixel), cached under $MODEL_SCANNER_CACHE/one-pixel-signatures.
Prints Markdown.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scanner.calibration.ban import default_cache_dir as default_ban_cache_dir
from scanner.calibration.ban import fit_gate_calibration, gate_zoo_statistics, model_statistics
from scanner.calibration.fusion import fit_gate_fusion, shifted
from scanner.calibration.gate import GATE_ALPHA
from scanner.calibration.metrics import roc_auc, tpr_at_fpr
from scanner.calibration.one_pixel import (
    ZooFeatures,
    combined_features,
    default_cache_dir,
    fit_gate_head,
    gate_zoo_features,
    head_feature_names,
    head_features,
    zoo_features,
)
from scanner.calibration.zoos import Zoo, ZooModel, read_zoo
from scanner.detectors.ban.detector import BanSettings
from scanner.detectors.fusion import MaxFusion, shipped_fusion
from scanner.detectors.logistic import gate_shifted
from scanner.detectors.one_pixel.classifier import COMBINED, SignatureClassifier
from scanner.detectors.one_pixel.signature import SignatureSettings

THRESHOLD = 0.5  # the detector's and the fusion's: a probability of 0.5 or more is `backdoored`
HEADS = ("synthetic", COMBINED)
GROUPS = ("attack", "architecture", "family", "recipe", "inputs")
DETAILS = "<details><summary>per attack, architecture, family, recipe and inputs</summary>"
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


def recipe_of(model: ZooModel) -> str:
    """The model's optimiser and learning-rate schedule; the first generator trains every model one way."""
    training = (model.recipe or {}).get("training")
    if not training:
        return "first generator's"
    return f"{training['optimiser']} {training['schedule']}"


def inputs_of(model: ZooModel) -> str:
    """What the model takes: its value range, or mean/std normalisation of [0, 1] images."""
    if model.normalization is not None:
        return "normalised"
    low, high = model.value_range
    return f"[{low:g}, {high:g}]"


def group_rows(setting: str, models: Sequence[ZooModel], labels: np.ndarray, scores: np.ndarray) -> list[str]:
    """Per attack (its backdoored models against all clean ones), per architecture, family, recipe and inputs (their
    own models)."""
    described = {"recipe": recipe_of, "inputs": inputs_of}
    rows = []
    for group in GROUPS:
        values = np.asarray([described[group](m) if group in described else getattr(m, group) for m in models])
        for value in sorted(set(values)):
            if group == "attack":
                if value == "clean":
                    continue
                chosen = (values == value) | (labels == 0)
            else:
                chosen = values == value
            rows.append(summary_row(f"{setting}: {group} {value}", labels[chosen], scores[chosen]))
    return rows


def folds(zoo_of: np.ndarray, families: np.ndarray) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(setting, which models it scores: "A", "B" or "A+B", train mask, test mask): A->B, B->A, then each family
    left out in turn (its scores gathered into one "leave one family out" setting)."""
    out = [("fit A, test B", "B", zoo_of == "A", zoo_of == "B"), ("fit B, test A", "A", zoo_of == "B", zoo_of == "A")]
    out += [(LOFO, "A+B", families != family, families == family) for family in sorted(set(families))]
    return out


LOFO = "leave one family out (A+B)"


def gate_recipe_scores(
    heads: dict[str, np.ndarray],
    names: dict[str, list[str]],
    records: Sequence[dict[str, Any] | None] | None,
    labels: np.ndarray,
    zoo_of: np.ndarray,
    families: np.ndarray,
    seed: int = 0,
    gate_heads: dict[str, np.ndarray] | None = None,
    gate_records: Sequence[dict[str, Any]] = (),
) -> dict[str, dict[str, np.ndarray]]:
    """configuration -> setting -> scores of every model (nan where the setting does not score it), each fitted as
    `model-scanner detector train` fits the shipped files (feature choice, gate offset), on the setting's train models
    only; with the gate zoos' clean models (`gate_heads`: their one-pixel features per head, `gate_records`: their BAN
    statistics) in every gate offset, as `--gate-zoo` does."""
    configurations = ["one-pixel, no clean data (default scan)", "one-pixel with clean data"]
    if records is not None:
        configurations += ["BAN with clean data", "fused with clean data"]
    out: dict[str, dict[str, np.ndarray]] = {c: {} for c in configurations}
    for setting, _, train, test in folds(zoo_of, families):
        if len(set(labels[train])) < 2:
            continue
        scored: dict[str, np.ndarray] = {}
        train_scores: dict[str, np.ndarray] = {}
        gate_scores: dict[str, np.ndarray] = {}
        for configuration, head in zip(configurations[:2], ("synthetic", COMBINED), strict=True):
            gate = (gate_heads or {}).get(head)
            fitted, offset, oof = fit_gate_head(
                head, heads[head][train], labels[train], names[head], groups=list(families[train]), seed=seed,
                gate_features=gate,
            )  # fmt: skip
            scored[configuration] = np.asarray([gate_shifted(fitted.probability(r), offset) for r in heads[head][test]])
            train_scores[configuration] = np.asarray([gate_shifted(p, offset) for p in oof])
            rows = gate if gate is not None else np.empty((0, heads[head].shape[1]))
            gate_scores[configuration] = np.asarray([gate_shifted(fitted.probability(r), offset) for r in rows])
        if records is not None:
            with_ban = np.asarray([r is not None for r in records])
            fit_rows = [r for r, t in zip(records, train & with_ban, strict=True) if t and r is not None]
            calibration, ban_offset, oof = fit_gate_calibration(
                fit_rows, labels[train & with_ban], groups=list(families[train & with_ban]), seed=seed,
                gate_records=gate_records,
            )  # fmt: skip
            ban_test = np.asarray([
                calibration.probability(r["statistics"]) if r else np.nan
                for r, t in zip(records, test, strict=True) if t
            ])  # fmt: skip
            scored["BAN with clean data"] = ban_test
            one_pixel_train = train_scores["one-pixel with clean data"][with_ban[train]]
            ban_train = shifted(oof, ban_offset)  # as the fitted calibration reports them
            ban_gate = [calibration.probability(r["statistics"]) for r in gate_records]
            elsewhere = np.maximum(gate_scores["one-pixel with clean data"], ban_gate) if gate_records else []
            fusion = fit_gate_fusion(
                labels[train & with_ban], one_pixel_train, ban_train, clean_elsewhere=list(elsewhere)
            )
            scored["fused with clean data"] = fused(fusion, scored["one-pixel with clean data"], ban_test)
        for configuration, values in scored.items():
            column = out[configuration].setdefault(setting, np.full(len(labels), np.nan))
            column[test] = values
    return out


def shipped_ban_scores(zoos: Sequence[Zoo], cache: Path | None) -> tuple[np.ndarray, list[float], dict[str, int]]:
    """The shipped BAN calibration's probability for each model (nan where BAN does not apply), its seconds per
    scanned model, and why models were not scanned."""
    from scanner.detectors.ban.detector import BanDetector
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


def fused(fusion: MaxFusion, one_pixel: np.ndarray, ban: np.ndarray) -> np.ndarray:
    """`fusion` of one-pixel (with clean data) and BAN; one-pixel alone where BAN did not scan, as a scan does."""
    return np.asarray([
        o if np.isnan(b) else fusion.probability({"one_pixel": o, "ban": b})
        for o, b in zip(one_pixel, ban, strict=True)
    ])  # fmt: skip


def shipped_section(
    zoos_b: Sequence[Zoo],
    models: Sequence[ZooModel],
    heads_b: dict[str, np.ndarray],
    labels: np.ndarray,
    shipped: SignatureClassifier,
    *,
    ban: bool,
    ban_cache: Path | None,
) -> list[str]:
    """The detectors as shipped, no refit, on zoo B: one row per configuration, then per attack, architecture,
    family, recipe and inputs."""
    configurations = {
        "one-pixel, no clean data (default scan)": np.asarray(
            [shipped.probability(row, "synthetic") for row in heads_b["synthetic"]]
        ),
        "one-pixel with clean data": np.asarray([shipped.probability(row, COMBINED) for row in heads_b[COMBINED]]),
    }
    notes = []
    if ban:
        started = time.perf_counter()
        ban_scores, seconds, skipped = shipped_ban_scores(zoos_b, ban_cache)
        configurations["BAN with clean data"] = ban_scores
        configurations["fused with clean data"] = fused(
            shipped_fusion(), configurations["one-pixel with clean data"], ban_scores
        )
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
    return [*lines, "", *notes, "", DETAILS, "", *TABLE_HEADER, *groups, "", "</details>", ""]


def features_of(zoos: Sequence[Zoo], settings: SignatureSettings, cache: Path | None) -> ZooFeatures:
    return combined_features([zoo_features(zoo, settings, cache_dir=cache) for zoo in zoos])


def report(
    zoo_a: Sequence[Path],
    zoo_b: Sequence[Path],
    *,
    cache: Path | None,
    seed: int = 0,
    ban: bool = False,
    ban_cache: Path | None = None,
    gate_zoo: Sequence[Path] = (),
) -> str:
    shipped = SignatureClassifier.load()
    settings = SignatureSettings(
        values=int(shipped.settings.get("values", 3)),
        per_channel=bool(shipped.settings.get("per_channel", False)),
        mode=shipped.mode,
        scales=shipped.scales,
    )
    started = time.perf_counter()
    zoos_a, zoos_b = [read_zoo(d) for d in zoo_a], [read_zoo(d) for d in zoo_b]  # read once: a zoo may be growing
    table_b = features_of(zoos_b, settings, cache)
    table_a = features_of(zoos_a, settings, cache) if zoo_a else None
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
        *shipped_section(zoos_b, table_b.models, heads_b, labels_b, shipped, ban=ban, ban_cache=ban_cache),
    ]
    if table_a is None:
        return "\n".join(lines)
    heads_a = head_features(table_a.features)
    models = list(table_a.models) + list(table_b.models)
    labels = np.concatenate([table_a.labels, labels_b])
    zoo_of = np.asarray(["A"] * len(table_a.models) + ["B"] * len(table_b.models))
    families = np.asarray([m.family for m in models])
    heads = {head: np.concatenate([heads_a[head], heads_b[head]]) for head in HEADS}
    records = ban_records([*zoos_a, *zoos_b], ban_cache) if ban else None
    gate_heads = gate_zoo_features(gate_zoo, settings, cache_dir=cache) if gate_zoo else None
    gate_records = gate_zoo_statistics(gate_zoo, BanSettings(), cache_dir=ban_cache) if gate_zoo and ban else []
    scored = gate_recipe_scores(
        heads, head_feature_names(settings), records, labels, zoo_of, families, seed, gate_heads, gate_records
    )
    gate_note = (
        f" and of the {len(next(iter(gate_heads.values())))} clean models of the gate zoo(s) "
        f"{', '.join(map(str, gate_zoo))}, whichever is higher"
        if gate_heads
        else ""
    )
    lines += [
        "### refitted as the shipped files are (feature choice, gate offset), tested on models left out",
        "",
        f"Worst of the settings: the issue's yardstick. Gate offset: the threshold sits above all but {GATE_ALPHA:.0%}"
        f" of the training models' out-of-fold clean scores{gate_note}.",
        "",
        "| configuration | setting | backdoored / clean | AUC | TPR@1%FPR | TPR@5%FPR | clean blocked "
        "| backdoored caught |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: list[str] = []
    for configuration, settings_scored in scored.items():
        worst = {"auc": 1.0, "tpr": 1.0, "blocked": 0.0}
        for setting, scores in settings_scored.items():
            keep = ~np.isnan(scores)
            row = summary_row(setting, labels[keep], scores[keep])
            lines.append(f"| {configuration} " + row)
            blocked, _ = at_threshold(labels[keep], scores[keep])
            worst["auc"] = min(worst["auc"], roc_auc(labels[keep], scores[keep]))
            worst["tpr"] = min(worst["tpr"], tpr_at_fpr(labels[keep], scores[keep], 0.05))
            worst["blocked"] = max(worst["blocked"], blocked)
            kept = [m for m, k in zip(models, keep, strict=True) if k]
            groups += group_rows(f"{configuration}, {setting}", kept, labels[keep], scores[keep])
        lines.append(
            f"| **{configuration}** | **worst** | | **{worst['auc']:.3f}** | | **{worst['tpr']:.3f}** | "
            f"**{worst['blocked']:.0%}** | |"
        )
    lines += ["", DETAILS, "", *TABLE_HEADER, *groups, "", "</details>", ""]
    return "\n".join(lines)


def ban_records(zoos: Sequence[Zoo], cache: Path | None) -> list[dict[str, Any] | None]:
    """BAN's cached statistics record of every model of the zoos, in order (None where BAN does not apply)."""
    from scanner.detectors.ban.detector import BanSettings
    from scanner.errors import ScannerError

    records: list[dict[str, Any] | None] = []
    for zoo in zoos:
        for model in zoo.models:
            try:
                records.append(model_statistics(model, zoo, BanSettings(), cache_dir=cache))
            except ScannerError:
                records.append(None)
    return records


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
    parser.add_argument(
        "--gate-zoo",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a gate zoo for the refits, as `detector train --gate-zoo` (repeatable; its clean models only)",
    )
    parser.add_argument("--output", type=Path, help="write the Markdown here (default: stdout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    text = report(
        args.zoo_a,
        args.zoo_b,
        cache=args.cache,
        seed=args.seed,
        ban=args.ban,
        ban_cache=args.ban_cache,
        gate_zoo=args.gate_zoo,
    )
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
