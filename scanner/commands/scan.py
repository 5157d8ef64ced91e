"""`model-scanner scan`: scan model files, directories and registered models, judge them, write one report."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.commands.options import add_budget, add_max_model_size
from scanner.commands.progress import progress_bar
from scanner.detectors import DETECTORS, load_detectors
from scanner.detectors.interface import DetectionContext, Detector
from scanner.errors import ReportError, ScannerError, UsageError
from scanner.findings import (
    Action,
    DetectorResult,
    ErrorInfo,
    Layout,
    ModelArtifact,
    Normalization,
    ScanResult,
    Status,
)
from scanner.policy import BUILTIN_POLICIES, DEFAULT_POLICY, Policy, load_builtin_policy, load_policy
from scanner.reports import Report, ReportFormat, render
from scanner.reports.markdown import render_markdown
from scanner.scan import (
    DEFAULT_TIME_LIMIT_S,
    Scanner,
    ScanOptions,
    ScanTarget,
    expand_targets,
    load_clean_data,
)

log = logging.getLogger(__name__)

EXIT_ALLOWED = 0
EXIT_BLOCKED = 1
EXIT_ERROR = 2
POLICY_ENV = "MODEL_SCANNER_POLICY"

EXAMPLES = f"""\
exit codes:
  0  every target allowed by the policy (warnings included)
  1  at least one target blocked by the policy
  2  an error: bad usage or config, or a target that could not be scanned (the report is still written)

examples:
  model-scanner scan model.onnx
  model-scanner scan models/ --format sarif --output scan.sarif --summary "$GITHUB_STEP_SUMMARY"
  model-scanner scan cnn.onnx --clean-data clean.npz --policy policies/strict.yaml --artifacts heatmaps/
  model-scanner scan cnn.onnx --detectors one-pixel --value-range=-1,1 --layout NHWC --format markdown
  model-scanner scan cnn.onnx --synthesize-clean-data --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225
  model-scanner scan models:/fraud-cnn/3 models:/fraud-cnn@champion --policy strict

