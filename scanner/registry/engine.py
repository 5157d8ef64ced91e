"""The scanner's core, as the registry's workers see it: scan a fetched model version and judge it, render its report.

A thin adapter over `scanner.scan.Scanner`: the registry adds only where the inputs come from (a `clean_sample.npz`
beside the model, producer tags `model_scanner.value_range` / `.layout` / `.mean` / `.std`) and the scan key. The
key names everything that changes a result: the detector versions and their shipped files, the policy, the scanner
version, and the budget (under another budget a detector may run other settings).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner import __version__
from scanner.detectors import shipped_data_digest
from scanner.detectors.interface import Detector
from scanner.errors import UsageError, shortened
from scanner.findings import Budget, Layout, Normalization, ScanResult
from scanner.policy import Policy, PromotionTarget
from scanner.registry.source import FetchedModel
from scanner.scan import DEFAULT_BUDGET, Scanner, ScanOptions, ScanTarget

log = logging.getLogger(__name__)

VALUE_RANGE_TAG = "model_scanner.value_range"  # "LO,HI", e.g. "-1,1"
LAYOUT_TAG = "model_scanner.layout"  # NCHW or NHWC
MEAN_TAG = "model_scanner.mean"  # "R,G,B": one mean per input channel, e.g. "0.485,0.456,0.406"; with STD_TAG
STD_TAG = "model_scanner.std"  # "R,G,B": one std per input channel, each above 0, e.g. "0.229,0.224,0.225"


class CoreScanEngine:
    def __init__(
        self,
        detectors: Sequence[Detector],
        policy: Policy,
        *,
        device: str = "auto",
        max_model_bytes: int | None = None,  # the intake's size limit (None: its default, 1 GiB)
        budget: Budget | None = DEFAULT_BUDGET,  # --budget: for one model's detectors together (None: full settings)
    ) -> None:
        self.detectors = tuple(detectors)
        self.policy = policy
        self.device = device
        self.max_model_bytes = max_model_bytes
        self.budget = budget

    @property
    def policy_label(self) -> str:
        return str(self.policy.label)

    @property
    def key(self) -> str:
        versions = sorted((detector.name, detector.version) for detector in self.detectors)
        return json.dumps(
            {
                "detectors": versions,
                "data": shipped_data_digest(),
                "policy": self.policy.digest,
                "scanner": __version__,
                "budget": budget_label(self.budget),
            }
        )

    def scan(self, model: FetchedModel, artifacts_dir: Path) -> ScanResult:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        # As the command line's --value-range/--layout/--mean/--std: each hint a version carries outranks the policy's
        # inputs for it (only the scanner's token may set them). Malformed mean/std raise UsageError: a scan error.
        hints = input_hints(model.tags)
        options = ScanOptions(
            device=self.device,
            artifacts_dir=artifacts_dir,
            value_range=hints.value_range,
            normalization=hints.normalization,
            layout=hints.layout,
            max_model_bytes=self.max_model_bytes,
            budget=self.budget,
        )
        scanner = Scanner(self.detectors, self.policy, options=options)
        target = ScanTarget(path=model.path, label=model.uri, model_name=model.name, clean_data=model.clean_data)
        return scanner.scan_target(target)

    def judge(self, result: ScanResult) -> ScanResult:
        name = result.target.removeprefix("models:/").rsplit("/", 1)[0]
        return Scanner(self.detectors, self.policy).judge(result, PromotionTarget(name))

    def report(self, result: ScanResult) -> str:
        from scanner.reports import Report
        from scanner.reports.json_report import render_json

        return render_json(Report(results=(result,), policy=self.policy_label, scanner_version=__version__))


def budget_label(budget: Budget | None) -> str:
    """How the engine key spells a budget: '600 s', '150000 passes', or 'none' for full settings always."""
    return "none" if budget is None else str(budget)


@dataclass(frozen=True)
class InputHints:
    """How a producer said to feed a version (its model_scanner.* tags); None where it said nothing usable."""

    value_range: tuple[float, float] | None = None
    layout: Layout | None = None
    normalization: Normalization | None = None


def input_hints(version_tags: Mapping[str, str]) -> InputHints:
    """Value range, layout and per-channel normalisation a producer declared in the version's tags (MLflow records
    no preprocessing). A tag set to an empty value counts as not set.

    A malformed value range or layout is ignored with a warning, as it always was: the scan then takes the policy's
    or the default. A malformed mean or std is the registry's twin of a bad --mean/--std, which the command line
    refuses (a usage error), so it raises `UsageError` here: the worker and `rescan` record it as the version's scan
    error (`scan.error` `usage: ...`), and a fail-closed policy blocks the version. Probing a normalised model outside
    the range it was trained on could miss its backdoor, so a wrong normalisation is not quietly dropped. Refused: a
    mean without a std or the reverse, counts that differ, values that are not numbers, NaN or infinite, and stds
    not above 0. The one check left to the intake is the count against the model's channels (a usage error for
    that model, as on the command line), since the model is only read after this.
    """
    value_range = None
    text = version_tags.get(VALUE_RANGE_TAG)
    if text:
        try:
            low, high = (float(part) for part in text.split(","))
            value_range = (low, high)
        except ValueError:
            log.warning("ignoring tag %s=%r: expected LO,HI", VALUE_RANGE_TAG, text)
    layout = None
    if version_tags.get(LAYOUT_TAG):
        try:
            layout = Layout(version_tags[LAYOUT_TAG].upper())
        except ValueError:
            log.warning("ignoring tag %s=%r: expected NCHW or NHWC", LAYOUT_TAG, version_tags[LAYOUT_TAG])
    return InputHints(value_range=value_range, layout=layout, normalization=normalization_hint(version_tags))


def normalization_hint(version_tags: Mapping[str, str]) -> Normalization | None:
    """The normalisation in the version's model_scanner.mean/std tags, None without either; `UsageError` when they
    are malformed (see `input_hints`)."""
    mean_text, std_text = version_tags.get(MEAN_TAG), version_tags.get(STD_TAG)
    if not mean_text and not std_text:
        return None
    example = f"e.g. {MEAN_TAG}=0.485,0.456,0.406 and {STD_TAG}=0.229,0.224,0.225"
    if not mean_text or not std_text:
        given, missing = (MEAN_TAG, STD_TAG) if mean_text else (STD_TAG, MEAN_TAG)
        raise UsageError(f"tag {given} is set but {missing} is not: they go together", hint=f"set both, {example}")
    mean = _channel_values(MEAN_TAG, mean_text, example)
    std = _channel_values(STD_TAG, std_text, example)
    if len(mean) != len(std):
        raise UsageError(
            f"tag {MEAN_TAG} gives {len(mean)} values but {STD_TAG} gives {len(std)}: one of each per input channel",
            hint=example,
        )
    if not all(value > 0 for value in std):
        raise UsageError(f"tag {STD_TAG}={_shown(std_text)}: every std must be above 0", hint=example)
    return Normalization(mean=mean, std=std)


def _shown(text: str) -> str:
    """A tag's value for a one-line message: quoted, escaped and cut short (it lands in scan.error and the log)."""
    return shortened(repr(text), 100)


def _channel_values(tag: str, text: str, example: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"tag {tag}={_shown(text)}: expected one number per channel, comma-separated", hint=example
        ) from None
    if not all(math.isfinite(value) for value in values):
        raise UsageError(f"tag {tag}={_shown(text)}: expected finite numbers", hint=example)
    return values


def build_engine(
    policy_path: str | None,
    detector_names: Sequence[str] | None = None,
    *,
    device: str = "auto",
    max_model_bytes: int | None = None,
    budget: Budget | None = DEFAULT_BUDGET,
) -> CoreScanEngine:
    """The engine for `serve`: the named detectors (each must load), or every detector that loads here."""
    from scanner.detectors import load_detectors
    from scanner.policy import load_builtin_policy, load_policy

    detectors: list[Detector] = []
    for name, loaded in load_detectors(detector_names).items():
        if isinstance(loaded, str):
            log.warning("detector %s is not available, scanning without it: %s", name, loaded)
        else:
            detectors.append(loaded)
    if not detectors:
        raise UsageError("no detector is available", hint="install model-scanner[torch,cpu]")
    policy = load_policy(policy_path) if policy_path else load_builtin_policy()
    return CoreScanEngine(detectors, policy, device=device, max_model_bytes=max_model_bytes, budget=budget)
