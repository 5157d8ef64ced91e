"""Composite probes on real ONNX models: a class's strongest signature cells, set together on held-out images, and
the whole image blended toward the class's best values."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from scanner import runtime
from scanner.detectors.interface import CleanData
from scanner.detectors.one_pixel.composite import (
    BLENDS,
    COMPOSITE_FEATURE_NAMES,
    FRACTIONS,
    MAX_CLASSES,
    composite_answers,
    composite_features,
    composite_rates,
    held_out_images,
    rates_of,
    strongest_composite,
)
from scanner.detectors.one_pixel.signature import SignatureSettings, signature_for
from scanner.findings import InputSpec, Layout, ModelArtifact
from scanner.runtime import OnnxClassifier
from tests.detectors.one_pixel.pixel_readers import RecordingModel, pixel_reader


@pytest.mark.parametrize("layout", [Layout.NCHW, Layout.NHWC])
@pytest.mark.parametrize("scale", [1, 2])
def test_each_class_composite_sets_the_cell_its_class_reads(layout: Layout, scale: int) -> None:
    """Class k of the reader answers to one pixel: its composite of a single cell (the smallest fraction of 8x8)
    sets that pixel high, and every image of another class goes to k. The images are dark, so no class leads."""
    artifact, _ = pixel_reader(3, 8, 8, 4, layout=layout, seed=5)
    runner = OnnxClassifier(artifact, threads=1)
    rng = np.random.default_rng(0)
    shape = artifact.spec.image_shape
    bases = rng.uniform(0.0, 0.1, (2, *shape)).astype(np.float32)
    images = rng.uniform(0.0, 0.1, (12, *shape)).astype(np.float32)
    signature = signature_for(runner, bases, SignatureSettings(values=3), scale=scale)
    rates = composite_rates(runner, signature, images)
    assert rates.to_class.shape == rates.changed.shape == (len(FRACTIONS), 4)
    np.testing.assert_array_equal(rates.to_class[0], np.ones(4))
    assert rates.blend_to_class.shape == rates.blend_changed.shape == (len(BLENDS), 4)
    assert rates.forward_passes == len(images) * (1 + (len(FRACTIONS) + len(BLENDS)) * 4) and rates.images == 12
    features = composite_features(rates)
    assert features.shape == (len(COMPOSITE_FEATURE_NAMES),) and np.isfinite(features).all()
    reported = strongest_composite(rates, signature)
    assert (
        reported["share_of_images_sent"] == 1.0 and reported["pixels"] == max(1, round(0.02 * 64 / scale**2)) * scale**2
    )


def test_a_class_whose_pixel_is_left_alone_gets_no_images() -> None:
    """Without a signature that points at class 0's pixel, its composite misses it: the rate is a real count."""
    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=1)
    runner = OnnxClassifier(artifact, threads=1)
    images = np.full((6, 1, 8, 8), 0.05, dtype=np.float32)
    signature = signature_for(runner, images[:1], SignatureSettings(values=3))
    blind = replace(signature, log_increase=signature.log_increase[:, ::-1].copy())  # class 0 gets 2's map
    rates = composite_rates(runner, blind, images)
    assert rates.to_class[0, 0] == 0.0 and rates.to_class[0, 1] == 1.0


def test_held_out_images_leave_the_bases_out() -> None:
    x = np.arange(10 * 4, dtype=np.float32).reshape(10, 1, 2, 2)
    held = held_out_images(CleanData(x=x), x[[0, 3]], count=64)
    assert len(held) == 8 and not any((held == x[i]).all(axis=(1, 2, 3)).any() for i in (0, 3))
    assert len(held_out_images(CleanData(x=x), x, count=4)) == 4  # all of them bases: use them anyway
    np.testing.assert_array_equal(
        held_out_images(CleanData(x=x), x[:2], count=3, seed=1), held_out_images(CleanData(x=x), x[:2], count=3, seed=1)
    )


def test_a_model_with_many_classes_is_probed_on_its_strongest_classes_only() -> None:
    """20 classes, of which the 16 whose pixels the signature finds are probed: the cost is bounded by MAX_CLASSES."""
    artifact, _ = pixel_reader(1, 8, 8, 20, layout=Layout.NCHW, seed=2)
    runner = OnnxClassifier(artifact, threads=1)
    images = np.full((5, 1, 8, 8), 0.05, dtype=np.float32)
    signature = signature_for(runner, images[:1], SignatureSettings(values=3))
    weak = signature.log_increase.copy()
    weak[:, :4] *= 0.01  # classes 0-3 rise least
    rates = composite_rates(runner, replace(signature, log_increase=weak), images)
    np.testing.assert_array_equal(rates.classes, np.arange(4, 20))
    assert rates.to_class.shape == (len(FRACTIONS), MAX_CLASSES)
    assert rates.forward_passes == len(images) * (1 + (len(FRACTIONS) + len(BLENDS)) * MAX_CLASSES)
    assert strongest_composite(rates, signature)["class"] >= 4


