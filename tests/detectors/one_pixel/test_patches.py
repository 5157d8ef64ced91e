"""Patch probes on real ONNX models: small saturated squares stamped at a grid of places on held-out images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanner import runtime
from scanner.detectors.one_pixel.patches import (
    GRID,
    PATCH_FEATURE_NAMES,
    RANDOM_PATTERNS,
    patch_answers,
    patch_features,
    patterns,
    strongest_patch,
)
from scanner.findings import Layout
from scanner.runtime import OnnxClassifier
from tests.detectors.one_pixel.pixel_readers import RecordingModel, pixel_reader

FEATURE = {name: i for i, name in enumerate(PATCH_FEATURE_NAMES)}


def test_the_patterns_are_every_saturated_colour_then_random_black_and_white() -> None:
    stamps = patterns(3, 4)
    assert stamps.shape == (8 + RANDOM_PATTERNS, 3, 4, 4)
    assert {tuple(stamp[:, 0, 0]) for stamp in stamps[:8]} == {
        (r, g, b) for r in (0, 1) for g in (0, 1) for b in (0, 1)
    }
    assert set(np.unique(stamps)) == {0.0, 1.0}
    np.testing.assert_array_equal(patterns(3, 4), stamps)  # fixed: every scan stamps the same squares
    assert patterns(1, 3).shape == (2 + RANDOM_PATTERNS, 1, 3, 3)


@pytest.mark.parametrize("layout", [Layout.NCHW, Layout.NHWC])
def test_a_white_square_over_a_class_s_pixel_sends_every_other_image_there(layout: Layout) -> None:
    """Class k reads one pixel: a square that covers it in white (every channel at the top of the range) makes k
    the answer for every dark image. The grid's squares cover the whole image, so some square covers each pixel."""
    artifact, _ = pixel_reader(3, 10, 10, 2, layout=layout, seed=3)
    images = np.random.default_rng(0).uniform(0.0, 0.1, (6, *artifact.spec.image_shape)).astype(np.float32)
    found = patch_answers(OnnxClassifier(artifact, threads=1), images)
    assert found.answers.shape == found.drops.shape == (8 + RANDOM_PATTERNS, GRID * GRID, 6) and found.side == 3
    assert found.forward_passes == found.answers.size + 6
    white = found.answers[7]  # colour 7: every channel 1
    for k in range(2):
        others = found.base_class != k
        assert others.any() and (white[:, others] == k).all(axis=1).any()
    features = patch_features(found)
    assert features.shape == (len(PATCH_FEATURE_NAMES),) and np.isfinite(features).all()
    assert features[FEATURE["patch.to_class.max"]] == 1.0
    reported = strongest_patch(found)
    assert reported == {"side": 3, "share_of_images_changed": round(features[0], 4), "images": 6}


def test_patch_probes_run_at_most_max_batch_bytes_of_images_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Activations grow with the batch: however many held-out images there are, one forward call gets at most
    MAX_BATCH_BYTES of them, and the answers are the same as in one batch."""
    artifact, _ = pixel_reader(3, 10, 10, 2, layout=Layout.NCHW, seed=3)
    images = np.random.default_rng(0).uniform(0.0, 1.0, (13, *artifact.spec.image_shape)).astype(np.float32)
    whole = patch_answers(OnnxClassifier(artifact, threads=1), images)
    monkeypatch.setattr(runtime, "MAX_BATCH_BYTES", 5 * images[0].nbytes)
    recording = RecordingModel(OnnxClassifier(artifact, threads=1))
    chunked = patch_answers(recording, images)
    assert max(recording.batch_sizes) == 5 and sum(recording.batch_sizes) == chunked.forward_passes
    np.testing.assert_array_equal(chunked.answers, whole.answers)
    np.testing.assert_allclose(chunked.drops, whole.drops, atol=1e-6)


def test_a_model_that_ignores_its_input_never_changes_its_answer() -> None:
    """The rates are real counts: a constant model's answers do not move, and its own class never drops."""
    artifact, _ = pixel_reader(1, 10, 10, 2, layout=Layout.NCHW, seed=3)
    runner = OnnxClassifier(artifact, threads=1)
    images = np.zeros((4, *artifact.spec.image_shape), dtype=np.float32)

    class Blind:
        spec = artifact.spec

        def logits(self, batch: np.ndarray) -> np.ndarray:
            return runner.logits(np.zeros_like(batch))

    features = patch_features(patch_answers(Blind(), images))
    assert features[FEATURE["patch.changed.max"]] == 0.0 and features[FEATURE["patch.drop.max"]] == 0.0


def test_features_on_the_first_images_equal_features_computed_on_them_alone() -> None:
    """What docs/experiments.md relies on to measure fewer images from one run."""
    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=2)
    runner = OnnxClassifier(artifact, threads=1)
    images = np.random.default_rng(4).uniform(0.0, 0.6, (10, *artifact.spec.image_shape)).astype(np.float32)
    np.testing.assert_allclose(
        patch_features(patch_answers(runner, images), images=4), patch_features(patch_answers(runner, images[:4]))
    )


def test_cached_patch_answers_come_back_the_same(tmp_path: Path) -> None:
    from scanner.calibration.one_pixel import cached_patch_answers

    artifact, _ = pixel_reader(1, 8, 8, 3, layout=Layout.NCHW, seed=2)
    images = np.random.default_rng(4).uniform(0.0, 0.6, (5, *artifact.spec.image_shape)).astype(np.float32)
    computed = cached_patch_answers(artifact, images, tmp_path)
    assert len(list(tmp_path.glob("*-patches.npz"))) == 1
    cached = cached_patch_answers(artifact, images, tmp_path)
    np.testing.assert_array_equal(cached.answers, computed.answers)
    np.testing.assert_array_equal(cached.drops, computed.drops)
    assert cached.side == computed.side and cached.forward_passes == computed.forward_passes
