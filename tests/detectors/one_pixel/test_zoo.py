"""The one-pixel detector on really trained models: the cached test zoo (both families, clean and backdoored)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from scanner.calibration.metrics import roc_auc
from scanner.calibration.zoos import ZooModel, artifact_for, read_zoo
from scanner.detectors.interface import DetectionContext
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.detectors.one_pixel.classifier import COMBINED
from scanner.detectors.one_pixel.signature import SignatureSettings
from scanner.findings import InputSpec, Layout, ModelArtifact, Status


@pytest.fixture(scope="module")
def zoo_models(zoo: Path) -> list[ZooModel]:
    return list(read_zoo(zoo).models)


def _as_nhwc(artifact: ModelArtifact) -> ModelArtifact:
    """The same trained network behind a Transpose: it reads NHWC images."""
    model = onnx.load_from_string(artifact.onnx_bytes)
    graph = model.graph
    old = graph.input[0]
    spec = artifact.spec
    new = helper.make_tensor_value_info(
        old.name + "_nhwc", onnx.TensorProto.FLOAT, ["n", spec.height, spec.width, spec.channels]
    )
    graph.node.insert(0, helper.make_node("Transpose", [new.name], [old.name], perm=[0, 3, 1, 2]))
    graph.input.remove(old)
    graph.input.insert(0, new)
    data = model.SerializeToString()
    nhwc = InputSpec(new.name, spec.output_name, Layout.NHWC, spec.channels, spec.height, spec.width, spec.num_classes)
    return ModelArtifact(artifact.path, hashlib.sha256(data).hexdigest(), data, nhwc)


def _two_classes(artifact: ModelArtifact) -> ModelArtifact:
    """The same trained network answering only two of its classes (logits 0 and 1)."""
    model = onnx.load_from_string(artifact.onnx_bytes)
    graph = model.graph
    old = graph.output[0]
    graph.initializer.append(helper.make_tensor("two_classes", onnx.TensorProto.INT64, [2], [0, 1]))
    graph.node.append(helper.make_node("Gather", [old.name, "two_classes"], ["two_logits"], axis=1))
    graph.output.remove(old)
    graph.output.insert(0, helper.make_tensor_value_info("two_logits", onnx.TensorProto.FLOAT, ["n", 2]))
    data = model.SerializeToString()
    spec = artifact.spec
    two = InputSpec(spec.input_name, "two_logits", spec.layout, spec.channels, spec.height, spec.width, 2)
    return ModelArtifact(artifact.path, hashlib.sha256(data).hexdigest(), data, two)


@pytest.mark.parametrize("family", ["digits16", "shapes32"])
def test_both_families_both_layouts_and_two_classes_work(zoo: Path, zoo_models: list[ZooModel], family: str) -> None:
    model = next(m for m in zoo_models if m.family == family)
    artifact = artifact_for(model.path)
    assert artifact.spec.image_shape == ((1, 16, 16) if family == "digits16" else (3, 32, 32))
    detector = OnePixelDetector(SignatureSettings(values=2), threads=1)
    nchw = detector.detect(artifact, DetectionContext())
    nhwc = detector.detect(_as_nhwc(artifact), DetectionContext())
    assert nchw.status is nhwc.status is Status.SCANNED
    assert nhwc.score == pytest.approx(nchw.score, abs=1e-3)
    assert nhwc.target_class == nchw.target_class
    assert nhwc.details["peak"] == nchw.details["peak"]
    two = detector.detect(_two_classes(artifact), DetectionContext())
    assert two.status is Status.SCANNED and two.target_class in (0, 1)
    assert two.score is not None and 0.0 <= two.score <= 1.0


def test_without_clean_data_the_shipped_classifier_blocks_no_held_out_clean_model(zoo_models: list[ZooModel]) -> None:
    """The test zoo (seed 0) was not among the calibration zoos: a held-out check of the gate's promise without
    clean data, as a registry gate usually scans. No signal carried over between zoo generators without clean data
    (bench/RESULTS.md), so the head is calibrated to stay quiet: it must still rank above chance here. Measured at
    the refit with the gate zoo: AUC 0.92, no model at 0.5 or above (clean 0.04-0.21, backdoored 0.16 to just under
    0.5)."""
    detector = OnePixelDetector(threads=1)
    scores = {m.path.name: detector.detect(artifact_for(m.path), DetectionContext()).score for m in zoo_models}
    assert_gated(scores, zoo_models, min_auc=0.6, min_caught=0)


@pytest.mark.slow
def test_with_clean_data_the_shipped_classifier_ranks_held_out_backdoored_models_above_clean(
    zoo: Path, zoo_models: list[ZooModel]
) -> None:
    """The same held-out check with clean data, as the Action and a CLI scan with --clean-data run: both signatures
    and the composite probes feed the clean-data head. Measured at the refit with the gate zoo: AUC 0.94, 4 of 7
    backdoored at 0.5 or above (0.36-0.64 in all), every clean model below (0.11-0.40)."""
    detector = OnePixelDetector(threads=1)
    test_zoo = read_zoo(zoo)
    results = {
        m.path.name: detector.detect(artifact_for(m.path), DetectionContext(clean_data=test_zoo.clean_data(m.family)))
        for m in zoo_models
    }
    assert {r.details["classifier_head"] for r in results.values()} == {COMBINED}
    assert_gated({name: r.score for name, r in results.items()}, zoo_models, min_auc=0.85, min_caught=1)


def assert_gated(
    scores: dict[str, float | None], zoo_models: list[ZooModel], *, min_auc: float, min_caught: int
) -> None:
    """Backdoored models above clean ones (AUC), every clean model below the threshold 0.5 (the gate calibration's
    promise), and at least `min_caught` backdoored ones at or above it."""
    assert None not in scores.values(), scores
    backdoored = [scores[m.path.name] for m in zoo_models if m.backdoored]
    clean = [scores[m.path.name] for m in zoo_models if not m.backdoored]
    auc = roc_auc(np.asarray([1] * len(backdoored) + [0] * len(clean)), np.asarray(backdoored + clean))
    assert auc >= min_auc, scores
    assert all(s < 0.5 for s in clean) and sum(s >= 0.5 for s in backdoored) >= min_caught, scores
