"""OnnxClassifier on real ONNX Runtime sessions of tiny real CNNs: probabilities, chunking, provider, fixed batches."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from scanner.errors import DetectorError, TimeLimitExceeded
from scanner.findings import Deadline, ModelArtifact
from scanner.intake import load_model
from scanner.runtime import InputMismatch, ModelRuntimeError, OnnxClassifier, as_probabilities, batches, providers_for
from tests.intake.builders import endless_cnn, save, tiny_cnn


def _artifact(tmp_path: Path, **kwargs: object) -> ModelArtifact:
    return load_model(save(tiny_cnn(**kwargs), tmp_path / "m.onnx"))  # type: ignore[arg-type]


def _images(count: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, *shape), dtype=np.float32)


@pytest.mark.parametrize("softmax", [False, True], ids=["logits", "softmax"])
def test_probabilities_sum_to_one(tmp_path: Path, softmax: bool) -> None:
    artifact = _artifact(tmp_path, softmax=softmax, classes=6)
    classifier = OnnxClassifier(artifact, device="cpu", threads=1)

    probabilities = classifier.probabilities(_images(37, artifact.spec.image_shape))

    assert classifier.outputs_probabilities is softmax
    assert probabilities.shape == (37, 6) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    # Against the raw output: softmax applied exactly once.
    raw = classifier.logits(_images(37, artifact.spec.image_shape))
    expected = raw if softmax else np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_chunking_gives_the_same_result_as_one_batch(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path, layout="NHWC", channels=1)
    classifier = OnnxClassifier(artifact, device="cpu", threads=1)
    images = _images(103, artifact.spec.image_shape)
    seen: list[tuple[int, int]] = []

    whole = classifier.probabilities(images, batch_size=1000)
    chunked = classifier.probabilities(images, batch_size=10, progress=lambda done, total: seen.append((done, total)))

    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-7)
    assert seen[-1] == (103, 103) and len(seen) == 11


def test_fixed_batch_model_takes_any_number_of_images(tmp_path: Path) -> None:
    fixed = OnnxClassifier(_artifact(tmp_path, batch=4), device="cpu", threads=1)
    dynamic = OnnxClassifier(load_model(save(tiny_cnn(), tmp_path / "d.onnx")), device="cpu", threads=1)
    images = _images(10, (3, 8, 8))

    assert fixed.fixed_batch == 4 and dynamic.fixed_batch is None
    np.testing.assert_allclose(fixed.probabilities(images, batch_size=7), dynamic.probabilities(images), rtol=1e-6)


def test_provider_actually_used_is_reported(tmp_path: Path) -> None:
    import onnxruntime

    artifact = _artifact(tmp_path)
    assert OnnxClassifier(artifact, device="cpu").provider == "CPUExecutionProvider"
    auto = OnnxClassifier(artifact, device="auto")
    assert auto.provider == auto.session.get_providers()[0]
    if not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()):
        assert auto.provider == "CPUExecutionProvider"


def test_output_that_contradicts_the_graph_is_an_error(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path, classes=5)
    lying = dataclasses.replace(artifact, spec=dataclasses.replace(artifact.spec, num_classes=7))
    with pytest.raises(ModelRuntimeError, match="5 scores per image"):
        OnnxClassifier(lying, device="cpu").probabilities(_images(2, (3, 8, 8)))


def test_batches_are_bounded_by_bytes() -> None:
    assert list(batches(5, 2, 4)) == [(0, 2), (2, 4), (4, 5)]
    big_image = 224 * 224 * 3 * 4
    sizes = {stop - start for start, stop in batches(1000, 512, big_image)}
    assert max(sizes) * big_image <= 16 * 2**20


def test_as_probabilities_decides_row_by_row() -> None:
    rows = np.array([[0.2, 0.8], [2.0, -1.0]], dtype=np.float32)
    result = as_probabilities(rows)
    np.testing.assert_allclose(result[0], [0.2, 0.8])
    np.testing.assert_allclose(result[1], np.exp([3.0, 0.0]) / np.exp([3.0, 0.0]).sum(), rtol=1e-6)


def test_provider_preference() -> None:
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("auto", gpu_build) == gpu_build
    assert providers_for("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert providers_for("cpu", gpu_build) == ["CPUExecutionProvider"]
    assert providers_for("auto", ["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(DetectorError, match="no CUDA provider"):
        providers_for("cuda", ["CPUExecutionProvider"])


def test_runtime_failure_is_one_error_and_no_log_noise(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    model = tiny_cnn()
    bias = next(t for t in model.graph.initializer if t.name == "conv_b")
    bias.raw_data = bytes(4 * 4 * 2)  # twice the bytes its shape holds: onnx.checker lets it pass, ONNX Runtime not
    artifact = load_model(save(model, tmp_path / "m.onnx"))
    capfd.readouterr()

    with pytest.raises(ModelRuntimeError, match="ONNX Runtime cannot open") as failed:
        OnnxClassifier(artifact, device="cpu")

    assert "\n" not in failed.value.one_line()
    assert capfd.readouterr().err == ""


def test_failure_while_running_is_a_runtime_error(tmp_path: Path) -> None:
    model = tiny_cnn()
    weight = next(t for t in model.graph.initializer if t.name == "conv_w")
    weight.dims[1] = 5  # a five-channel kernel for three-channel images: opens, then fails on the first batch
    weight.raw_data = bytes(4 * 4 * 5 * 3 * 3)
    classifier = OnnxClassifier(load_model(save(model, tmp_path / "m.onnx")), device="cpu")

    with pytest.raises(ModelRuntimeError, match=r"failed to run .*Input channels"):
        classifier.probabilities(_images(3, (3, 8, 8)))


def test_images_in_the_wrong_layout_are_refused_clearly(tmp_path: Path) -> None:
    classifier = OnnxClassifier(_artifact(tmp_path), device="cpu")
    with pytest.raises(InputMismatch, match=r"\(3, 8, 8\) \(NCHW\), not \(8, 8, 3\)"):
        classifier.probabilities(_images(2, (8, 8, 3)))


def test_no_images_give_no_rows(tmp_path: Path) -> None:
    classifier = OnnxClassifier(_artifact(tmp_path, classes=4), device="cpu")
    assert classifier.probabilities(np.zeros((0, 3, 8, 8), np.float32)).shape == (0, 4)


def test_a_forward_pass_still_running_at_the_deadline_is_stopped(tmp_path: Path) -> None:
    """A valid graph can loop for ever (a Loop of 2^62 turns): past the scan's deadline ONNX Runtime is told to stop,
    and the call raises TimeLimitExceeded instead of holding the scan (and a registry worker) for good."""
    artifact = load_model(save(endless_cnn(), tmp_path / "endless.onnx"))
    classifier = OnnxClassifier(artifact, device="cpu", threads=1, deadline=Deadline.after(0.5))
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match=r"still running at its scan's time limit of 0\.5 s"):
        classifier.logits(_images(2, artifact.spec.image_shape))
    assert time.monotonic() - started < 10
    with pytest.raises(TimeLimitExceeded, match="ran past its time limit"):  # the deadline has passed: no new pass
        classifier.logits(_images(2, artifact.spec.image_shape))


def test_a_deadline_far_off_changes_no_answer(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path)
    images = _images(9, artifact.spec.image_shape)
    limited = OnnxClassifier(artifact, device="cpu", threads=1, deadline=Deadline.after(3600))
    unlimited = OnnxClassifier(artifact, device="cpu", threads=1)
    np.testing.assert_array_equal(limited.logits(images), unlimited.logits(images))
