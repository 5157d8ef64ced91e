"""The orchestrator with fake detectors and a fake intake (its neighbours); the real ones run in tests/commands/."""

from __future__ import annotations

import dataclasses
import io
import re
import time
from pathlib import Path

import numpy as np
import pytest

from scanner import scan as scan_module
from scanner.detectors.fusion import fuse
from scanner.detectors.interface import DetectionContext, Detector
from scanner.errors import DetectorError, IntakeError, UsageError
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
    Verdict,
)
from scanner.policy import PromotionTarget, load_builtin_policy
from scanner.scan import CleanDataError, Scanner, ScanOptions, ScanTarget, expand_targets, load_clean_data

SPEC = InputSpec("x", "y", Layout.NCHW, 3, 8, 8, 10)


class NotAnImage(IntakeError):
    kind = "not_applicable"


class FakeIntake:
    """Stands in for scanner.intake.load_model: a file's text says what it is."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, tuple[float, float] | None, Layout | None]] = []
        self.normalizations: list[Normalization | None] = []

    def __call__(self, path: Path, *, value_range=None, layout=None, normalization=None) -> ModelArtifact:
        self.calls.append((path, value_range, layout))
        self.normalizations.append(normalization)
        text = path.read_text()
        if text == "tabular":
            raise NotAnImage(f"{path.name} takes a (N, 12) input, not images")
        if text == "broken":
            raise IntakeError(f"{path.name} was cut short", hint="export it again")
        spec = SPEC if normalization is None else dataclasses.replace(SPEC, normalization=normalization)
        return ModelArtifact(str(path), text.ljust(64, "0"), text.encode(), spec)


class Scripted(Detector):
    """Answers a score per model (from the model's bytes), or fails the way it is told."""

    def __init__(self, name: str, scores: dict[str, float], *, fail: Exception | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.version = "1"  # type: ignore[misc]
        self.scores, self.fail = scores, fail
        self.contexts: list[DetectionContext] = []

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        self.contexts.append(context)
        if self.fail is not None:
            raise self.fail
        key = model.onnx_bytes.decode()
        if key not in self.scores:
            return DetectorResult.not_applicable(self.name, "not for this model")
        context.progress(1, 1)
        details = {"heatmap": f"/tmp/{key}.png"} if self.name == "one_pixel" else {}
        return DetectorResult(self.name, Status.SCANNED, score=self.scores[key], target_class=3, details=details)


def write_models(folder: Path, **models: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, content in models.items():
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_text(content)
    return paths


@pytest.fixture
def default_policy():
    return load_builtin_policy("default")


def test_scan_runs_every_detector_fuses_and_judges(tmp_path, default_policy):
    paths = write_models(tmp_path, good="good", evil="evil")
    steps: list[tuple[int, int]] = []
    done: list[tuple[int, int]] = []
    scanner = Scanner(
        [Scripted("one_pixel", {"good": 0.1, "evil": 0.9}), Scripted("ban", {"good": 0.2, "evil": 0.8})],
        default_policy,
        load_model=FakeIntake(),
        on_target=lambda d, t: done.append((d, t)),
        on_step=lambda d, t: steps.append((d, t)),
    )
    good, evil = scanner.scan([ScanTarget.for_file(paths["good"]), ScanTarget.for_file(paths["evil"])])
    assert good.status is Status.SCANNED and good.verdict is Verdict.CLEAN
    assert good.score == pytest.approx(fuse(good.detectors)[0])  # the shipped fusion of 0.1 and 0.2
    assert good.decision is not None and good.decision.action is Action.ALLOW
    assert evil.verdict is Verdict.BACKDOORED and evil.decision is not None and evil.decision.action is Action.BLOCK
    assert set(evil.detectors) == {"one_pixel", "ban"} and evil.detectors["ban"].seconds is not None
    assert evil.artifacts == ("/tmp/evil.png",)
    assert done == [(1, 2), (2, 2)] and len(steps) == 4


def test_a_crashing_detector_is_a_failed_result_that_hides_nothing(tmp_path, default_policy):
    paths = write_models(tmp_path, evil="evil")
    scanner = Scanner(
        [Scripted("one_pixel", {"evil": 0.9}), Scripted("ban", {}, fail=RuntimeError("CUDA out of memory"))],
        default_policy,
        load_model=FakeIntake(),
    )
    (result,) = scanner.scan([ScanTarget.for_file(paths["evil"])])
    assert result.status is Status.SCANNED and result.verdict is Verdict.BACKDOORED
    assert result.detectors["ban"].status is Status.ERROR
    assert result.detectors["ban"].reason == "internal error: RuntimeError: CUDA out of memory"
    assert result.decision is not None and result.decision.action is Action.BLOCK


def test_every_detector_failing_is_an_error_and_fails_closed(tmp_path, default_policy):
    paths = write_models(tmp_path, evil="evil")
    failing = DetectorError("signature classifier missing", hint="reinstall")
    scanner = Scanner([Scripted("one_pixel", {}, fail=failing)], default_policy, load_model=FakeIntake())
    (result,) = scanner.scan([ScanTarget.for_file(paths["evil"])])
    assert result.status is Status.ERROR and result.error is not None and result.error.kind == "detector"
    assert "one_pixel: signature classifier missing (reinstall)" in result.error.message
    assert result.decision is not None and result.decision.rule == "fail-closed"


def test_intake_refusals_become_results(tmp_path, default_policy):
    paths = write_models(tmp_path, tab="tabular", bad="broken")
    scanner = Scanner([Scripted("one_pixel", {})], default_policy, load_model=FakeIntake())
    tab, bad = scanner.scan([ScanTarget.for_file(paths["tab"]), ScanTarget.for_file(paths["bad"])])
    assert tab.status is Status.NOT_APPLICABLE and tab.decision is not None and tab.decision.action is Action.WARN
    assert bad.status is Status.ERROR and bad.error is not None
    assert bad.error.kind == "intake" and bad.error.message == "bad.onnx was cut short (export it again)"
    assert bad.decision is not None and bad.decision.action is Action.BLOCK


def test_all_detectors_not_applicable_means_not_judged(tmp_path, default_policy):
    paths = write_models(tmp_path, odd="odd")
    scanner = Scanner([Scripted("one_pixel", {}), Scripted("ban", {})], default_policy, load_model=FakeIntake())
    (result,) = scanner.scan([ScanTarget.for_file(paths["odd"])])
    assert result.status is Status.NOT_APPLICABLE and result.score is None and result.verdict is Verdict.UNKNOWN


def test_input_settings_come_from_options_else_the_policy(tmp_path, policy_text=None):
    from scanner.policy import load_policy

    policy_path = tmp_path / "p.yaml"
    policy_path.write_text(
        "version: 1\ninputs:\n  - models: ['cam-*']\n    value_range: [-1, 1]\n    layout: NHWC\n"
        "    clean_data: clean.npz\n"
    )
    np.savez(tmp_path / "clean.npz", x=np.zeros((4, 3, 8, 8), np.float32), y=np.arange(4))
    paths = write_models(tmp_path / "m", **{"cam-1": "good", "other": "good"})
    intake, ban = FakeIntake(), Scripted("ban", {"good": 0.1})
    Scanner([ban], load_policy(policy_path), load_model=intake).scan(
        [ScanTarget.for_file(paths["cam-1"]), ScanTarget.for_file(paths["other"])]
    )
    assert [call[1:] for call in intake.calls] == [((-1.0, 1.0), Layout.NHWC), (None, None)]
    assert ban.contexts[0].clean_data is not None and ban.contexts[0].clean_data.y is not None
    assert ban.contexts[1].clean_data is None
    explicit = ScanOptions(value_range=(0.0, 255.0), device="cpu", artifacts_dir=tmp_path)
    Scanner([ban], load_policy(policy_path), load_model=intake, options=explicit).scan(
        [ScanTarget.for_file(paths["cam-1"])]
    )
    assert intake.calls[-1][1:] == ((0.0, 255.0), Layout.NHWC)
    assert ban.contexts[-1].device == "cpu" and ban.contexts[-1].artifacts_dir == tmp_path


def test_the_policys_clean_data_outranks_data_beside_the_model(tmp_path):
    """Who writes a model also writes the data beside it (a registry version's clean_sample.npz, a zoo manifest in a
    pull request): data chosen to hide a backdoor must not replace what the policy's owner chose."""
    from scanner.policy import load_policy

    policy_path = tmp_path / "p.yaml"
    policy_path.write_text("version: 1\ninputs:\n  - models: ['cam-*']\n    clean_data: trusted.npz\n")
    np.savez(tmp_path / "trusted.npz", x=np.zeros((4, 3, 8, 8), np.float32))
    np.savez(tmp_path / "beside.npz", x=np.ones((2, 3, 8, 8), np.float32))
    paths = write_models(tmp_path / "m", **{"cam-1": "good", "other": "good"})
    ban = Scripted("ban", {"good": 0.1})
    targets = [
        dataclasses.replace(ScanTarget.for_file(paths[name]), clean_data=tmp_path / "beside.npz") for name in paths
    ]

    results = Scanner([ban], load_policy(policy_path), load_model=FakeIntake()).scan(targets)

    assert [result.clean_data for result in results] == [str(tmp_path / "trusted.npz"), str(tmp_path / "beside.npz")]
    assert [len(context.clean_data.x) for context in ban.contexts if context.clean_data is not None] == [4, 2]


def test_clean_data_of_the_wrong_shape_is_an_error_for_that_target(tmp_path, default_policy):
    paths = write_models(tmp_path, good="good")
    np.savez(tmp_path / "clean.npz", x=np.zeros((4, 1, 16, 16), np.float32))
    options = ScanOptions(clean_data=load_clean_data(tmp_path / "clean.npz"))
    scanner = Scanner([Scripted("ban", {"good": 0.1})], default_policy, load_model=FakeIntake(), options=options)
    (result,) = scanner.scan([ScanTarget.for_file(paths["good"])])
    assert result.status is Status.ERROR and result.error is not None and result.error.kind == "clean_data"
    assert "(1, 16, 16)" in result.error.message and "(3, 8, 8)" in result.error.message


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"images": np.zeros((2, 3, 8, 8))}, "has no array named x"),
        ({"x": np.zeros((2, 8, 8))}, "x must be a non-empty numeric array"),
        ({"x": np.zeros((2, 3, 8, 8)), "y": np.zeros(3)}, "y must hold one integer label per image"),
        ({"x": np.array([{"a": 1}, {}], dtype=object)}, "cannot read clean data"),
    ],
)
def test_bad_clean_data_is_refused_with_a_reason(tmp_path, arrays, expected):
    np.savez(tmp_path / "c.npz", **arrays)
    with pytest.raises(CleanDataError, match=expected):
        load_clean_data(tmp_path / "c.npz")


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not an archive at all", r"is not an \.npz file \(not a zip archive\)"),
        (b"\x93NUMPY" + b"\0" * 40, r"is not an \.npz file \(a single \.npy array\)"),
        (_npz_bytes(x=np.zeros((2, 3, 8, 8), np.float32))[:60], "cannot read clean data"),  # truncated
        (_npz_bytes(x=np.full((2, 3, 8, 8), np.nan, np.float32)), "2 of 2 images hold NaN or infinite values"),
    ],
    ids=["garbage", "npy", "truncated", "nan"],
)
def test_unreadable_or_broken_clean_data_is_refused_with_a_reason(tmp_path, content, expected):
    (tmp_path / "c.npz").write_bytes(content)
    with pytest.raises(CleanDataError, match=expected):
        load_clean_data(tmp_path / "c.npz")


