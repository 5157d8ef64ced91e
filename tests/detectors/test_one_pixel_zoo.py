"""The one-pixel detector on really trained models: the cached test zoo (both families, clean and backdoored)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest
from onnx import helper

from scanner.detectors.interface import DetectionContext
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.detectors.one_pixel_signature import SignatureSettings
from scanner.detectors.one_pixel_training import (
    ZooModel,
    artifact_for,
    read_zoo,
)
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
