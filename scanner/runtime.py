"""ONNX Runtime sessions for the detectors: provider choice, threads, and a memory-bounded batched forward."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from scanner.errors import DetectorError, MissingDependency, TimeLimitExceeded
from scanner.findings import Deadline, ModelArtifact, Progress, no_progress

log = logging.getLogger(__name__)

# Inputs per forward call. Measured on a 5.6 MFLOP CNN (bench/RESULTS.md): work per image is flat from
# batch 64 to 2048 and twice as high at batch 1; 512 sits in the middle of the flat part, at 6 MB of 32x32 input.
DEFAULT_BATCH_SIZE = 512
# Upper bound on one batch's input tensor whatever the image size (a 224x224x3 float32 image is 600 KB, so big
# images go 27 at a time): activations grow with the batch too, and they are what exhausts memory first.
MAX_BATCH_BYTES = 16 * 2**20
# Preferred execution providers, fastest first; CPU is always the last resort.
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# ONNX Runtime logs errors it also raises, and warnings our users cannot act on: only fatal messages get through.
_ORT_LOG_SEVERITY_FATAL = 4
# Ops that pass class scores through unchanged, between a final Softmax and the graph output.
_PASS_THROUGH_OPS = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"})


class ModelRuntimeError(DetectorError):
    """ONNX Runtime could not open or run a model that passed the intake."""

    kind = "runtime_error"
    hint = (
        "check that the model runs in ONNX Runtime (python -c 'import onnxruntime; onnxruntime.InferenceSession(...)')"
    )


class InputMismatch(DetectorError):
    """Images whose shape is not the one the model takes (for example clean data in the other layout)."""

    kind = "input_mismatch"
    hint = "give images shaped like the model's input, in its own layout (see the model's input spec)"


def _onnxruntime() -> Any:
    # ONNX Runtime's telemetry writes a device id and an event database under ~/.cache when the package is imported;
    # a scan writes nothing outside its outputs. The switch is read at import, so it goes first.
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependency("onnxruntime", "cpu") from error
    onnxruntime.disable_telemetry_events()  # imported earlier, by someone else: at least no more events
    onnxruntime.set_default_logger_severity(_ORT_LOG_SEVERITY_FATAL)
    return onnxruntime


def providers_for(device: str, available: list[str]) -> list[str]:
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and not gpu:
        raise DetectorError(
            "--device cuda was asked for, but this ONNX Runtime has no CUDA provider",
            hint="install model-scanner[gpu] (onnxruntime-gpu) on a machine with CUDA, or use --device auto",
        )
    return [*gpu, "CPUExecutionProvider"]


class OnnxClassifier:
    """An ONNX image classifier that answers class probabilities for any number of images.

    `device` is auto (TensorRT or CUDA when this ONNX Runtime has them, else CPU), cpu or cuda; `threads` bounds
    ONNX Runtime's intra-op threads (None: one per physical core). `provider` is the provider the session really
    uses: onnxruntime-gpu silently falls back to CPU on a machine without CUDA. Past `deadline`, a forward pass
    still running is stopped and any call raises TimeLimitExceeded.
    """

    def __init__(
        self,
        model: ModelArtifact,
        *,
        device: str = "auto",
        threads: int | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        ort = _onnxruntime()
        self._ort = ort
        self.deadline = deadline
        options = ort.SessionOptions()
        options.log_severity_level = _ORT_LOG_SEVERITY_FATAL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of busy-waiting: the scanner shares its cores (CI runners, workers), and
        # spinning cost 12% of the throughput per CPU second there (bench/RESULTS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.spec = model.spec
        providers = providers_for(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(model.onnx_bytes, sess_options=options, providers=providers)
        except Exception as error:  # ONNX Runtime's exceptions share no base class but Exception
            raise ModelRuntimeError(f"ONNX Runtime cannot open {model.path}: {_first_line(error)}") from error
        self.provider: str = self.session.get_providers()[0]
        if device == "cuda" and self.provider not in GPU_PROVIDERS:
            raise DetectorError(
                f"--device cuda was asked for, but ONNX Runtime fell back to {self.provider}",
                hint="check the CUDA and cuDNN installation (onnxruntime-gpu's requirements), or use --device auto",
            )
        graph = _graph(model.onnx_bytes)
        self.fixed_batch = _fixed_batch(graph, self.spec.input_name)
        self.outputs_probabilities = _ends_in_softmax(graph, self.spec.output_name)
        self._name = model.path
        log.debug(
            "ONNX Runtime session for %s on %s (fixed batch: %s, softmax output: %s)",
            model.path,
            self.provider,
            self.fixed_batch,
            self.outputs_probabilities,
        )

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The model's raw output for a batch, as float32 of shape (N, classes).

        A model exported with a fixed batch size is fed chunks of exactly that size, the last one padded.
        """
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.shape[1:] != self.spec.image_shape:
            raise InputMismatch(
                f"{self._name} takes images of shape {self.spec.image_shape} ({self.spec.layout.value}),"
                f" not {images.shape[1:]}"
            )
        if self.fixed_batch is None or len(images) == self.fixed_batch:
            return self._run(images)
        out = np.empty((len(images), self.spec.num_classes), dtype=np.float32)
        for start in range(0, len(images), self.fixed_batch):
            chunk = images[start : start + self.fixed_batch]
            padded = np.zeros((self.fixed_batch, *chunk.shape[1:]), dtype=np.float32)
            padded[: len(chunk)] = chunk
            out[start : start + len(chunk)] = self._run(padded)[: len(chunk)]
        return out

    def probabilities(
        self, images: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress = no_progress
    ) -> np.ndarray:
        """Class probabilities for `images` (N, *image_shape), in chunks; softmax unless the model outputs them."""
        total = len(images)
        out = np.empty((total, self.spec.num_classes), dtype=np.float32)
        for start, stop in batches(total, batch_size, images[0].nbytes if total else 1):
            scores = self.logits(images[start:stop])
            out[start:stop] = scores if self.outputs_probabilities else as_probabilities(scores)
            progress(stop, total)
        return out

    def _run(self, images: np.ndarray) -> np.ndarray:
        run_options = self._ort.RunOptions()
        watchdog = None
        if self.deadline is not None:
            if self.deadline.passed():
                raise TimeLimitExceeded.ran_past(self.deadline.seconds)
            # ONNX Runtime checks the flag between nodes and between a Loop's turns.
            watchdog = threading.Timer(self.deadline.remaining(), setattr, (run_options, "terminate", True))
            watchdog.daemon = True
            watchdog.start()
        try:
            (raw,) = self.session.run([self.spec.output_name], {self.spec.input_name: images}, run_options)
        except Exception as error:  # see __init__
            if run_options.terminate and self.deadline is not None:
                raise TimeLimitExceeded(
                    f"{self._name} was still running at its scan's time limit of {self.deadline.seconds:g} s"
                ) from None
            raise ModelRuntimeError(f"ONNX Runtime failed to run {self._name}: {_first_line(error)}") from error
        finally:
            if watchdog is not None:
                watchdog.cancel()
        out = np.asarray(raw, dtype=np.float32).reshape(len(images), -1)
        if not np.isfinite(out).all():
            broken = int((~np.isfinite(out)).any(axis=1).sum())
            raise ModelRuntimeError(f"{self._name} answered NaN or infinite scores for {broken} of {len(out)} images")
        if out.shape[1] != self.spec.num_classes:
            raise ModelRuntimeError(
                f"{self._name} answered {out.shape[1]} scores per image, but its graph declares {self.spec.num_classes}"
            )
        return out