policy: --policy FILE, or a built-in name ({", ".join(BUILTIN_POLICIES)}); default ${POLICY_ENV}, else the built-in
'{DEFAULT_POLICY}' policy, which judges a plain scan like a promotion to production (a backdoored model exits 1).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan models for backdoors and judge them with a policy",
        description="Scan ONNX image classifiers for backdoors (one-pixel signature, BAN), judge each with a policy, "
        "and write one report (JSON, SARIF or Markdown) to stdout or --output. Logs and progress go to stderr.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="an .onnx file, a directory (recursive), or models:/NAME/VERSION or models:/NAME@ALIAS",
    )
    parser.add_argument(
        "--policy", metavar="FILE", help=f"policy file or built-in name (default: ${POLICY_ENV} or '{DEFAULT_POLICY}')"
    )
    parser.add_argument(
        "--clean-data",
        metavar="FILE.npz",
        type=Path,
        help="clean sample images (x, optional y) in the models' own layout and value range; BAN needs them",
    )
    parser.add_argument(
        "--synthesize-clean-data",
        action="store_true",
        help="for a model without clean data, synthesize some (images the model puts in each class, by gradient "
        "descent on its torch view; needs torch), so that BAN and the one-pixel clean-data probes run: seconds per "
        "small model, much longer for large ones",
    )
    parser.add_argument(
        "--detectors",
        metavar="LIST",
        type=_detector_list,
        help=f"comma-separated detectors to run (default: all: {','.join(DETECTORS)})",
    )
    parser.add_argument(
        "--format",
        dest="report_format",
        choices=[f.value for f in ReportFormat],
        help="report format (default: table when stdout is a terminal, json when it is a pipe or with --output)",
    )
    parser.add_argument("--output", metavar="FILE", type=Path, help="write the report here instead of stdout")
    parser.add_argument(
        "--summary", metavar="FILE", type=Path, help="also append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)"
    )
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="where detectors run (default: auto)"
    )
    parser.add_argument(
        "--artifacts", metavar="DIR", type=Path, help="write signature heatmaps here (shown in Markdown reports)"
    )
    parser.add_argument(
        "--value-range",
        metavar="LO,HI",
        type=_value_range,
        help="input value range of every target, e.g. --value-range=-1,1 (with '=' when LO is negative); overrides "
        "the policy's inputs (default: the policy's, else 0,1)",
    )
    parser.add_argument(
        "--mean",
        metavar="R,G,B",
        type=_channel_values,
        help="per-channel mean the model subtracts after --value-range, one per channel, with --std; e.g. ImageNet's "
        "--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225: the detectors then probe each channel in its own range "
        "[(LO-mean)/std, (HI-mean)/std]; overrides the policy's inputs",
    )
    parser.add_argument(
        "--std",
        metavar="R,G,B",
        type=_positive_channel_values,
        help="per-channel std the model divides by, one per channel (above 0), with --mean",
    )
    parser.add_argument(
        "--layout",
        choices=[layout.value for layout in Layout],
        help="input layout of every target, when the graph leaves it ambiguous; overrides the policy's inputs",
    )
    parser.add_argument(
        "--time-limit",
        metavar="SECONDS",
        type=_time_limit,
        default=DEFAULT_TIME_LIMIT_S,
        help=f"longest one model's detectors may run; past it the model is an error (default {DEFAULT_TIME_LIMIT_S:g}"
        ", 0 for none)",
    )
    add_budget(parser)
    add_max_model_size(parser)
    # Also after the subcommand, as users type them; SUPPRESS keeps the global flags' values when absent here.
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only errors on stderr")
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output (-vv)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    policy = _policy(args.policy or os.environ.get(POLICY_ENV))
    options = ScanOptions(
        device=args.device,
        artifacts_dir=_artifacts_dir(args.artifacts),
        clean_data=None if args.clean_data is None else load_clean_data(args.clean_data),
        value_range=args.value_range,
        normalization=_normalization(args.mean, args.std),
        layout=None if args.layout is None else Layout(args.layout),
        max_model_bytes=args.max_model_size,
        time_limit_s=args.time_limit or None,
        budget=args.budget,
        synthesize_clean_data=args.synthesize_clean_data,
    )
    detectors = build_detectors(args.detectors)
    _check_clean_data_reachable(args, policy)
    quiet = bool(getattr(args, "quiet", False))
    with tempfile.TemporaryDirectory(prefix="model-scanner-") as downloads:
        targets = resolve_targets(args.targets, Path(downloads), allow_files=policy.allow_files)
        with (
            progress_bar("models", quiet=quiet, unit="model", position=0) as on_target,
            progress_bar("detector", quiet=quiet, position=1) as on_step,
        ):
            scanner = Scanner(detectors, policy, options=options, on_target=on_target, on_step=on_step)
            results = scanner.scan(targets)
    report = Report(results=tuple(results), policy=policy.label, scanner_version=__version__)
    _write(render(report, report_format(args.report_format, args.output)), args.output)
    if args.summary is not None:
        _write(render_markdown(report), args.summary, append=True)
    _tell(results, quiet=quiet)
    return exit_code(results)


def report_format(asked: str | None, output: Path | None) -> ReportFormat:
    """What --format says; without it, a table for a person at a terminal, JSON for pipes, files and tools."""
    if asked is not None:
        return ReportFormat(asked)
    return ReportFormat.TABLE if output is None and sys.stdout.isatty() else ReportFormat.JSON


def _check_clean_data_reachable(args: argparse.Namespace, policy: Policy) -> None:
    """BAN alone without any clean data would judge nothing, and a policy that only warns would let every model
    through: that is a usage mistake, said before any work."""
    if args.detectors != ["ban"] or args.clean_data is not None or args.synthesize_clean_data:
        return
    if any(entry.clean_data for entry in policy.inputs) or any(t.startswith("models:/") for t in args.targets):
        return  # clean data from the policy's inputs, or beside a registered version
    raise UsageError(
        "--detectors ban needs clean sample data: BAN learns from clean images, and without them it judges nothing",
        hint="give --clean-data FILE.npz, or name it in the policy's inputs, or add the one-pixel detector",
    )


def exit_code(results: Sequence[ScanResult]) -> int:
    """2 if any target could not be scanned, else 1 if any was blocked, else 0 (docs/interface.md)."""
    if any(result.status is Status.ERROR for result in results):
        return EXIT_ERROR
    if any(result.decision is not None and result.decision.action is Action.BLOCK for result in results):
        return EXIT_BLOCKED
    return EXIT_ALLOWED


def build_detectors(names: Sequence[str] | None) -> list[Detector]:
    """The detectors asked for. Asked by name, one that cannot load is an error; by default it is reported as failed."""
    detectors: list[Detector] = []
    for name, loaded in load_detectors(names).items():
        if isinstance(loaded, str):
            log.warning("detector %s is not available: %s", name, loaded)
            loaded = unavailable_detector(name, loaded)
        detectors.append(loaded)
    return detectors


