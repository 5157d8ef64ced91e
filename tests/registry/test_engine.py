"""The registry engine: its key (everything that changes a scan's result, the budget included) and the producer's
input hints (model_scanner.* tags) it scans with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanner.detectors.interface import DetectionContext, Detector
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.errors import UsageError
from scanner.findings import (
    Action,
    Budget,
    BudgetUnit,
    DetectorResult,
    InputSpec,
    Layout,
    ModelArtifact,
    Normalization,
    ScanResult,
    Status,
)
from scanner.policy.loader import load_builtin_policy, load_policy
from scanner.registry.engine import (
    LAYOUT_TAG,
    MEAN_TAG,
    STD_TAG,
    VALUE_RANGE_TAG,
    CoreScanEngine,
    InputHints,
    input_hints,
)
from scanner.registry.scan_key import input_hint_tags, scan_key
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


IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
IMAGENET_TAGS = {MEAN_TAG: "0.485,0.456,0.406", STD_TAG: "0.229,0.224,0.225"}


class Probe(Detector):
    """Records the input space each model was handed in, and finds nothing."""

    name = "probe"
    version = "1"

    def __init__(self) -> None:
        self.specs: list[InputSpec] = []

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        self.specs.append(model.spec)
        return DetectorResult(self.name, Status.SCANNED, score=0.1)


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real ONNX classifier of 8x8 RGB images (NCHW), 10 classes."""
    from tests.intake.builders import save, tiny_cnn

    return save(tiny_cnn(channels=3, height=8, width=8, classes=10), tmp_path_factory.mktemp("models") / "rgb.onnx")


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, None),
        (IMAGENET_TAGS, IMAGENET),
        ({MEAN_TAG: " 0.5, 0.5,0.5 ", STD_TAG: "0.5 ,0.5,0.5"}, Normalization((0.5,) * 3, (0.5,) * 3)),
        ({MEAN_TAG: "0.5", STD_TAG: "0.25"}, Normalization((0.5,), (0.25,))),
        ({MEAN_TAG: "-1e-3,0,1", STD_TAG: "1e-3,2,3"}, Normalization((-0.001, 0.0, 1.0), (0.001, 2.0, 3.0))),
        ({MEAN_TAG: "", STD_TAG: ""}, None),  # set to empty: not set, as the other hints
    ],
    ids=["none", "imagenet", "spaces", "grey", "exponents", "empty"],
)
def test_mean_and_std_tags_are_read_as_a_normalisation(tags: dict[str, str], expected: Normalization | None) -> None:
    hints = input_hints({VALUE_RANGE_TAG: "0,255", LAYOUT_TAG: "nhwc", "team": "vision", **tags})
    assert hints == InputHints(value_range=(0.0, 255.0), layout=Layout.NHWC, normalization=expected)


@pytest.mark.parametrize(
    ("tags", "said"),
    [
        ({MEAN_TAG: "0.485,0.456,0.406"}, "model_scanner.mean is set but model_scanner.std is not"),
        ({STD_TAG: "0.229,0.224,0.225", MEAN_TAG: ""}, "model_scanner.std is set but model_scanner.mean is not"),
        (
            {MEAN_TAG: "0.5,0.5,0.5", STD_TAG: "0.5,0.5"},
            "model_scanner.mean gives 3 values but model_scanner.std gives 2",
        ),
        ({MEAN_TAG: "0.5;0.5;0.5", STD_TAG: "0.5,0.5,0.5"}, "model_scanner.mean='0.5;0.5;0.5': expected one number"),
        ({MEAN_TAG: "0.5,,0.5", STD_TAG: "0.5,0.5,0.5"}, "model_scanner.mean='0.5,,0.5': expected one number"),
        ({MEAN_TAG: "r,g,b", STD_TAG: "0.5,0.5,0.5"}, "model_scanner.mean='r,g,b': expected one number"),
        ({MEAN_TAG: "nan,0.5,0.5", STD_TAG: "0.5,0.5,0.5"}, "model_scanner.mean='nan,0.5,0.5': expected finite"),
        ({MEAN_TAG: "0.5,0.5,0.5", STD_TAG: "0.5,inf,0.5"}, "model_scanner.std='0.5,inf,0.5': expected finite"),
        ({MEAN_TAG: "0.5,0.5,0.5", STD_TAG: "0.5,0,0.5"}, "model_scanner.std='0.5,0,0.5': every std must be above 0"),
        ({MEAN_TAG: "0.5,0.5,0.5", STD_TAG: "0.5,-0.2,0.5"}, "every std must be above 0"),
        ({MEAN_TAG: "0.5\nscan.verdict=clean", STD_TAG: "0.5"}, "model_scanner.mean='0.5\\nscan.verdict=clean'"),
    ],
    ids=[
        "mean-only",
        "std-only",
        "counts",
        "separator",
        "gap",
        "words",
        "nan",
        "inf",
        "zero-std",
        "negative-std",
        "newline",
    ],
)
def test_a_malformed_mean_or_std_tag_is_a_usage_error_as_on_the_command_line(tags: dict[str, str], said: str) -> None:
    with pytest.raises(UsageError) as refused:
        input_hints(tags)
    assert refused.value.kind == "usage"
    assert said in refused.value.one_line() and "\n" not in refused.value.one_line()
    assert "model_scanner.mean=0.485,0.456,0.406" in refused.value.one_line()  # the hint shows a good pair