def test_clean_data_over_the_size_bound_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "c.npz", x=np.zeros((64, 3, 8, 8), np.float32))
    monkeypatch.setattr(scan_module, "MAX_CLEAN_DATA_BYTES", 1000)
    with pytest.raises(CleanDataError, match=r"unpacks to .* MiB, over the .* MiB a scan reads"):
        load_clean_data(tmp_path / "c.npz")


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (np.full((4, 3, 8, 8), 255.0), None, r"spans \[255, 255\], but .* takes values in \[0, 1\]"),
        (np.full((4, 3, 8, 8), -0.2), None, r"spans \[-0.2, -0.2\]"),
        (np.full((4, 3, 8, 8), 0.5), np.array([0, 3, 10, 1]), "labels from 0 to 10, but .* has 10 classes"),
        (np.full((4, 3, 8, 8), 0.5), np.array([0, -1, 2, 1]), "labels from -1 to 2"),
        (np.full((4, 3, 8, 8), 1.04), np.array([0, 9, 2, 1]), None),  # within the slack, labels in range
    ],
    ids=["0-255", "below-0", "label-too-high", "negative-label", "within-slack"],
)
def test_clean_data_on_another_scale_or_with_foreign_labels_is_an_error_for_that_target(
    tmp_path, default_policy, x, y, expected
):
    """BAN indexes classes by the labels and the one-pixel probes span the value range: data that does not fit
    the model would give a wrong verdict, not an error, if it were let through."""
    paths = write_models(tmp_path, good="good")
    arrays = {"x": x.astype(np.float32)} | ({} if y is None else {"y": y.astype(np.int64)})
    np.savez(tmp_path / "clean.npz", **arrays)
    options = ScanOptions(clean_data=load_clean_data(tmp_path / "clean.npz"))
    scanner = Scanner([Scripted("ban", {"good": 0.1})], default_policy, load_model=FakeIntake(), options=options)
    (result,) = scanner.scan([ScanTarget.for_file(paths["good"])])
    if expected is None:
        assert result.status is Status.SCANNED
    else:
        assert result.status is Status.ERROR and result.error is not None and result.error.kind == "clean_data"
        assert re.search(expected, result.error.message), result.error.message