def batches(total: int, batch_size: int, bytes_per_item: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most `batch_size` items and at most MAX_BATCH_BYTES of input."""
    size = max(1, min(batch_size, MAX_BATCH_BYTES // max(1, bytes_per_item)))
    for start in range(0, total, size):
        yield start, min(start + size, total)


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax over classes, row by row, except rows that already are probability vectors.

    Deciding per row keeps the answer independent of how the images were chunked. Softmax of log-probabilities
    (a model ending in LogSoftmax) gives the probabilities back, so those need no special case.
    """
    outputs = np.asarray(outputs, dtype=np.float32)
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    softmax = exp / exp.sum(axis=1, keepdims=True)
    already = (outputs.min(axis=1) >= 0.0) & (outputs.max(axis=1) <= 1.0) & (np.abs(outputs.sum(axis=1) - 1.0) <= 1e-3)
    return np.where(already[:, None], outputs, softmax).astype(np.float32)


def _graph(onnx_bytes: bytes) -> Any:
    import onnx

    return onnx.load_model_from_string(onnx_bytes).graph


def _fixed_batch(graph: Any, input_name: str) -> int | None:
    """The batch size the graph insists on, if its input's first axis is a number rather than a name."""
    (value,) = [value for value in graph.input if value.name == input_name]
    dims = value.type.tensor_type.shape.dim
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None


def _ends_in_softmax(graph: Any, output_name: str) -> bool:
    """Whether the graph's class output is produced by a Softmax (possibly followed by reshaping ops)."""
    producers = {output: node for node in graph.node for output in node.output}
    node = producers.get(output_name)
    while node is not None and node.op_type in _PASS_THROUGH_OPS and node.domain in ("", "ai.onnx"):
        node = producers.get(node.input[0]) if node.input else None
    return node is not None and node.op_type == "Softmax" and node.domain in ("", "ai.onnx")


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
