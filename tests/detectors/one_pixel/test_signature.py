"""The signature algorithm on hand-built ONNX models whose answer is known exactly: class k reads one pixel.

A "pixel reader" has logit_k = 8 * x[channel_k, row_k, col_k], so class k's probability rises most when exactly
that pixel (on that channel) goes to the top of the input range, and nowhere else. Real ONNX Runtime runs them.
"""

from __future__ import annotations

import numpy as np
import pytest

from scanner.detectors.one_pixel.signature import (
    SignatureSettings,
    candidate_values,
    log_probabilities,
    signature_for,
    synthetic_bases,
)
from scanner.findings import InputSpec, Layout, ModelArtifact
from scanner.runtime import OnnxClassifier
from tests.detectors.one_pixel.pixel_readers import pixel_reader


def two_bases(spec: InputSpec) -> np.ndarray:
    return synthetic_bases(spec)[:2]  # low and mid-grey: every reader pixel has room to rise


@pytest.mark.parametrize(
    ("channels", "size", "classes", "layout", "per_channel"),
    [
        (1, 16, 10, Layout.NCHW, False),
        (3, 32, 10, Layout.NCHW, True),
        (3, 12, 2, Layout.NHWC, True),
        (3, 12, 5, Layout.NHWC, False),
        (1, 9, 3, Layout.NHWC, False),
    ],
)
def test_each_class_peaks_at_its_pixel_with_the_top_value(
    channels: int, size: int, classes: int, layout: Layout, per_channel: bool
) -> None:
    artifact, pixels = pixel_reader(channels, size, size, classes, layout=layout)
    runner = OnnxClassifier(artifact, threads=1)
    settings = SignatureSettings(values=4, per_channel=per_channel)
    signature = signature_for(runner, two_bases(artifact.spec), settings)

    assert signature.increase.shape == (2, classes, size, size)
    variants = 4 * (channels if per_channel and channels > 1 else 1)
    assert signature.forward_passes == 2 + 2 * size * size * variants
    for k, (_, row, col) in enumerate(pixels):
        mean_map = signature.log_increase[:, k].mean(axis=0)
        assert np.unravel_index(mean_map.argmax(), mean_map.shape) == (row, col)
        assert signature.best_value[0, k, row, col] == pytest.approx(1.0)
        # Elsewhere only lowering another class's pixel helps (on the mid-grey base): at most half as much.
        others = np.delete(mean_map.ravel(), row * size + col)
        assert others.max() <= 0.55 * mean_map.max()


def test_layouts_give_the_same_signature() -> None:
    nchw, pixels = pixel_reader(3, 10, 10, 4, layout=Layout.NCHW, seed=3)
    nhwc, same_pixels = pixel_reader(3, 10, 10, 4, layout=Layout.NHWC, seed=3)
    assert pixels == same_pixels
    settings = SignatureSettings(values=3, per_channel=True)
    a = signature_for(OnnxClassifier(nchw, threads=1), two_bases(nchw.spec), settings)
    b = signature_for(OnnxClassifier(nhwc, threads=1), two_bases(nhwc.spec), settings)
    np.testing.assert_allclose(a.log_increase, b.log_increase, atol=1e-5)
    np.testing.assert_array_equal(a.best_value, b.best_value)


def test_models_that_end_in_softmax_give_the_same_signature() -> None:
    logits, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=5)
    probabilities, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=5, softmax=True)
    settings = SignatureSettings(values=3)
    a = signature_for(OnnxClassifier(logits, threads=1), two_bases(logits.spec), settings)
    b = signature_for(OnnxClassifier(probabilities, threads=1), two_bases(probabilities.spec), settings)
    np.testing.assert_allclose(a.increase, b.increase, atol=1e-5)
    np.testing.assert_allclose(a.log_increase, b.log_increase, atol=1e-3)


def test_coarse_to_fine_finds_the_peaks_with_far_fewer_passes() -> None:
    artifact, pixels = pixel_reader(3, 32, 32, 10, layout=Layout.NCHW, seed=1)
    runner = OnnxClassifier(artifact, threads=1)
    full = signature_for(runner, two_bases(artifact.spec), SignatureSettings(values=16, per_channel=True))
    coarse = signature_for(
        runner, two_bases(artifact.spec), SignatureSettings(values=16, per_channel=True, mode="coarse-to-fine")
    )
    assert full.forward_passes / coarse.forward_passes >= 5
    for k, (_, row, col) in enumerate(pixels):
        assert coarse.log_increase[0, k, row, col] == pytest.approx(full.log_increase[0, k, row, col], abs=1e-5)
        mean_map = coarse.log_increase[:, k].mean(axis=0)
        assert np.unravel_index(mean_map.argmax(), mean_map.shape) == (row, col)


def test_large_inputs_are_probed_on_a_bounded_patch_grid() -> None:
    artifact, pixels = pixel_reader(3, 64, 48, 4, layout=Layout.NHWC, seed=2)
    progress: list[tuple[int, int]] = []
    settings = SignatureSettings(values=4, max_grid=16)
    signature = signature_for(
        OnnxClassifier(artifact, threads=1),
        two_bases(artifact.spec),
        settings,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert signature.cell == (4, 3)
    assert signature.increase.shape == (2, 4, 16, 16)
    assert signature.forward_passes == 2 + 2 * 16 * 16 * 4
    for k, (_, row, col) in enumerate(pixels):
        mean_map = signature.log_increase[:, k].mean(axis=0)
        assert np.unravel_index(mean_map.argmax(), mean_map.shape) == (row // 4, col // 3)
    assert progress[-1][0] == progress[-1][1] == 2 * 16 * 16 * 4
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_candidate_values_span_the_declared_range() -> None:
    np.testing.assert_allclose(candidate_values((-1.0, 1.0), 5), [-1.0, -0.5, 0.0, 0.5, 1.0])
    artifact, pixels = pixel_reader(1, 6, 6, 2, layout=Layout.NCHW, seed=4)
    spec = InputSpec(**{**artifact.spec.__dict__, "value_range": (-1.0, 1.0)})
    artifact = ModelArtifact(artifact.path, artifact.sha256, artifact.onnx_bytes, spec)
    signature = signature_for(OnnxClassifier(artifact, threads=1), synthetic_bases(spec)[:2], SignatureSettings())
    assert signature.value_range == (-1.0, 1.0)
    for k, (_, row, col) in enumerate(pixels):
        assert signature.best_value[0, k, row, col] == pytest.approx(1.0)
    assert synthetic_bases(spec).min() == pytest.approx(-1.0)


def test_log_probabilities_match_for_logits_and_probabilities() -> None:
    logits = np.asarray([[2.0, 0.0, -1.0], [0.0, 0.0, 50.0]])
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(log_probabilities(logits)[0], np.log(probabilities[0]), atol=1e-9)
    assert log_probabilities(probabilities)[1].min() >= -30.0
