"""Tiny but real ONNX image classifiers built with onnx.helper: Conv -> Relu -> GlobalAveragePool -> Gemm.

They run in ONNX Runtime in microseconds, so intake and runtime tests need no trained zoo and no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# IR 8 / opset 13: what common exporters write, and well inside what the installed ONNX Runtime reads.
IR_VERSION = 8
OPSET = 13
FEATURES = 4


def tiny_cnn(
    *,
    channels: int = 3,
    height: int = 8,
    width: int = 8,
    classes: int = 10,
    layout: str = "NCHW",
    batch: int | str = "N",
    softmax: bool = False,
    opset: int = OPSET,
    seed: int = 0,
) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    shape = [batch, channels, height, width] if layout == "NCHW" else [batch, height, width, channels]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, classes])
    initializers = [
        numpy_helper.from_array(rng.normal(0, 0.5, (FEATURES, channels, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, FEATURES).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(0, 1.0, (classes, FEATURES)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, classes).astype(np.float32), "fc_b"),
    ]
    nodes = []
    first = "image"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
        first = "nchw"
    nodes += [
        helper.make_node("Conv", [first, "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits" if softmax else "scores"], transB=1),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    graph = helper.make_graph(nodes, "tiny_cnn", [image], [scores], initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="model-scanner-tests"
    )
    model.ir_version = IR_VERSION
    return model


def tabular_model(features: int = 20, classes: int = 3) -> onnx.ModelProto:
    """A logistic regression over a [N, features] table: a fine model, but not an image classifier."""
    rows = helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["N", features])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])
    weights = numpy_helper.from_array(np.ones((features, classes), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["rows", "w"], ["scores"])], "tabular", [rows], [scores], [weights]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def move_weights_outside(model: onnx.ModelProto, location: str, data_file: Path, tensor: str = "fc_w") -> None:
    """Turn one initializer into an external data reference to `location`, writing its bytes to `data_file`."""
    (initializer,) = [t for t in model.graph.initializer if t.name == tensor]
    data = initializer.raw_data or numpy_helper.to_array(initializer).tobytes()
    data_file.parent.mkdir(parents=True, exist_ok=True)
    data_file.write_bytes(data)
    initializer.ClearField("raw_data")
    initializer.ClearField("float_data")
    initializer.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        entry = initializer.external_data.add()
        entry.key, entry.value = key, value


def endless_cnn() -> onnx.ModelProto:
    """tiny_cnn whose scores pass through a Loop of 2^62 turns: a valid model that never finishes a forward pass."""
    model = tiny_cnn()
    model.graph.node[-1].output[0] = "scores_once"
    body = helper.make_graph(
        [helper.make_node("Identity", ["going"], ["still_going"]), helper.make_node("Identity", ["v"], ["v_next"])],
        "turn",
        [
            helper.make_tensor_value_info("turn", TensorProto.INT64, []),
            helper.make_tensor_value_info("going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("still_going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_next", TensorProto.FLOAT, None),
        ],
    )
    model.graph.initializer.extend(
        [numpy_helper.from_array(np.array(2**62, np.int64), "turns"), numpy_helper.from_array(np.array(True), "go")]
    )
    model.graph.node.append(helper.make_node("Loop", ["turns", "go", "scores_once"], ["scores"], body=body))
    return model