def test_cached_composite_rates_come_back_the_same(tmp_path: Path) -> None:
    from scanner.calibration.one_pixel import cached_composite_rates

    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=4)
    images = np.random.default_rng(1).uniform(0.0, 0.1, (6, 1, 8, 8)).astype(np.float32)
    signature = signature_for(OnnxClassifier(artifact, threads=1), images[:2], SignatureSettings(values=3))
    computed = cached_composite_rates(artifact, signature, images, tmp_path)
    assert len(list(tmp_path.glob("*-composite.npz"))) == 1
    cached = cached_composite_rates(artifact, signature, images, tmp_path)
    for name in ("classes", "to_class", "changed", "blend_to_class", "blend_changed"):
        np.testing.assert_array_equal(getattr(cached, name), getattr(computed, name))
    assert (cached.images, cached.forward_passes) == (computed.images, computed.forward_passes) == (6, 6 * 31)


def test_rates_over_a_subset_of_the_answers_are_the_rates_on_those_images() -> None:
    """What the composite-images benchmark relies on: counting a subset of one run's answers is the same as running
    the composites on that subset alone."""
    artifact, _ = pixel_reader(3, 8, 8, 4, layout=Layout.NHWC, seed=6)
    runner = OnnxClassifier(artifact, threads=1)
    images = np.random.default_rng(2).uniform(0.0, 1.0, (30, 8, 8, 3)).astype(np.float32)
    signature = signature_for(runner, images[:2], SignatureSettings(values=3))
    answers = composite_answers(runner, signature, images)
    subset = np.array([1, 4, 5, 9, 17, 22, 29])
    counted, direct = rates_of(answers, subset), composite_rates(runner, signature, images[subset])
    for name in ("classes", "to_class", "changed", "blend_to_class", "blend_changed"):
        np.testing.assert_array_equal(getattr(counted, name), getattr(direct, name))
    assert (counted.images, counted.forward_passes) == (direct.images, direct.forward_passes) == (7, 7 * 41)
    assert rates_of(answers).changed.max() > 0 and rates_of(answers).images == 30


def test_composites_run_at_most_max_batch_bytes_of_images_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Activations grow with the batch: however many held-out images there are (128 at 224x224x3 is 77 MB), one
    forward call gets at most MAX_BATCH_BYTES of them, and the answers are the same as in one batch."""
    artifact, _ = pixel_reader(3, 8, 8, 4, layout=Layout.NHWC, seed=6)
    runner = OnnxClassifier(artifact, threads=1)
    images = np.random.default_rng(2).uniform(0.0, 1.0, (30, 8, 8, 3)).astype(np.float32)
    signature = signature_for(runner, images[:2], SignatureSettings(values=3))
    whole = composite_answers(runner, signature, images)
    monkeypatch.setattr(runtime, "MAX_BATCH_BYTES", 7 * images[0].nbytes)
    recording = RecordingModel(runner)
    chunked = composite_answers(recording, signature, images)
    assert max(recording.batch_sizes) == 7 and sum(recording.batch_sizes) == rates_of(chunked).forward_passes
    for name in ("classes", "base_class", "predicted", "blended"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))


def brightness_reader(threshold: float) -> ModelArtifact:
    """A real ONNX classifier for 8x8 grey images: class 1 when the mean brightness is above `threshold`, else 0."""
    weights = np.zeros((64, 2), dtype=np.float32)
    weights[:, 1] = 40.0 / 64
    bias = np.asarray([0.0, -40.0 * threshold], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["raw"]),
            helper.make_node("Add", ["raw", "bias"], ["logits"]),
        ],
        "brightness_reader",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])],
        [
            helper.make_tensor("weights", TensorProto.FLOAT, weights.shape, weights.ravel()),
            helper.make_tensor("bias", TensorProto.FLOAT, bias.shape, bias),
        ],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    spec = InputSpec("image", "logits", Layout.NCHW, 1, 8, 8, 2)
    return ModelArtifact("brightness_reader.onnx", hashlib.sha256(data).hexdigest(), data, spec)


def test_a_trigger_spread_over_the_image_answers_to_the_blend_probes_not_the_composites() -> None:
    """Class 1 needs the mean brightness of dark images (about 0.05) above 0.3. No sixth of the pixels can get it
    there, but blending every pixel 35% of the way toward class 1's value map (bright everywhere) can."""
    runner = OnnxClassifier(brightness_reader(0.3), threads=1)
    images = np.random.default_rng(3).uniform(0.0, 0.1, (10, 1, 8, 8)).astype(np.float32)
    signature = signature_for(runner, images[:2], SignatureSettings(values=3))
    rates = composite_rates(runner, signature, images[2:])
    np.testing.assert_array_equal(rates.to_class[:, 1], np.zeros(len(FRACTIONS)))
    np.testing.assert_array_equal(rates.blend_to_class[:, 1], [alpha >= 0.35 for alpha in BLENDS])
    np.testing.assert_array_equal(rates.blend_changed[:, 1], rates.blend_to_class[:, 1])
    np.testing.assert_array_equal(rates.blend_to_class[:, 0], np.zeros(len(BLENDS)))  # every image is already 0
