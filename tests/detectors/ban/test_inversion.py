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


def test_a_graph_the_torch_view_cannot_run_or_too_big_for_the_memory_bound_is_said_so(
    digits: ModelArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner.detectors.ban import inversion
    from scanner.detectors.ban.budget import OverBound
    from scanner.torchview import UnsupportedGraph
    from tests.detectors.ban.test_detector import _image_model_with, artifact

    with pytest.raises(UnsupportedGraph, match="Hardmax"):
        invert_classes(artifact(_image_model_with("Hardmax")), QUICK)
    monkeypatch.setattr(inversion, "GIB", 1)  # a memory bound of 4 bytes
    with pytest.raises(OverBound, match="memory bound"):
        invert_classes(digits, QUICK)


def test_a_scan_that_cannot_synthesize_goes_on_as_without_clean_data() -> None:
    """The torch view cannot run this graph: no clean data, so BAN does not apply, and the report names none."""
    from scanner.detectors.ban.detector import BanDetector
    from scanner.findings import Status
    from scanner.policy import load_builtin_policy
    from scanner.scan import Scanner, ScanOptions, ScanTarget
    from tests.detectors.ban.test_detector import QUICK as QUICK_BAN
    from tests.detectors.ban.test_detector import _image_model_with, artifact

    model = artifact(_image_model_with("Hardmax"))
    scanner = Scanner(
        [BanDetector(QUICK_BAN)],
        load_builtin_policy(),
        options=ScanOptions(synthesize_clean_data=True),
        load_model=lambda path, **_: model,
    )
    (result,) = scanner.scan([ScanTarget.for_file(Path("hardmax.onnx"))])
    assert result.clean_data is None and result.detectors["ban"].status is Status.NOT_APPLICABLE
