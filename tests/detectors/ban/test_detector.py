"""BAN from the ONNX artifact: results as values, determinism, and (on the test zoo) a verdict on real models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from scanner.calibration.ban import UNIVERSAL_FEATURES
from scanner.detectors.ban.detector import CPU_THREADS, BanDetector, BanSettings, settings_from
from scanner.detectors.interface import CleanData, DetectionContext
from scanner.errors import DetectorError
from scanner.findings import Budget, BudgetUnit, InputSpec, Layout, ModelArtifact, Status
from tests.torchview.onnx_models import cached_export

# Small enough for a unit test on 2 shared cores; the shipped defaults are measured in bench/RESULTS.md.
QUICK = BanSettings(mask_epochs=1, mask_batches=4, noise_steps=2, probes=2, fit_samples=32, eval_samples=32,
                    universal_steps=2, universal_samples=8, universal_eval_samples=16)  # fmt: skip


def artifact(model: bytes, image_shape: tuple[int, int, int] = (3, 32, 32), input_name: str = "x") -> ModelArtifact:
    channels, height, width = image_shape
    spec = InputSpec(input_name, "logits", Layout.NCHW, channels, height, width, 10)
    return ModelArtifact("model.onnx", hashlib.sha256(model).hexdigest(), model, spec)


def clean_data(count: int = 96, image_shape: tuple[int, int, int] = (3, 32, 32)) -> CleanData:
    return CleanData(np.random.default_rng(5).uniform(0, 1, (count, *image_shape)).astype(np.float32))


def test_without_clean_data_ban_does_not_apply() -> None:
    result = BanDetector(QUICK).detect(artifact(cached_export("norm", (3, 32, 32), "legacy")), DetectionContext())
    assert result.status is Status.NOT_APPLICABLE
    assert result.reason is not None and "clean sample data" in result.reason


def _image_model_with(op_type: str) -> bytes:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["scores"]),
        helper.make_node(op_type, ["scores"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "with_" + op_type,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])],
        [
            numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.normal(size=(4, 10)).astype(np.float32), "fc"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_an_unsupported_operator_gives_not_applicable_naming_it() -> None:
    result = BanDetector(QUICK).detect(
        artifact(_image_model_with("Hardmax")), DetectionContext(clean_data=clean_data())
    )
    assert result.status is Status.NOT_APPLICABLE
    assert result.reason is not None and "Hardmax" in result.reason


def test_the_same_op_with_a_supported_operator_scans() -> None:
    result = BanDetector(QUICK).detect(artifact(_image_model_with("Relu")), DetectionContext(clean_data=clean_data()))
    assert result.status is Status.SCANNED, result.reason
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert result.target_class is not None and 0 <= result.target_class < 10
    assert result.forward_passes is not None and result.forward_passes > 0


@pytest.mark.parametrize(("given", "loaded_with"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_ban_loads_torch_with_passive_openmp_waiting_unless_the_user_chose(given: str | None, loaded_with: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = (
        "import os, sys; from scanner.detectors.ban.detector import import_torch, cpu_threads; "
        "assert 'torch' not in sys.modules; import_torch(); print(os.environ['OMP_WAIT_POLICY'], cpu_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [loaded_with, str(CPU_THREADS if loaded_with == "PASSIVE" else 1)]


@pytest.mark.parametrize(("policy", "threads"), [("PASSIVE", CPU_THREADS), ("ACTIVE", 1), ("", 1)])
def test_ban_takes_its_cpu_threads_only_where_openmp_waits_passively_and_gives_the_count_back(
    monkeypatch: pytest.MonkeyPatch, policy: str, threads: int
) -> None:
    seen: list[int] = []
    statistics = BanDetector.statistics

    def spy(self: BanDetector, *args: object) -> object:
        seen.append(torch.get_num_threads())
        return statistics(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(BanDetector, "statistics", spy)
    monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        result = BanDetector(QUICK).detect(
            artifact(_image_model_with("Relu")), DetectionContext(clean_data=clean_data(), device="cpu")
        )
        assert result.status is Status.SCANNED, result.reason
        assert seen == [threads] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_clean_data_of_the_wrong_shape_is_a_failure_value_not_an_exception() -> None:
    model = artifact(cached_export("norm", (3, 32, 32), "legacy"))
    result = BanDetector(QUICK).detect(model, DetectionContext(clean_data=clean_data(image_shape=(1, 16, 16))))
    assert result.status is Status.ERROR
    assert result.reason is not None and "(1, 16, 16)" in result.reason


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_statistics_are_seeded_and_deterministic(exporter: str) -> None:
    model = artifact(cached_export("norm", (3, 32, 32), exporter))
    detector = BanDetector(QUICK)
    data = clean_data(count=64)
    first = detector.statistics(model, data, DetectionContext(seed=3))
    assert detector.statistics(model, data, DetectionContext(seed=3)) == first
    if exporter == "legacy":
        assert detector.statistics(model, data, DetectionContext(seed=4))[0] != first[0]


def test_cuda_asked_for_without_a_gpu_is_a_failure_value() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model = artifact(cached_export("norm", (3, 32, 32), "legacy"))
    result = BanDetector(QUICK).detect(model, DetectionContext(clean_data=clean_data(), device="cuda"))
    assert result.status is Status.ERROR and result.reason is not None and "CUDA" in result.reason


def test_settings_from_rejects_unknown_names() -> None:
    assert settings_from({"noise_steps": "7"}).noise_steps == 7
    with pytest.raises(DetectorError, match="unknown BAN settings: stepz"):
        settings_from({"stepz": 1})


def _zoo_models(zoo: Path, family: str) -> tuple[Any, CleanData, list[Any]]:
    from scanner.calibration.zoos import read_zoo

    loaded = read_zoo(zoo)
    clean = loaded.clean_data(family)
    assert clean is not None
    return loaded, clean, [m for m in loaded.models if m.family == family]


@pytest.mark.slow
def test_the_shipped_calibration_ranks_held_out_backdoored_models_first_and_blocks_no_clean_one(zoo: Path) -> None:
    """Held out: the test zoo (seed 0) was not among the calibration zoos. The calibration reads only statistics
    that compare a class with the model's others, with its threshold above all but 2% of the calibration zoos'
    out-of-fold clean scores and of the gate zoo's. Measured at the refit on these 14 models (statistics cached
    like `detector train`'s): AUC 0.78, every clean model below 0.5 (0.00-0.15), one backdoored model above (0.71)."""
    from scanner.calibration.ban import default_cache_dir, zoo_statistics
    from scanner.calibration.metrics import roc_auc
    from scanner.calibration.zoos import read_zoo

    loaded = read_zoo(zoo)
    records = zoo_statistics(loaded, BanSettings(), cache_dir=default_cache_dir())
    calibration = BanDetector().calibration()
    scores = np.asarray([calibration.probability(record["statistics"]) for record in records])
    backdoored = np.asarray([m.backdoored for m in loaded.models])
    assert roc_auc(backdoored.astype(int), scores) >= 0.7, scores
    assert (scores[~backdoored] < 0.5).all() and (scores[backdoored] >= 0.5).any(), scores