class UnavailableDetector(Detector):
    """Stands in for a detector that could not be loaded, so every result says so."""

    name = "unavailable"
    version = "0"
    reason = ""

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        return DetectorResult.failed(self.name, f"detector not available: {self.reason}")


def unavailable_detector(cli_name: str, reason: str) -> Detector:
    key = cli_name.replace("-", "_")
    subclass = type(f"Unavailable_{key}", (UnavailableDetector,), {"name": key, "reason": reason})
    detector: Detector = subclass()
    return detector


def resolve_targets(
    targets: Sequence[str], downloads: Path, *, allow_files: Sequence[str] = ()
) -> list[ScanTarget | ScanResult]:
    """Files and directories through the intake; models:/ URIs downloaded from the registry into `downloads`."""
    if any(target.startswith("models:/") for target in targets) and not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow would otherwise create an empty ./mlflow.db and answer that the model does not exist.
        raise UsageError(
            "models:/ targets need an MLflow server, and MLFLOW_TRACKING_URI is not set",
            hint="set MLFLOW_TRACKING_URI=http://HOST:PORT (the registry's tracking server)",
        )
    resolved: list[ScanTarget | ScanResult] = []
    for index, target in enumerate(targets):
        if target.startswith("models:/"):
            resolved.append(_registered(target, downloads / str(index)))
        else:
            resolved.extend(expand_targets([target], allow_files=allow_files))
    return resolved


def _registered(uri: str, dest: Path) -> ScanTarget | ScanResult:
    try:
        from scanner.registry.source import fetch_model
    except ImportError as error:
        message = f"models:/ targets need the registry support, which cannot load: {error}"
        return ScanResult(uri, None, Status.ERROR, error=ErrorInfo("missing_dependency", message))
    try:
        dest.mkdir(parents=True)
        fetched = fetch_model(uri, dest)
    except ScannerError as error:
        return ScanResult(uri, None, Status.ERROR, error=ErrorInfo(error.kind, error.one_line()))
    return ScanTarget(path=fetched.path, label=fetched.uri, model_name=fetched.name, clean_data=fetched.clean_data)


def _policy(choice: str | None) -> Policy:
    if choice is None:
        return load_builtin_policy(DEFAULT_POLICY)
    if choice in BUILTIN_POLICIES and not Path(choice).exists():
        return load_builtin_policy(choice)
    return load_policy(choice)


def _artifacts_dir(path: Path | None) -> Path | None:
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"cannot create the artifacts folder {path}: {error.strerror}", hint="choose a writable --artifacts DIR"
        ) from None
    return path


def _write(text: str, path: Path | None, *, append: bool = False) -> None:
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with path.open("a" if append else "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as error:
        raise ReportError(
            f"cannot write the report to {path}: {error.strerror}", hint="choose a writable path"
        ) from None


def _tell(results: Sequence[ScanResult], *, quiet: bool) -> None:
    """One line per target that needs attention, on stderr: errors always, blocks and warnings unless --quiet."""
    for result in results:
        if result.status is Status.ERROR and result.error is not None:
            print(f"model-scanner: error: {result.target}: {result.error.message}", file=sys.stderr)
        elif not quiet and result.decision is not None and result.decision.action is not Action.ALLOW:
            print(
                f"model-scanner: {result.decision.action.value}: {result.target}: {result.decision.reasons[0]}",
                file=sys.stderr,
            )


def _detector_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DETECTORS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown detector {', '.join(unknown) or '(none)'}: choose from {', '.join(DETECTORS)}"
        )
    return list(dict.fromkeys(names))


def _time_limit(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= seconds < math.inf:
        raise argparse.ArgumentTypeError(f"expected 0 (no limit) or a positive number of seconds, got {text!r}")
    return seconds


def _channel_values(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one number per channel, comma-separated, got {text!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _positive_channel_values(text: str) -> tuple[float, ...]:
    values = _channel_values(text)
    if not all(value > 0 for value in values):
        raise argparse.ArgumentTypeError(f"every std must be above 0, got {text!r}")
    return values


def _normalization(mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> Normalization | None:
    if mean is None and std is None:
        return None
    if mean is None or std is None or len(mean) != len(std):
        raise UsageError(
            "--mean and --std go together, one value of each per input channel",
            hint="e.g. --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225",
        )
    return Normalization(mean=mean, std=std)


def _value_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    if not low < high:
        raise argparse.ArgumentTypeError(f"LO must be below HI, got {text!r}")
    return (low, high)
