"""`model-scanner zoo build`: train a reference zoo of clean and backdoored models (for calibration and benchmarks)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from scanner.commands.progress import progress_bar
from scanner.errors import UsageError

log = logging.getLogger(__name__)

GENERATORS = ("first", "second")

EXAMPLES = """\
examples:
  model-scanner zoo build --family shapes32 --clean 10 --backdoored 10 --out /tmp/zoo
  model-scanner zoo build --family digits16 --clean 60 --backdoored 60 --out /tmp/zoo --seed 1
  model-scanner zoo build --generator second --clean 20 --backdoored 20 --out /tmp/zoo2

--generator second is a zoo written apart from the first (scanner/zoo/second/): glyphs, textures and cluttered scenes
of 24-64 px, four other architectures, drawn recipes, triggers, input ranges, normalisations and layouts; --family and
--classes do not apply (every model draws its own), and each model's clean data is named in the manifest, as the
model takes it: a model whose entry gives a "normalization" (mean and std per channel; about 3 in 10) is scanned with
--mean and --std. To build one zoo in two
processes, give each its own --seed and the same --out, with --threads 1 each: file names carry the seed, and both
merge into one manifest.json. Drawn models that miss the bar are left out (about 1 clean model in 50 and 1 backdoored
in 3): --clean 76 --backdoored 104 with --seed 11 and with --seed 12 gave 288 models in 85 minutes, and 12 more
backdoored ones from each of --seed 13 and --seed 14 made 305 (bench/RESULTS.md).

Re-running the same command resumes: models already in DIR/manifest.json are skipped. Building both families
(or several seeds) into one DIR merges them into one manifest.json. Each family also gets DIR/clean_<family>.npz
(held-out clean images, x float32 NCHW in [0,1], y int64) for --clean-data.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="build the reference zoo of clean and backdoored models",
        description="Reference zoos: small ONNX image classifiers, clean and backdoored (several architectures and "
        "attacks), trained here on procedurally generated data, with a manifest.json and held-out clean data. They "
        "calibrate the detectors (model-scanner detector train) and feed the benchmarks.",
        epilog="run 'model-scanner zoo build --help' for the options and examples",
    )
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="train clean and backdoored models of one family into a directory",
        description="Train clean and backdoored ONNX classifiers of one family, each checked against the bar "
        "(clean accuracy >= 85%, attack success rate >= 90%, else retrained), with a manifest and clean data.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument(
        "--generator", choices=GENERATORS, default="first", help="which zoo generator (default first: --family needed)"
    )
    build.add_argument("--family", choices=("shapes32", "digits16"), help="dataset family (first generator)")
    build.add_argument("--clean", type=_count, required=True, metavar="N", help="number of clean models")
    build.add_argument("--backdoored", type=_count, required=True, metavar="N", help="number of backdoored models")
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="zoo directory (created; resumed)")
    build.add_argument("--seed", type=int, default=0, help="build seed: a different seed gives different models")
    build.add_argument("--classes", type=int, default=10, metavar="K", help="number of classes, 2-10 (default 10)")
    build.add_argument("--threads", type=int, default=2, help="torch threads for training (default 2)")
    build.set_defaults(run=run_build)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def run_build(args: argparse.Namespace) -> int:
    if args.generator == "second":
        return _run_second(args)
    if args.family is None:
        raise UsageError("--family is required with the first generator", hint="add --family shapes32 or digits16")
    from scanner.zoo.build import build_zoo

    if not 2 <= args.classes <= 10:
        raise UsageError(f"--classes {args.classes} is out of range", hint="use 2 to 10 classes")
    asked = args.clean + args.backdoored
    with progress_bar(f"zoo {args.family}", quiet=args.quiet, unit="model", lines=True) as progress:
        entries = build_zoo(
            args.family,
            args.clean,
            args.backdoored,
            args.out,
            seed=args.seed,
            progress=progress,
            num_classes=args.classes,
            threads=args.threads,
        )
    backdoored = sum(entry.backdoored for entry in entries)
    if not args.quiet:
        print(
            f"zoo {args.family}: {len(entries) - backdoored} clean + {backdoored} backdoored models in {args.out}",
            file=sys.stderr,
        )
    if len(entries) < asked:
        log.error("%d of %d models missed the bar after every retry (see the log above)", asked - len(entries), asked)
        return 2
    return 0


def _run_second(args: argparse.Namespace) -> int:
    from scanner.zoo.second.build import build_second_zoo

    asked = args.clean + args.backdoored
    with progress_bar("zoo second", quiet=args.quiet, unit="model", lines=True) as progress:
        entries = build_second_zoo(
            args.clean, args.backdoored, args.out, seed=args.seed, progress=progress, threads=args.threads
        )
    backdoored = sum(entry.backdoored for entry in entries)
    if not args.quiet:
        print(f"zoo second: {len(entries) - backdoored} clean + {backdoored} backdoored models in {args.out}",
              file=sys.stderr)  # fmt: skip
    if len(entries) < asked:
        log.error("%d of %d models missed the bar after every retry (see the log above)", asked - len(entries), asked)
        return 2
    return 0
