"""ONNX Runtime sessions for the detectors: provider choice, threads, and a memory-bounded batched forward."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from scanner.detectors.interface import Progress, no_progress
from scanner.errors import DetectorError, MissingDependency
from scanner.findings import ModelArtifact

log = logging.getLogger(__name__)

# Inputs per forward call: large enough to keep ONNX Runtime's kernels busy, small enough to bound memory.
DEFAULT_BATCH_SIZE = 512
# Upper bound on one batch's input tensor, whatever the image size (224x224x3 float32 is 600 KB an image).
MAX_BATCH_BYTES = 64 * 2**20


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependency("onnxruntime", "cpu") from error
    onnxruntime.set_default_logger_severity(3)  # errors only: its warnings are noise for our users
    return onnxruntime


def _providers(device: str, available: list[str]) -> list[str]:
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and not gpu:
        raise DetectorError(
            "--device cuda was asked for, but this ONNX Runtime has no CUDA provider",
            hint="install model-scanner[gpu] (onnxruntime-gpu) on a machine with CUDA, or use --device auto",
        )
    return [*gpu, "CPUExecutionProvider"]


class OnnxClassifier:
    """An ONNX image classifier that answers class probabilities for any number of images."""

    def __init__(self, model: ModelArtifact, *, device: str = "auto", threads: int | None = None) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.spec = model.spec
        self.session = ort.InferenceSession(
            model.onnx_bytes, sess_options=options, providers=_providers(device, ort.get_available_providers())
        )
        # What the session really uses: onnxruntime-gpu silently falls back to CPU without CUDA.
        self.provider: str = self.session.get_providers()[0]
        log.debug("ONNX Runtime session for %s on %s", model.path, self.provider)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """One forward pass of a batch; returns the model's raw output as float32 of shape (N, classes)."""
        feed = {self.spec.input_name: np.ascontiguousarray(images, dtype=np.float32)}
        (out,) = self.session.run([self.spec.output_name], feed)
        return np.asarray(out, dtype=np.float32).reshape(len(images), -1)

    def probabilities(
        self, images: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress = no_progress
    ) -> np.ndarray:
        """Class probabilities for `images` (N, *image_shape), in chunks; softmax unless the model outputs them."""
        total = len(images)
        out = np.empty((total, self.spec.num_classes), dtype=np.float32)
        for start, stop in batches(total, batch_size, images[0].nbytes if total else 1):
            out[start:stop] = as_probabilities(self.logits(images[start:stop]))
            progress(stop, total)
        return out


def batches(total: int, batch_size: int, bytes_per_item: int) -> Iterator[tuple[int, int]]:
    size = max(1, min(batch_size, MAX_BATCH_BYTES // max(1, bytes_per_item)))
    for start in range(0, total, size):
        yield start, min(start + size, total)


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax over classes, unless every row already is a probability vector (a model ending in Softmax)."""
    rows_are_probabilities = (
        outputs.min(initial=0.0) >= 0.0 and outputs.max(initial=0.0) <= 1.0 and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)
    )
    if rows_are_probabilities:
        return outputs
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
