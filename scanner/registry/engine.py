"""The scanner's core, as the registry's workers see it: scan a fetched model version and judge it, render its report.

A thin adapter over `scanner.scan.Scanner`: the registry adds only where the inputs come from (a `clean_sample.npz`
beside the model, producer tags `model_scanner.value_range` / `model_scanner.layout`) and the scan key. The key names
everything that changes a result: the detector versions and their shipped files, the policy, the scanner version, and
the budget (under another budget a detector may run other settings).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from scanner import __version__
from scanner.detectors import shipped_data_digest
from scanner.detectors.interface import Detector
from scanner.errors import UsageError
from scanner.findings import Budget, Layout, ScanResult
from scanner.policy import Policy, PromotionTarget
from scanner.registry.source import FetchedModel
from scanner.scan import DEFAULT_BUDGET, Scanner, ScanOptions, ScanTarget

log = logging.getLogger(__name__)

VALUE_RANGE_TAG = "model_scanner.value_range"  # "LO,HI", e.g. "-1,1"
LAYOUT_TAG = "model_scanner.layout"  # NCHW or NHWC


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
        value_range, layout = input_hints(model.tags)
        options = ScanOptions(
            device=self.device,
            artifacts_dir=artifacts_dir,
            value_range=value_range,
            layout=layout,
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


def input_hints(version_tags: Mapping[str, str]) -> tuple[tuple[float, float] | None, Layout | None]:
    """Value range and layout a producer declared in the version's tags (MLflow records no preprocessing)."""
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
    return value_range, layout


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