# What the detector reports beside its score, on really trained models of both families.
@pytest.mark.slow
@pytest.mark.parametrize("family", ["digits16", "shapes32"])
def test_ban_scans_trained_zoo_models_of_both_families(zoo: Path, family: str) -> None:
    from scanner.calibration.zoos import artifact_for

    _, clean, models = _zoo_models(zoo, family)
    model = next(m for m in models if m.backdoored)
    result = BanDetector().detect(artifact_for(model.path), DetectionContext(clean_data=clean))
    assert result.status is Status.SCANNED, result.reason
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert result.target_class is not None and 0 <= result.target_class < 10
    assert result.forward_passes is not None and result.forward_passes > 0
    statistics = result.details["statistics"]
    assert result.target_class == statistics["universal_top_class_r10"]  # the easiest universal perturbation
    pointed_at_once = result.target_class == statistics["noisy_negative_top_class"]
    assert statistics["target_agreement"] == float(pointed_at_once)
    assert 0.0 < statistics["mask_density"] < 1.0 and 0.0 <= statistics["noisy_negative_top_share"] <= 1.0
    universal = [statistics[name] for name in UNIVERSAL_FEATURES]
    assert all(0.0 <= value <= 1.0 for value in universal), universal


@pytest.mark.slow
def test_the_feature_mask_keeps_the_decision_and_its_complement_loses_it(zoo: Path) -> None:
    """The mask step as the reference does it: with the sparsity term divided by its own value the mask neither
    collapses to 0 (as the undivided |m|_1 made it on every model) nor keeps everything, and m*z classifies clean
    inputs far better than (1-m)*z."""
    from scanner.calibration.zoos import artifact_for
    from scanner.detectors.ban.steps import BanModel, Cost, train_mask
    from scanner.torchview import TorchGraph
    from scanner.torchview.anatomy import anatomy_of

    _, clean, models = _zoo_models(zoo, "digits16")
    graph = TorchGraph(artifact_for(next(m for m in models if not m.backdoored).path).onnx_bytes, device="cpu")
    x = torch.from_numpy(np.asarray(clean.x[:256], dtype=np.float32))
    y = torch.from_numpy(np.asarray(clean.y[:256], dtype=np.int64))
    ban = BanModel(graph, anatomy_of(graph, x[:2]), Cost())
    with torch.no_grad():
        z = ban.features(x)
    settings = BanSettings()
    mask = train_mask(ban, x, z, y, epochs=settings.mask_epochs, batches=settings.mask_batches,
                      batch_size=settings.batch_size, lam=settings.lam, generator=torch.Generator().manual_seed(0),
                      progress=lambda: None)  # fmt: skip
    assert 0.05 < float(mask.mean()) < 0.99
    with torch.no_grad():
        kept = float((ban.head(x, mask * z).argmax(1) == y).float().mean())
        lost = float((ban.head(x, (1 - mask) * z).argmax(1) == y).float().mean())
    assert kept > 0.8 and lost < kept - 0.3, (kept, lost)


