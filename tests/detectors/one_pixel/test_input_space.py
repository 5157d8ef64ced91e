"""A model that expects ImageNet's per-channel mean/std outside its graph is probed in its own input space.

The network is a really trained test-zoo model; its normalised twin is the same network behind x * std + mean, so it
takes (image - mean) / std. Scanned with that normalisation, every value fed to ONNX Runtime lies in its channel's
own range and reaches both of its ends, and the detector's answer is the plain network's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from scanner.detectors.interface import CleanData, DetectionContext
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.detectors.one_pixel.input_space import to_model_space, to_unit_space
from scanner.findings import InputSpec, Layout, ModelArtifact, Normalization, Status
from scanner.intake import load_model
from scanner.runtime import OnnxClassifier

IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def normalised_twin(artifact: ModelArtifact, path: Path, normalization: Normalization) -> Path:
    """The same network taking (x - mean) / std: its graph first undoes the normalisation (x * std + mean)."""
    model = onnx.load_from_string(artifact.onnx_bytes)
    graph = model.graph
    old = graph.input[0]
    shape = (1, artifact.spec.channels, 1, 1)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(normalization.std, np.float32).reshape(shape), "twin_std"),
            numpy_helper.from_array(np.asarray(normalization.mean, np.float32).reshape(shape), "twin_mean"),
        ]
    )
    spec = artifact.spec
    new = helper.make_tensor_value_info(
        "normalised", onnx.TensorProto.FLOAT, ["n", spec.channels, spec.height, spec.width]
    )
    graph.node.insert(0, helper.make_node("Add", ["twin_scaled", "twin_mean"], [old.name]))
    graph.node.insert(0, helper.make_node("Mul", ["normalised", "twin_std"], ["twin_scaled"]))
    graph.input.remove(old)
    graph.input.insert(0, new)
    onnx.save(model, path)
    return path


def normalised(clean: CleanData, normalization: Normalization) -> CleanData:
    mean = np.asarray(normalization.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(normalization.std, np.float32).reshape(1, -1, 1, 1)
    return CleanData(x=(clean.x - mean) / std, y=clean.y)


def test_unit_and_model_space_are_each_channels_affine_map() -> None:
    spec = InputSpec("x", "y", Layout.NHWC, 3, 2, 2, 10, normalization=IMAGENET)
    unit = np.random.default_rng(0).random((4, 2, 2, 3)).astype(np.float32)
    model_space = to_model_space(unit, spec)
    for channel, (low, high) in enumerate(spec.channel_ranges):
        assert np.allclose(model_space[..., channel], low + unit[..., channel] * (high - low), atol=1e-6)
    assert np.allclose(to_unit_space(model_space, spec), unit, atol=1e-6)


@pytest.mark.parametrize("with_clean_data", [False, True])
def test_a_normalised_model_is_probed_within_each_channels_range(
    shapes_model: tuple[ModelArtifact, CleanData],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_clean_data: bool,
) -> None:
    plain, clean = shapes_model
    twin = load_model(normalised_twin(plain, tmp_path / "twin.onnx", IMAGENET), normalization=IMAGENET)
    fed: list[np.ndarray] = []
    real_run = OnnxClassifier._run

    def recording(self: OnnxClassifier, images: np.ndarray) -> np.ndarray:
        fed.append(np.stack([images.min(axis=(0, 2, 3)), images.max(axis=(0, 2, 3))]))
        return real_run(self, images)

    detector = OnePixelDetector(threads=1)
    plain_context = DetectionContext(clean_data=clean if with_clean_data else None)
    expected = detector.detect(plain, plain_context)
    monkeypatch.setattr(OnnxClassifier, "_run", recording)
    twin_context = DetectionContext(clean_data=normalised(clean, IMAGENET) if with_clean_data else None)
    found = detector.detect(twin, twin_context)

    assert found.status is Status.SCANNED, found.reason
    seen = np.stack(fed)  # (batches, min/max, channels)
    lowest, highest = seen[:, 0].min(axis=0), seen[:, 1].max(axis=0)
    ranges = np.asarray(twin.spec.channel_ranges)
    assert np.all(lowest >= ranges[:, 0] - 1e-4) and np.all(highest <= ranges[:, 1] + 1e-4)
    assert np.allclose(lowest, ranges[:, 0], atol=1e-4) and np.allclose(highest, ranges[:, 1], atol=1e-4)
    # the same network in its own input space: the same evidence, so the same answer
    assert found.forward_passes == expected.forward_passes
    assert found.target_class == expected.target_class
    assert found.score == pytest.approx(expected.score, abs=0.02)


def test_without_its_normalisation_the_twin_is_probed_in_one_range(
    shapes_model: tuple[ModelArtifact, CleanData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the values fed come from --value-range alone, [0, 1], on every channel."""
    plain, _ = shapes_model
    twin = load_model(normalised_twin(plain, tmp_path / "twin.onnx", IMAGENET))
    fed: list[np.ndarray] = []
    real_run = OnnxClassifier._run

    def recording(self: OnnxClassifier, images: np.ndarray) -> np.ndarray:
        fed.append(np.stack([images.min(axis=(0, 2, 3)), images.max(axis=(0, 2, 3))]))
        return real_run(self, images)

    monkeypatch.setattr(OnnxClassifier, "_run", recording)
    assert OnePixelDetector(threads=1).detect(twin, DetectionContext()).status is Status.SCANNED
    seen = np.stack(fed)
    assert np.allclose(seen[:, 0].min(axis=0), 0.0) and np.allclose(seen[:, 1].max(axis=0), 1.0)
