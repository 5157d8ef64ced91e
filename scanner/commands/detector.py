"""`model-scanner detector train`: fit a detector's classifier on a zoo and write it as a small versioned file.

A dispatch table by detector name: each entry adds its own options and trains its own file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.commands.progress import progress_bar
from scanner.detectors.ban.detector import BanSettings, settings_from
from scanner.detectors.one_pixel.signature import SignatureSettings
from scanner.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trainer:
    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    train: Callable[[argparse.Namespace], dict[str, Any]]  # writes args.out, returns a summary for stdout


def _one_pixel_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("one-pixel")
    group.add_argument("--values", type=int, default=SignatureSettings().values, help="K candidate values per pixel")
    group.add_argument("--per-channel", action="store_true", help="probe every channel separately")
    group.add_argument(
        "--mode",
        choices=("full", "coarse-to-fine"),
        default="full",
        help="coarse-to-fine: extremes everywhere, then all K values only where the model moved most; the "
        "composite and blend probes on the finest scale only, on 72 clean images, not 128, and the patch probes on "
        "8, not 32 (at K=16: 5.0x fewer passes with clean data, AUC at most 0.02 lower on the bench zoo; "
        "bench/RESULTS-one-pixel.md)",
    )
    group.add_argument("--cache", type=Path, default=None, help="signature cache (default $MODEL_SCANNER_CACHE/...)")


def _signature_settings(args: argparse.Namespace) -> SignatureSettings:
    return SignatureSettings(values=args.values, per_channel=args.per_channel, mode=args.mode)


def _ban_settings(args: argparse.Namespace) -> BanSettings:
    return settings_from(dict(item.split("=", 1) for item in args.ban_setting))


def _write_calibration(args: argparse.Namespace, detector: str, calibration: Any) -> dict[str, Any]:
    args.out.write_text(json.dumps(calibration.to_json(), indent=1) + "\n")
    return {"detector": detector, "out": str(args.out), "provenance": dict(calibration.provenance)}


def _train_one_pixel(args: argparse.Namespace) -> dict[str, Any]:
    from scanner.calibration.one_pixel import default_cache_dir, train_signature_classifier

    with progress_bar("signatures", quiet=args.quiet) as progress:
        classifier = train_signature_classifier(
            args.zoo,
            _signature_settings(args),
            cache_dir=args.cache or default_cache_dir(),
            seed=args.seed,
            zoo_command=args.zoo_command,
            progress=progress,
            gate_zoo_dirs=args.gate_zoo,
        )
    classifier.save(args.out)
    return {"detector": "one-pixel", "out": str(args.out), "provenance": classifier.provenance}


def _ban_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ban")
    group.add_argument(
        "--ban-setting", action="append", default=[], metavar="NAME=VALUE", help="override a BAN setting (repeatable)"
    )
    group.add_argument(
        "--ban-cache", type=Path, default=None, help="statistics cache (default $MODEL_SCANNER_CACHE/...)"
    )


def _train_ban(args: argparse.Namespace) -> dict[str, Any]:
    from scanner.calibration.ban import default_cache_dir, train_ban_calibration

    with progress_bar("BAN statistics", quiet=args.quiet) as progress:
        calibration = train_ban_calibration(
            args.zoo,
            _ban_settings(args),
            cache_dir=args.ban_cache or default_cache_dir(),
            seed=args.seed,
            zoo_command=args.zoo_command,
            progress=progress,
            gate_zoo_dirs=args.gate_zoo,
        )
    return _write_calibration(args, "ban", calibration)


def _fusion_options(parser: argparse.ArgumentParser) -> None:
    del parser  # fusion reuses the one-pixel and BAN options and caches


def _train_fusion(args: argparse.Namespace) -> dict[str, Any]:
    from scanner.calibration.ban import default_cache_dir
    from scanner.calibration.fusion import train_fusion
    from scanner.calibration.one_pixel import default_cache_dir as signature_cache_dir

    with progress_bar("fusion", quiet=args.quiet) as progress:
        calibration = train_fusion(
            args.zoo,
            ban_settings=_ban_settings(args),
            ban_cache=args.ban_cache or default_cache_dir(),
            signature_settings=_signature_settings(args),
            signature_cache=args.cache or signature_cache_dir(),
            seed=args.seed,
            zoo_command=args.zoo_command,
            progress=progress,
            gate_zoo_dirs=args.gate_zoo,
        )
    return _write_calibration(args, "fusion", calibration)


# Detector name -> how to train its classifier.
TRAINERS: dict[str, Trainer] = {
    "one-pixel": Trainer("the one-pixel signature classifier", _one_pixel_options, _train_one_pixel),
    "ban": Trainer("BAN's logistic calibration", _ban_options, _train_ban),
    "fusion": Trainer(
        "the fused score's gate offset (the larger of one-pixel's and BAN's scores)", _fusion_options, _train_fusion
    ),
}


# Below this many models, a fitted classifier's cross-validated metrics mean little (the shipped ones: 220).
FEW_MODELS = 40


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "detector",
        help="train detectors' classifiers on a zoo",
        description="Fit the files the detectors read (scanner/detectors/data/) on zoos built by `model-scanner zoo "
        "build`.",
    )
    actions = parser.add_subparsers(dest="detector_command", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="train a detector's classifier on a zoo",
        description="Compute every zoo model's signature (cached), fit the classifier, write it to --out.",
        epilog="example: model-scanner detector train --zoo ~/zoo --out one_pixel_classifier.json",
    )
    train.add_argument(
        "--detector",
        choices=sorted(TRAINERS),
        default="one-pixel",
        help="what to fit: "
        + "; ".join(f"{name}: {trainer.help}" for name, trainer in TRAINERS.items())
        + " (default one-pixel)",
    )
    train.add_argument(
        "--zoo", type=Path, action="append", required=True, help="a zoo directory (with manifest.json); repeatable"
    )
    train.add_argument(
        "--gate-zoo",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a zoo whose clean models set the gate threshold beside the fitted zoos' out-of-fold scores, but are not "
        "fitted on (backdoored ones are ignored): other builders' clean models keep the shipped threshold from "
        "blocking models unlike the fitted zoos; repeatable",
    )
    train.add_argument(
        "--zoo-command", default=None, help="how the zoo was built, recorded in the file's provenance (default: none)"
    )
    train.add_argument("--out", type=Path, required=True, help="where to write the trained classifier")
    train.add_argument("--seed", type=int, default=0, help="seed of the fit and its cross-validation (default 0)")
    for trainer in TRAINERS.values():
        trainer.add_options(train)
    train.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.out.parent.is_dir():  # say so before the training, not after it
        raise UsageError(f"cannot write {args.out}: {args.out.parent} is not a directory", hint="create it first")
    summary = TRAINERS[args.detector].train(args)
    models = summary["provenance"].get("models", 0)
    if models < FEW_MODELS:
        log.warning(
            "trained on %d models only: its cross-validated metrics mean little (the shipped files: 220 models; "
            "build a bigger zoo with `model-scanner zoo build`)",
            models,
        )
    print(json.dumps(summary, indent=1), file=sys.stdout)
    return 0
