"""The calibration reads a zoo model's one-pixel features exactly as a scan computes them, whatever the model's inputs:
[0, 1], another value range, or mean/std normalisation (tiny real models of the second generator, real ONNX Runtime).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanner.calibration.zoos import ZooModel, in_layout, read_zoo


@pytest.fixture(scope="module")
def second_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scanner.zoo.second.build import build_second_zoo

    out = tmp_path_factory.mktemp("zoo-features")
    build_second_zoo(2, 2, out, seed=0, tiny=True)  # normalised (NHWC), [-1, 1] and [0, 1] models
    return out


def _inputs(model: ZooModel) -> str:
    return "normalised" if model.normalization is not None else f"{model.value_range}"


def test_the_calibration_s_features_give_the_scan_s_score(second_zoo: Path, tmp_path: Path) -> None:
    from scanner.calibration.one_pixel import head_features, zoo_features
    from scanner.detectors.interface import DetectionContext
    from scanner.detectors.one_pixel.classifier import COMBINED
    from scanner.detectors.one_pixel.detector import OnePixelDetector

    zoo = read_zoo(second_zoo)
    assert {_inputs(m) for m in zoo.models} == {"normalised", "(-1.0, 1.0)", "(0.0, 1.0)"}
    detector = OnePixelDetector()
    features = head_features(zoo_features(zoo, detector.settings, cache_dir=tmp_path).features)
    for row, model in zip(features[COMBINED], zoo.models, strict=True):
        artifact = model.artifact()
        clean = zoo.clean_data_of(model)
        assert clean is not None
        result = detector.detect(artifact, DetectionContext(clean_data=in_layout(clean, artifact.spec)))
        expected = detector.classifier.probability(row, COMBINED)
        assert result.score == pytest.approx(expected, abs=1e-9), _inputs(model)


def test_patch_probes_stamp_the_ends_of_a_models_own_range(second_zoo: Path) -> None:
    """A [-1, 1] model's patches are solid -1 and 1, not 0 and 1 (0 is its mid-grey)."""
    from scanner.detectors.one_pixel.input_space import probed_model
    from scanner.detectors.one_pixel.patches import patch_answers
    from scanner.runtime import OnnxClassifier

    model = next(m for m in read_zoo(second_zoo).models if m.value_range == (-1.0, 1.0))
    seen: list[np.ndarray] = []

    class Recording(OnnxClassifier):
        def logits(self, images: np.ndarray) -> np.ndarray:
            seen.append(images)
            return super().logits(images)

    runner = probed_model(Recording(model.artifact()))
    images = np.full((2, *runner.spec.image_shape), 0.5, dtype=np.float32)  # mid-grey in the probes' [0, 1]
    patch_answers(runner, images)
    values = np.unique(np.concatenate([batch.ravel() for batch in seen]))
    assert set(values.tolist()) == {-1.0, 0.0, 1.0}
