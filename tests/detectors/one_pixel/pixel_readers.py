"""Pixel readers: hand-built ONNX classifiers whose class k reads one pixel (test helper).

logit_k = 8 * x[channel_k, row_k, col_k], so class k's probability rises most when exactly that pixel (on that
channel) goes to the top of the input range, and nowhere else.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import TensorProto, helper

from scanner.findings import InputSpec, Layout, ModelArtifact
from scanner.runtime import OnnxClassifier


def pixel_reader(
    channels: int, height: int, width: int, classes: int, *, layout: Layout, softmax: bool = False, seed: int = 0
) -> tuple[ModelArtifact, list[tuple[int, int, int]]]:
    """A real ONNX classifier whose class k reads one pixel (channel, row, col); returns it and those pixels."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(channels * height * width, size=classes, replace=False)
    pixels = [tuple(int(v) for v in np.unravel_index(cell, (channels, height, width))) for cell in cells]
    weights = np.zeros((channels * height * width, classes), dtype=np.float32)
    for k, (c, r, col) in enumerate(pixels):
        flat = (
            np.ravel_multi_index((c, r, col), (channels, height, width))
            if layout is Layout.NCHW
            else np.ravel_multi_index((r, col, c), (height, width, channels))
        )
        weights[flat, k] = 8.0
    shape = ["n", channels, height, width] if layout is Layout.NCHW else ["n", height, width, channels]
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["logits" if not softmax else "raw"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["raw"], ["logits"], axis=1))
    graph = helper.make_graph(
        nodes,
        "pixel_reader",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes])],
        [helper.make_tensor("weights", TensorProto.FLOAT, weights.shape, weights.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    data = model.SerializeToString()
    onnx.checker.check_model(model)
    spec = InputSpec("image", "logits", layout, channels, height, width, classes)
    return ModelArtifact("pixel_reader.onnx", hashlib.sha256(data).hexdigest(), data, spec), pixels


class RecordingModel:
    """A real model that records how many images each forward call got (test helper)."""

    def __init__(self, model: OnnxClassifier) -> None:
        self.spec = model.spec
        self._model = model
        self.batch_sizes: list[int] = []

    def logits(self, images: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(images))
        return self._model.logits(images)
