"""Synthesized clean data (class inversion) on a really trained model of the test zoo, checked with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from scanner.calibration.zoos import artifact_for, read_zoo
from scanner.detectors.ban.inversion import InversionSettings, invert_classes
from scanner.errors import TimeLimitExceeded
from scanner.findings import Deadline, ModelArtifact

QUICK = InversionSettings(images=40, per_class=4, steps=40)


@pytest.fixture(scope="module")
def digits(zoo: Path) -> ModelArtifact:
    return artifact_for(next(m for m in read_zoo(zoo).models if m.family == "digits16" and not m.backdoored).path)


def answers(model: ModelArtifact, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {model.spec.input_name: x})[0]).argmax(axis=1)


def test_the_model_puts_each_image_in_the_class_it_was_made_for(digits: ModelArtifact) -> None:
    data = invert_classes(digits, QUICK)
    assert data.x.shape == (40, 1, 16, 16) and data.x.dtype == np.float32
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0  # the model's value range
    assert data.y is not None and np.bincount(data.y).tolist() == [4] * 10
    assert (answers(digits, data.x) == data.y).mean() >= 0.9


def test_it_is_deterministic_for_a_seed_and_draws_classes_when_it_has_more_than_room(digits: ModelArtifact) -> None:
    first, again, other = (invert_classes(digits, QUICK, seed=seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(first.x, again.x)
    assert not np.array_equal(first.x, other.x)
    few = invert_classes(digits, InversionSettings(images=12, per_class=4, steps=5))
    assert few.y is not None and len(few.y) == 12 and len(set(few.y.tolist())) == 3


def test_a_passed_deadline_stops_it(digits: ModelArtifact) -> None:
    with pytest.raises(TimeLimitExceeded, match="time limit"):
        invert_classes(digits, QUICK, deadline=Deadline.after(0.0))
