"""The torch view of an ONNX graph matches ONNX Runtime, from both exporters, and refuses what it cannot interpret."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from scanner.torchview import TorchGraph, UnsupportedGraph
from scanner.torchview.anatomy import anatomy_of
from tests.torchview.onnx_models import ARCHITECTURES, cached_export

TOLERANCE = 1e-4


def onnx_runtime_outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (out,) = session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: x})
    return np.asarray(out)


def torch_view_outputs(
    model: bytes, x: np.ndarray, memory_format: torch.memory_format = torch.contiguous_format
) -> np.ndarray:
    with torch.no_grad():
        return TorchGraph(model)(torch.from_numpy(x).contiguous(memory_format=memory_format)).numpy()


# BAN feeds NCHW images channels-last on CPU (faster convolutions): the view must give the same outputs either way.
MEMORY_FORMATS = (torch.contiguous_format, torch.channels_last)


# Every architecture through the legacy exporter; through dynamo (seconds per export) the two whose ops differ
# most from legacy's. The zoo's own architectures are checked from both exporters in the zoo tests of
# tests/detectors/ban/test_detector.py.
EXPORTS = [(arch, "legacy") for arch in sorted(ARCHITECTURES)] + [("mobile", "dynamo"), ("vgg", "dynamo")]


@pytest.mark.parametrize(("arch", "exporter"), EXPORTS)
def test_matches_onnx_runtime_for_both_exporters(arch: str, exporter: str) -> None:
    image_shape = (3, 32, 32) if arch != "plain" else (1, 16, 16)
    model = cached_export(arch, image_shape, exporter)
    x = np.random.default_rng(0).uniform(0, 1, (7, *image_shape)).astype(np.float32)
    expected = onnx_runtime_outputs(model, x)
    for memory_format in MEMORY_FORMATS:
        assert np.abs(torch_view_outputs(model, x, memory_format) - expected).max() <= TOLERANCE, memory_format


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_feature_map_is_the_last_spatial_stage(exporter: str) -> None:
    model = cached_export("norm", (3, 32, 32), exporter)
    graph = TorchGraph(model)
    anatomy = anatomy_of(graph, torch.rand(2, 3, 32, 32))
    assert anatomy.feature_shape == (16, 16, 16)  # before global average pooling, after the last conv stage
    # The noise lives on the backbone only: two folded convs, weight and bias each, none on the linear head.
    assert len(anatomy.noise_targets) == 4
    assert {t.channels for t in anatomy.noise_targets} == {8, 16}


def _hand_made_graph() -> onnx.ModelProto:
    """Ops the exporters fold away here but other producers emit: BatchNormalization, Transpose, Concat,
    Squeeze/Unsqueeze with axes as inputs, Reshape with allowzero, Clip with min/max inputs, Constant, Gather."""
    rng = np.random.default_rng(3)

    def init(name: str, array: np.ndarray) -> TensorProto:
        return numpy_helper.from_array(np.asarray(array), name)

    initializers = [
        init("w", rng.normal(0, 0.5, (4, 2, 3, 3)).astype(np.float32)),
        init("scale", rng.uniform(0.5, 1.5, 4).astype(np.float32)),
        init("shift", rng.normal(0, 0.2, 4).astype(np.float32)),
        init("mean", rng.normal(0, 0.2, 4).astype(np.float32)),
        init("var", rng.uniform(0.5, 2.0, 4).astype(np.float32)),
        init("fc", rng.normal(0, 0.5, (16, 5)).astype(np.float32)),
        init("axes", np.array([2, 3], dtype=np.int64)),
        init("flat", np.array([0, -1], dtype=np.int64)),
        init("low", np.array(-0.5, dtype=np.float32)),
        init("high", np.array(2.0, dtype=np.float32)),
        init("pick", np.array([0, 2], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x_nchw", "w"], ["conv"], pads=[1, 0, 1, 2], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["conv", "scale", "shift", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Clip", ["bn", "low", "high"], ["act"]),
        helper.make_node("AveragePool", ["act"], ["pooled"], kernel_shape=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("Concat", ["pooled", "pooled"], ["twice"], axis=1),
        helper.make_node("ReduceMean", ["twice", "axes"], ["summary"], keepdims=1),
        helper.make_node("Squeeze", ["summary", "axes"], ["squeezed"]),
        helper.make_node("Unsqueeze", ["squeezed", "axes"], ["again"]),
        helper.make_node("Reshape", ["again", "flat"], ["vector8"], allowzero=0),
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2.0, np.float32))),
        helper.make_node("Mul", ["vector8", "two"], ["scaled"]),
        helper.make_node("Concat", ["scaled", "vector8"], ["vector16"], axis=1),
        helper.make_node("MatMul", ["vector16", "fc"], ["logits5"]),
        helper.make_node("Gather", ["logits5", "pick"], ["picked"], axis=1),
        helper.make_node("Sub", ["logits5", "logits5"], ["zeros"]),
        helper.make_node("Add", ["logits5", "zeros"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hand_made",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 9, 9, 2])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 5]),
            helper.make_tensor_value_info("picked", TensorProto.FLOAT, ["n", 2]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def test_hand_made_graph_with_batchnorm_and_shape_ops() -> None:
    model = _hand_made_graph().SerializeToString()
    x = np.random.default_rng(4).uniform(0, 1, (3, 9, 9, 2)).astype(np.float32)
    difference = np.abs(torch_view_outputs(model, x) - onnx_runtime_outputs(model, x)).max()
    assert difference <= TOLERANCE


def test_batchnorm_carries_the_noise_instead_of_its_conv() -> None:
    graph = TorchGraph(_hand_made_graph().SerializeToString())
    anatomy = anatomy_of(graph, torch.rand(2, 9, 9, 2))
    assert anatomy.feature == "twice"  # the last map with spatial extent, just before the global mean
    assert [t.param for t in anatomy.noise_targets] == ["scale", "shift"]


def _with_node(op_type: str, domain: str = "") -> bytes:
    nodes = [helper.make_node(op_type, ["x"], ["y"], domain=domain)]
    graph = helper.make_graph(
        nodes,
        "one_node",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


@pytest.mark.parametrize(
    ("op_type", "domain", "named"), [("Hardmax", "", "Hardmax"), ("Evil", "com.attacker", "com.attacker::Evil")]
)
def test_unsupported_operator_is_refused_by_name(op_type: str, domain: str, named: str) -> None:
    with pytest.raises(UnsupportedGraph, match=named):
        TorchGraph(_with_node(op_type, domain))


def test_matches_onnx_runtime_on_every_test_zoo_model(zoo: Path) -> None:
    """Every architecture of the zoo, from both exporters, in both layouts the zoo writes."""
    from scanner.calibration.zoos import artifact_for, read_zoo

    seen = set()
    for model in read_zoo(zoo).models:
        artifact = artifact_for(model.path)
        x = np.random.default_rng(1).uniform(0, 1, (5, *artifact.spec.image_shape)).astype(np.float32)
        expected = onnx_runtime_outputs(artifact.onnx_bytes, x)
        for memory_format in MEMORY_FORMATS:
            difference = np.abs(torch_view_outputs(artifact.onnx_bytes, x, memory_format) - expected)
            assert difference.max() <= TOLERANCE, (model.path.name, memory_format)
        seen.add((model.architecture, artifact.spec.layout.value))
    assert {arch for arch, _ in seen} >= {"cnn", "cnn_bn", "resnet"}