def test_a_model_expecting_normalised_inputs_scans_as_its_plain_network(zoo: Path, tmp_path: Path) -> None:
    """BAN on the same trained network behind x * std + mean, fed ImageNet-normalised clean data, finds what it finds
    on the plain network (measured: scores within 0.01 on three shapes32 models)."""
    from scanner.calibration.zoos import artifact_for, read_zoo
    from scanner.intake import load_model
    from tests.detectors.one_pixel.test_input_space import IMAGENET, normalised, normalised_twin

    loaded = read_zoo(zoo)
    entry = next(m for m in loaded.models if m.family == "shapes32" and m.attack == "patch")
    clean = loaded.clean_data("shapes32")
    assert clean is not None
    plain = artifact_for(entry.path)
    twin = load_model(normalised_twin(plain, tmp_path / "twin.onnx", IMAGENET), normalization=IMAGENET)

    expected = BanDetector().detect(plain, DetectionContext(clean_data=clean))
    found = BanDetector().detect(twin, DetectionContext(clean_data=normalised(clean, IMAGENET)))

    assert found.status is Status.SCANNED, found.reason
    assert found.target_class == expected.target_class
    assert found.score == pytest.approx(expected.score, abs=0.05)


def test_a_tight_budget_probes_fewer_classes_and_says_so(zoo: Path) -> None:
    from scanner.calibration.zoos import artifact_for, read_zoo

    loaded = read_zoo(zoo)
    entry = next(m for m in loaded.models if m.family == "shapes32" and m.attack == "patch")
    clean = loaded.clean_data("shapes32")
    artifact = artifact_for(entry.path)

    roomy = BanDetector().detect(artifact, DetectionContext(clean_data=clean, budget=Budget(3600.0)))
    tight = BanDetector().detect(artifact, DetectionContext(clean_data=clean, budget=Budget(0.01)))

    assert roomy.details["budget"]["reduced"] is False and len(roomy.details["probed_classes"]) == 10
    assert roomy.details["planned_forward_equivalents"] == roomy.forward_passes
    assert tight.status is Status.SCANNED and tight.score is not None
    budget = tight.details["budget"]
    # The fewest classes, then an eighth of the images (each count at least MIN_SAMPLES).
    assert budget["reduced"] is True and budget["settings"] == {"probed_classes": 2, "sample_share": 0.125}
    assert len(tight.details["probed_classes"]) == 2
    assert tight.forward_passes == budget["planned_forward_equivalents"] < budget["full_forward_equivalents"]
    assert budget["full_forward_equivalents"] == roomy.forward_passes
    assert "universal perturbations for 2 classes, not 10; 0.125 of the images" in budget["note"]


def test_a_budget_of_passes_fits_the_settings_without_timing_and_the_plan_covers_the_work(
    zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without timing the settings cannot depend on the machine; the plan counts every sample the run puts through the
    model and its head, labels from the model included (no `y`)."""
    from scanner.calibration.zoos import artifact_for, read_zoo
    from scanner.detectors.ban import budget as ban_budget

    def untimed(*args: object) -> None:
        raise AssertionError("a budget of passes needs no timing")

    monkeypatch.setattr(ban_budget, "seconds_per_sample", untimed)
    loaded = read_zoo(zoo)
    entry = next(m for m in loaded.models if m.family == "shapes32" and m.attack == "patch")
    clean = loaded.clean_data("shapes32")
    assert clean is not None
    artifact, unlabelled = artifact_for(entry.path), CleanData(clean.x)

    roomy = BanDetector().detect(
        artifact, DetectionContext(clean_data=unlabelled, budget=Budget(1e9, BudgetUnit.PASSES))
    )
    full = roomy.details["budget"]["full_forward_equivalents"]
    tight = BanDetector().detect(
        artifact, DetectionContext(clean_data=unlabelled, budget=Budget(full - 1, BudgetUnit.PASSES))
    )

    for result in (roomy, tight):
        assert result.status is Status.SCANNED, result.reason
        details = result.details
        assert details["planned_forward_equivalents"] >= details["forward_equivalents"] == result.forward_passes
        assert details["planned_head_equivalents"] >= details["head_equivalents"] > 0
        assert details["budget"]["seconds_per_forward"] is None and details["budget"]["planned_seconds"] is None
    assert roomy.details["budget"]["reduced"] is False and len(roomy.details["probed_classes"]) == 10
    assert roomy.details["budget"]["fitted_to"] == "1000000000 passes"
    budget = tight.details["budget"]
    assert budget["reduced"] is True and budget["settings"] == {"probed_classes": 5, "sample_share": 1.0}
    assert tight.forward_passes <= full - 1 < full == roomy.forward_passes
    assert f"to fit a budget of {full - 1} passes: universal perturbations for 5 classes, not 10;" in budget["note"]
    assert "of the images" not in budget["note"]
