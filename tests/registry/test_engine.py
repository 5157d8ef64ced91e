"""The registry engine's key: everything that changes a scan's result, the budget included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanner.detectors.one_pixel import OnePixelDetector
from scanner.findings import Budget, BudgetUnit, ScanResult, Status
from scanner.policy.loader import load_builtin_policy
from scanner.registry.engine import CoreScanEngine
from scanner.registry.scan_key import scan_key
from scanner.registry.source import FetchedModel
from scanner.scan import DEFAULT_BUDGET_S, ScanOptions, ScanTarget


def test_the_engine_key_names_the_budget_so_a_scan_under_another_is_another_scan() -> None:
    policy = load_builtin_policy()

    def engine(**budget: Budget | None) -> CoreScanEngine:
        return CoreScanEngine([OnePixelDetector()], policy, **budget)  # type: ignore[arg-type]

    assert json.loads(engine().key)["budget"] == f"{DEFAULT_BUDGET_S:g} s"
    keys = {
        engine().key,
        engine(budget=Budget(120)).key,
        engine(budget=Budget(150_000, BudgetUnit.PASSES)).key,
        engine(budget=None).key,
    }
    assert len(keys) == 4
    assert json.loads(engine(budget=Budget(150_000, BudgetUnit.PASSES)).key)["budget"] == "150000 passes"
    assert json.loads(engine(budget=None).key)["budget"] == "none"
    assert engine(budget=Budget(120)).key == engine(budget=Budget(120)).key
    # serve's workers scan a version once per scan key: another budget is another key.
    assert scan_key("d" * 64, engine().key, {}) != scan_key("d" * 64, engine(budget=Budget(120)).key, {})


def test_the_engine_scans_under_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.registry import engine as engine_module

    seen: list[ScanOptions] = []

    class Recording:
        def __init__(self, detectors: object, policy: object, *, options: ScanOptions) -> None:
            seen.append(options)

        def scan_target(self, target: ScanTarget) -> ScanResult:
            return ScanResult(target.label, None, Status.SCANNED)

    monkeypatch.setattr(engine_module, "Scanner", Recording)
    budget = Budget(9, BudgetUnit.PASSES)
    engine = CoreScanEngine([OnePixelDetector()], load_builtin_policy(), budget=budget)
    engine.scan(FetchedModel(tmp_path / "m.onnx", None, "cnn", "1"), tmp_path / "artifacts")
    assert [options.budget for options in seen] == [budget]