def test_a_malformed_value_range_or_layout_is_still_only_ignored(caplog: pytest.LogCaptureFixture) -> None:
    hints = input_hints({VALUE_RANGE_TAG: "0..1", LAYOUT_TAG: "CHW", **IMAGENET_TAGS})
    assert hints == InputHints(normalization=IMAGENET)
    assert (
        "ignoring tag model_scanner.value_range" in caplog.text and "ignoring tag model_scanner.layout" in caplog.text
    )


def test_a_version_tagged_with_mean_and_std_is_probed_in_its_own_input_space(tmp_path: Path, rgb_model: Path) -> None:
    probe = Probe()
    engine = CoreScanEngine([probe], load_builtin_policy(), budget=None)
    tags = {VALUE_RANGE_TAG: "0,1", **IMAGENET_TAGS}
    result = engine.scan(FetchedModel(rgb_model, None, "rgb", "1", tags=tags), tmp_path / "artifacts")

    assert result.status is Status.SCANNED and result.error is None
    expected_ranges = tuple(((0 - m) / s, (1 - m) / s) for m, s in zip(IMAGENET.mean, IMAGENET.std, strict=True))
    assert probe.specs[-1].normalization == IMAGENET
    assert probe.specs[-1].channel_ranges == expected_ranges
    assert result.normalization == IMAGENET and result.channel_ranges == expected_ranges
    (entry,) = json.loads(engine.report(result))["results"]
    assert entry["normalization"]["mean"] == list(IMAGENET.mean) and entry["normalization"]["std"] == list(IMAGENET.std)
    assert entry["normalization"]["channel_ranges"] == [list(pair) for pair in expected_ranges]

    # Without the tags the same version is probed on [0, 1] unnormalised, and the report says nothing of it.
    plain = engine.scan(FetchedModel(rgb_model, None, "rgb", "1"), tmp_path / "artifacts")
    assert probe.specs[-1].normalization is None and probe.specs[-1].channel_ranges == ((0.0, 1.0),) * 3
    assert plain.normalization is None and "normalization" not in json.loads(engine.report(plain))["results"][0]


def test_the_tags_outrank_the_policys_inputs_as_the_command_line_does(tmp_path: Path, rgb_model: Path) -> None:
    policy_path = tmp_path / "p.yaml"
    policy_path.write_text(
        "version: 1\ninputs:\n  - models: ['rgb']\n    value_range: [-1, 1]\n"
        "    mean: [0.5, 0.5, 0.5]\n    std: [0.5, 0.5, 0.5]\n"
    )
    probe = Probe()
    engine = CoreScanEngine([probe], load_policy(policy_path), budget=None)
    engine.scan(FetchedModel(rgb_model, None, "rgb", "1"), tmp_path / "a")
    assert probe.specs[-1].normalization == Normalization((0.5,) * 3, (0.5,) * 3)
    assert probe.specs[-1].channel_ranges == ((-3.0, 1.0),) * 3
    # Each hint stands for itself: the tags' normalisation, the policy's value range.
    engine.scan(FetchedModel(rgb_model, None, "rgb", "2", tags=IMAGENET_TAGS), tmp_path / "a")
    assert probe.specs[-1].normalization == IMAGENET and probe.specs[-1].value_range == (-1.0, 1.0)


def test_a_malformed_or_misfitting_normalisation_tag_is_a_scan_error(tmp_path: Path, rgb_model: Path) -> None:
    probe = Probe()
    engine = CoreScanEngine([probe], load_builtin_policy(), budget=None)
    with pytest.raises(UsageError, match=r"model_scanner\.std"):
        engine.scan(FetchedModel(rgb_model, None, "rgb", "1", tags={MEAN_TAG: "0.5,0.5,0.5"}), tmp_path / "a")
    # Well formed but for one channel, on a model of three: the intake's usage error, as --mean 0.5 --std 0.5 gets.
    grey = {MEAN_TAG: "0.5", STD_TAG: "0.5"}
    result = engine.scan(FetchedModel(rgb_model, None, "rgb", "1", tags=grey), tmp_path / "a")
    assert result.status is Status.ERROR and result.error is not None and result.error.kind == "usage"
    assert "1 channels' mean and std, but rgb.onnx takes 3 channels" in result.error.message
    assert result.decision is not None and result.decision.action is Action.BLOCK  # the default policy fails closed
    assert probe.specs == []


def test_mean_and_std_tags_are_in_the_scan_key_and_recorded_as_the_scans_inputs() -> None:
    engine_key = CoreScanEngine([OnePixelDetector()], load_builtin_policy()).key
    other = {MEAN_TAG: "0.5,0.5,0.5", STD_TAG: "0.5,0.5,0.5"}
    keys = {
        scan_key("d" * 64, engine_key, {}),
        scan_key("d" * 64, engine_key, IMAGENET_TAGS),
        scan_key("d" * 64, engine_key, other),
        scan_key("d" * 64, engine_key, {**IMAGENET_TAGS, STD_TAG: "0.229,0.224,0.226"}),
    }
    assert len(keys) == 4
    assert scan_key("d" * 64, engine_key, {**IMAGENET_TAGS, "team": "x"}) == scan_key(
        "d" * 64, engine_key, IMAGENET_TAGS
    )
    # scan.inputs is this, as JSON: the hints the scan was made with.
    assert input_hint_tags({**IMAGENET_TAGS, VALUE_RANGE_TAG: "0,1", "team": "x"}) == {
        MEAN_TAG: "0.485,0.456,0.406",
        VALUE_RANGE_TAG: "0,1",
        STD_TAG: "0.229,0.224,0.225",
    }
