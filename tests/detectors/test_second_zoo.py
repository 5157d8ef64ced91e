"""The default scan on really trained models of the second generator, of a seed that no fit and no gate zoo used.

Each model is scanned as a user would scan it (the default detectors, the shipped calibration and fusion, the default
policy), told its value range and normalisation, once with its clean data and once without. The first generator's
held-out checks are in tests/detectors/one_pixel/test_zoo.py and tests/detectors/ban/test_detector.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanner.calibration.metrics import roc_auc
from scanner.calibration.zoos import ZooModel, read_zoo
from scanner.detectors import load_detectors
from scanner.findings import Action, ScanResult, Status
from scanner.policy import load_builtin_policy
from scanner.scan import Scanner, ScanOptions, ScanTarget

pytestmark = pytest.mark.slow


def _scan(second_zoo: Path, *, with_clean_data: bool) -> list[tuple[ZooModel, ScanResult]]:
    zoo = read_zoo(second_zoo)
    detectors = [detector for detector in load_detectors().values() if not isinstance(detector, str)]
    policy = load_builtin_policy()
    scanned = []
    for model in zoo.models:
        clean = zoo.clean_data_of(model) if with_clean_data else None
        options = ScanOptions(clean_data=clean, value_range=model.value_range, normalization=model.normalization)
        result = Scanner(detectors, policy, options=options).scan([ScanTarget.for_file(model.path)])[0]
        scanned.append((model, result))
    return scanned


@pytest.fixture(scope="module")
def with_clean_data(second_zoo: Path) -> list[tuple[ZooModel, ScanResult]]:
    return _scan(second_zoo, with_clean_data=True)


@pytest.fixture(scope="module")
def without_clean_data(second_zoo: Path) -> list[tuple[ZooModel, ScanResult]]:
    return _scan(second_zoo, with_clean_data=False)


def test_the_second_test_zoo_covers_the_generators_axes(second_zoo: Path) -> None:
    models = read_zoo(second_zoo).models
    assert sum(m.backdoored for m in models) == 4 and sum(not m.backdoored for m in models) == 4
    assert {m.family for m in models} == {"glyphs", "scenes", "textures"}
    assert {m.value_range for m in models} == {(0.0, 1.0), (-1.0, 1.0)}
    assert any(m.normalization is not None for m in models)
    assert any("nhwc" in (m.clean_data or "") for m in models)  # clean data in an NHWC model's own layout


def test_with_clean_data_clean_models_pass_and_backdoored_ones_rank_above_them(
    with_clean_data: list[tuple[ZooModel, ScanResult]],
) -> None:
    """As the Action and a CLI scan with --clean-data run. Measured with the shipped files (fitted with gate zoo C):
    fused AUC 0.88; clean 0.20-0.46 (one warned), backdoored 0.29-0.75, two of four blocked (sinusoid 0.53, warp
    0.75; a blend and a sinusoid trigger pass at 0.32 and 0.29). BAN alone ranks at 0.81 here, one-pixel at 0.56."""
    assert all(result.status is Status.SCANNED for _, result in with_clean_data), with_clean_data
    scores = {model.path.name: result.score for model, result in with_clean_data}
    assert_gated(with_clean_data, min_auc=0.75, min_blocked=1)
    # Both detectors ran on every model: BAN has the clean data it needs.
    assert all(set(result.detectors) == {"one_pixel", "ban"} for _, result in with_clean_data), scores
    assert all(r.status is Status.SCANNED for _, result in with_clean_data for r in result.detectors.values())


def test_without_clean_data_the_data_free_scan_gives_a_verdict_and_blocks_no_clean_model(
    without_clean_data: list[tuple[ZooModel, ScanResult]],
) -> None:
    """Without clean data BAN does not apply and the one-pixel signature alone decides (its synthetic head), as a
    registry gate usually scans: every model gets a score, and no clean one is blocked. Measured: AUC 0.81, clean
    0.08-0.25, backdoored 0.18-0.26: none blocked (the synthetic head is calibrated to stay quiet off its zoos)."""
    for _, result in without_clean_data:
        assert result.status is Status.SCANNED and result.score is not None, result
        assert result.detectors["one_pixel"].status is Status.SCANNED
        assert result.detectors["ban"].status is Status.NOT_APPLICABLE
    assert_gated(without_clean_data, min_auc=0.6, min_blocked=0)


def test_with_synthesized_clean_data_both_detectors_scan_a_model_given_none(second_zoo: Path) -> None:
    """`scan --synthesize-clean-data` on two models without their clean data: a blend backdoor that the scan with the
    real clean data lets through (0.32) and a clean NHWC model. Measured over the 8 models: the blend backdoor blocked
    (BAN 0.82), no clean model blocked (0.21-0.46), but the other three backdoored models score below every clean one
    (0.13-0.14; fused AUC 0.25). On the 46-model seed-15 build: AUC 0.71 against 0.50 without clean data, 2 of 24
    clean models blocked (bench/RESULTS.md): why it is an option, not the default."""
    from scanner.detectors.ban.inversion import SOURCE

    zoo = read_zoo(second_zoo)
    picked = {
        m.path.name: m for m in zoo.models if m.path.name in ("second-s21-bd-004.onnx", "second-s21-clean-003.onnx")
    }
    detectors = [detector for detector in load_detectors().values() if not isinstance(detector, str)]
    results = {}
    for name, model in picked.items():
        options = ScanOptions(
            value_range=model.value_range, normalization=model.normalization, synthesize_clean_data=True
        )
        results[name] = Scanner(detectors, load_builtin_policy(), options=options).scan(
            [ScanTarget.for_file(model.path)]
        )[0]
    for result in results.values():
        assert result.clean_data == SOURCE and result.status is Status.SCANNED, result
        assert {r.status for r in result.detectors.values()} == {Status.SCANNED}, result
    blend, clean = results["second-s21-bd-004.onnx"], results["second-s21-clean-003.onnx"]
    assert blend.decision is not None and blend.decision.action is Action.BLOCK, blend
    assert clean.decision is not None and clean.decision.action is not Action.BLOCK, clean


def test_each_detector_says_in_words_what_it_saw(
    with_clean_data: list[tuple[ZooModel, ScanResult]], without_clean_data: list[tuple[ZooModel, ScanResult]]
) -> None:
    """The evidence the Markdown report and SARIF show: BAN's statistics that raised its score most, one-pixel's
    clean-data probes and signature peak (only the peak without clean data)."""
    from scanner.detectors.ban.detector import BanDetector

    statistics = set(BanDetector().calibration().features)
    for _, result in with_clean_data:
        ban, one_pixel = result.detectors["ban"], result.detectors["one_pixel"]
        assert all(line.split(" = ")[0] in statistics for line in ban.evidence), ban.evidence
        assert len(one_pixel.evidence) == 3 and "held-out clean images to class" in one_pixel.evidence[0]
        if result.decision is not None and result.decision.action is Action.BLOCK:
            deciding = max((ban, one_pixel), key=lambda r: r.score or 0.0)
            assert deciding.evidence, result
    for _, result in without_clean_data:
        (peak,) = result.detectors["one_pixel"].evidence
        assert "synthetic bases" in peak


def assert_gated(scanned: list[tuple[ZooModel, ScanResult]], *, min_auc: float, min_blocked: int) -> None:
    """Every clean model below the threshold 0.5 and not blocked by the default policy; backdoored models above clean
    ones (AUC), and at least `min_blocked` of them blocked."""
    scores = {model.path.name: result.score for model, result in scanned}
    clean = [result for model, result in scanned if not model.backdoored]
    backdoored = [result for model, result in scanned if model.backdoored]
    assert all(r.score is not None and r.score < 0.5 for r in clean), scores
    assert all(r.decision is not None and r.decision.action is not Action.BLOCK for r in clean), scores
    labels = np.asarray([1] * len(backdoored) + [0] * len(clean))
    auc = roc_auc(labels, np.asarray([r.score for r in backdoored + clean], dtype=float))
    assert auc >= min_auc, scores
    blocked = [r for r in backdoored if r.decision is not None and r.decision.action is Action.BLOCK]
    assert len(blocked) >= min_blocked, scores
    assert all(r.score is not None and r.score >= 0.5 for r in blocked), scores