def test_the_budget_is_shared_evenly_between_the_detectors(tmp_path, default_policy):
    paths = write_models(tmp_path, good="good")
    one, two = Scripted("one_pixel", {"good": 0.1}), Scripted("ban", {"good": 0.1})
    Scanner([one, two], default_policy, load_model=FakeIntake()).scan([ScanTarget.for_file(paths["good"])])
    assert one.contexts[0].budget == two.contexts[0].budget == Budget(scan_module.DEFAULT_BUDGET_S / 2)
    in_passes = ScanOptions(budget=Budget(100_000, BudgetUnit.PASSES))
    Scanner([one, two], default_policy, load_model=FakeIntake(), options=in_passes).scan(
        [ScanTarget.for_file(paths["good"])]
    )
    assert one.contexts[-1].budget == Budget(50_000, BudgetUnit.PASSES)
    unbounded = ScanOptions(budget=None)
    Scanner([one], default_policy, load_model=FakeIntake(), options=unbounded).scan(
        [ScanTarget.for_file(paths["good"])]
    )
    assert one.contexts[-1].budget is None


IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_a_normalisation_comes_from_options_else_the_policy_and_is_recorded(tmp_path):
    from scanner.policy import load_policy

    policy_path = tmp_path / "p.yaml"
    policy_path.write_text(
        "version: 1\ninputs:\n  - models: ['cam-*']\n    mean: [0.5, 0.5, 0.5]\n    std: [0.5, 0.5, 0.5]\n"
    )
    paths = write_models(tmp_path / "m", **{"cam-1": "good", "other": "good"})
    intake = FakeIntake()
    results = Scanner([Scripted("ban", {"good": 0.1})], load_policy(policy_path), load_model=intake).scan(
        [ScanTarget.for_file(paths["cam-1"]), ScanTarget.for_file(paths["other"])]
    )
    half = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert intake.normalizations == [half, None]
    assert results[0].normalization == half and results[0].channel_ranges == ((-1.0, 1.0),) * 3
    assert results[1].normalization is None and results[1].channel_ranges == ()
    explicit = ScanOptions(normalization=IMAGENET)
    Scanner([Scripted("ban", {"good": 0.1})], load_policy(policy_path), load_model=intake, options=explicit).scan(
        [ScanTarget.for_file(paths["cam-1"])]
    )
    assert intake.normalizations[-1] == IMAGENET


def test_clean_data_must_fit_each_channels_normalised_range(tmp_path, default_policy):
    """Images past one channel's range are on the wrong scale, even inside the others' (channel 2 reaches 2.64,
    channel 0 only 2.25); normalised images fit."""
    paths = write_models(tmp_path, good="good")
    raw = np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    mean = np.asarray(IMAGENET.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(IMAGENET.std, np.float32).reshape(1, 3, 1, 1)
    outcomes = []
    past_channel_0 = (raw - mean) / std
    past_channel_0[:, 0] = 2.5
    for x in (past_channel_0, (raw - mean) / std):
        options = ScanOptions(clean_data=scan_module.CleanData(x=x), normalization=IMAGENET)
        scanner = Scanner([Scripted("ban", {"good": 0.1})], default_policy, load_model=FakeIntake(), options=options)
        outcomes.append(scanner.scan([ScanTarget.for_file(paths["good"])])[0])
    wrong, right = outcomes
    assert wrong.status is Status.ERROR and wrong.error is not None and wrong.error.kind == "clean_data"
    assert (
        "but channel 0 of" in wrong.error.message and "takes values in [-2.11790, 2.24891]" not in wrong.error.message
    )
    assert re.search(r"channel 0 of .* takes values in \[-2.1179, 2.24891\]", wrong.error.message), wrong.error.message
    assert right.status is Status.SCANNED


def test_expand_targets_turns_unlistable_targets_into_error_results(tmp_path):
    write_models(tmp_path / "dir", a="good")
    (tmp_path / "empty").mkdir()

    def find(target: Path) -> list[Path]:
        if not target.exists():
            raise IntakeError(f"{target} does not exist")
        return sorted(target.rglob("*.onnx")) if target.is_dir() else [target]

    found = expand_targets([str(tmp_path / "dir"), str(tmp_path / "nope"), str(tmp_path / "empty")], find)
    assert isinstance(found[0], ScanTarget) and found[0].model_name == "a"
    assert isinstance(found[1], ScanResult) and found[1].status is Status.ERROR and found[1].error is not None
    assert isinstance(found[2], ScanResult) and found[2].error is not None and found[2].error.kind == "no_models"
    results = Scanner([], load_builtin_policy("default"), load_model=FakeIntake()).scan(found[1:])
    assert all(r.decision is not None and r.decision.action is Action.BLOCK for r in results)


def test_a_registry_target_is_judged_for_its_promotion(tmp_path, default_policy):
    paths = write_models(tmp_path, evil="evil")
    target = ScanTarget(paths["evil"], "models:/fraud/3", "fraud")
    scanner = Scanner([Scripted("one_pixel", {"evil": 0.9})], default_policy, load_model=FakeIntake())
    staged = scanner.scan_target(target, PromotionTarget("fraud", stage="Staging"))
    assert staged.target == "models:/fraud/3" and staged.decision is not None and staged.decision.action is Action.ALLOW
    assert scanner.scan_target(target).decision.action is Action.BLOCK  # type: ignore[union-attr]


def test_the_same_detector_twice_is_refused(default_policy):
    with pytest.raises(UsageError):
        Scanner([Scripted("ban", {}), Scripted("ban", {})], default_policy, load_model=FakeIntake())


class Endless(Detector):
    """Reports progress for ever, as a detector on a model far too big for the machine would."""

    name = "ban"
    version = "1"

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        done = 0
        while True:
            done += 1
            context.progress(done, done + 1)
            time.sleep(0.01)


def test_a_scan_past_its_time_limit_is_an_error_and_blocked(tmp_path, default_policy):
    """Every detector reports progress between batches: the scanner's progress stops one that runs past the model's
    time limit, and the model, unscanned, is blocked by a fail-closed policy."""
    paths = write_models(tmp_path, good="good")
    steps: list[tuple[int, int]] = []
    options = ScanOptions(time_limit_s=0.2)
    scanner = Scanner(
        [Endless(), Scripted("one_pixel", {"good": 0.1})],
        default_policy,
        load_model=FakeIntake(),
        options=options,
        on_step=lambda done, total: steps.append((done, total)),
    )
    started = time.monotonic()
    (result,) = scanner.scan([ScanTarget.for_file(paths["good"])])
    assert time.monotonic() - started < 5 and steps  # it ran, then it was stopped
    ban = result.detectors["ban"]
    assert ban.status is Status.ERROR and ban.reason is not None and "time limit of 0.2 s" in ban.reason
    # The deadline is the model's, not each detector's: the next detector starts past it and stops at once.
    assert result.detectors["one_pixel"].status is Status.ERROR
    assert result.status is Status.ERROR and result.decision is not None and result.decision.action is Action.BLOCK
