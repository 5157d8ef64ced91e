"""The torch view reads what both torch exporters emit for real architectures (ResNet, MobileNetV2/V3, EfficientNet,
ConvNeXt, ViT, DeiT, GroupNorm/InstanceNorm/Resize), matches ONNX Runtime on them and on each operator added for
them, cuts each into backbone and head, and BAN scans each."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from scanner.detectors.ban.detector import BanDetector, BanSettings
from scanner.detectors.interface import CleanData, DetectionContext
from scanner.findings import InputSpec, Layout, ModelArtifact, Status
from scanner.torchview import TorchGraph
from scanner.torchview.anatomy import anatomy_of
from tests.torchview.real_architectures import ARCHITECTURES, EXPORTERS, cached_export
from tests.torchview.test_graph import MEMORY_FORMATS, TOLERANCE, onnx_runtime_outputs, torch_view_outputs

QUICK = BanSettings(mask_epochs=1, mask_batches=2, noise_steps=1, probes=1, fit_samples=24, eval_samples=24,
                    universal_steps=1, universal_samples=4, universal_eval_samples=8)  # fmt: skip


def _ops(model: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(model).graph.node}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_matches_onnx_runtime(arch: str, exporter: str) -> None:
    model = cached_export(arch, 10, 32, exporter)
    x = np.random.default_rng(0).uniform(0, 1, (5, 3, 32, 32)).astype(np.float32)
    expected = onnx_runtime_outputs(model, x)
    assert np.abs(expected).max() > 1e-3  # a model whose outputs vanish would match anything
    for memory_format in MEMORY_FORMATS:
        assert np.abs(torch_view_outputs(model, x, memory_format) - expected).max() <= TOLERANCE, memory_format


def test_the_exports_contain_the_operators_they_stand_for() -> None:
    """What the architecture tests above exercise, so that an exporter change that drops an operator shows."""
    assert {"LayerNormalization", "Gelu", "Range"} <= _ops(cached_export("convnext", 10, 32, "dynamo"))
    assert {"LayerNormalization", "Mod", "Where", "Expand", "Softmax"} <= _ops(cached_export("vit", 10, 32, "legacy"))
    assert {"Split", "LayerNormalization"} <= _ops(cached_export("deit", 10, 32, "legacy"))
    assert {"ReduceMean", "Pow", "Sqrt"} <= _ops(cached_export("deit", 10, 32, "legacy-old"))
    assert "LayerNormalization" not in _ops(cached_export("convnext", 10, 32, "legacy-old"))
    assert {"InstanceNormalization", "Resize"} <= _ops(cached_export("norms", 10, 32, "dynamo"))
    assert {"HardSwish", "HardSigmoid"} <= _ops(cached_export("mobilenet_v3", 10, 32, "legacy"))


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize(
    ("arch", "noisy_norm"), [("convnext", "LayerNormalization"), ("vit", "LayerNormalization"), ("deit", None)]
)
def test_layer_norm_models_are_cut_after_their_last_norm_and_take_noise_on_it(
    arch: str, noisy_norm: str | None, exporter: str
) -> None:
    graph = TorchGraph(cached_export(arch, 10, 32, exporter))
    anatomy = anatomy_of(graph, torch.rand(2, 3, 32, 32))
    producer = graph.producer[anatomy.feature]
    if arch == "convnext":  # after torchview's LayerNorm2d over the pooled map: (channels, 1, 1)
        assert anatomy.feature_shape == (32, 1, 1)
    else:  # the final LayerNorm's tokens, before the head picks the class (and distillation) token
        assert producer.op_type == "LayerNormalization"
        assert anatomy.feature_shape == ((17 if arch == "vit" else 18), 32)
    norm_params = {
        t.param for t in anatomy.noise_targets if graph.consumers[t.param][0].op_type == "LayerNormalization"
    }
    # Every LayerNorm of the backbone (two per block, plus the stem's and the final one) carries noise on its scale
    # and shift, beside the convolutions and the linear layers.
    backbone_norms = [n for n in graph.nodes if n.op_type == "LayerNormalization" and n.outputs[0] != anatomy.feature]
    assert len(norm_params) >= 2 * len(backbone_norms) >= 8
    assert any(graph.consumers[t.param][0].op_type == "MatMul" for t in anatomy.noise_targets)
    assert noisy_norm is None or noisy_norm in {graph.consumers[t.param][0].op_type for t in anatomy.noise_targets}


def _artifact(model: bytes, classes: int, size: int) -> ModelArtifact:
    spec = InputSpec("x", "logits", Layout.NCHW, 3, size, size, classes)
    return ModelArtifact("model.onnx", hashlib.sha256(model).hexdigest(), model, spec)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_ban_scans_every_architecture(arch: str) -> None:
    model = cached_export(arch, 10, 32, "dynamo")
    clean = CleanData(np.random.default_rng(2).uniform(0, 1, (48, 3, 32, 32)).astype(np.float32))
    result = BanDetector(QUICK).detect(_artifact(model, 10, 32), DetectionContext(clean_data=clean))
    assert result.status is Status.SCANNED, result.reason
    assert result.score is not None and 0.0 <= result.score <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_matches_onnx_runtime_at_224_with_1000_classes(arch: str) -> None:
    model = cached_export(arch, 1000, 224, "legacy")
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 224, 224)).astype(np.float32)
    expected = onnx_runtime_outputs(model, x)
    assert expected.shape == (2, 1000)
    assert np.abs(torch_view_outputs(model, x) - expected).max() <= TOLERANCE


def _one_node(
    op_type: str,
    input_shape: list[int],
    output_shapes: list[list[int] | None],
    initializers: dict[str, np.ndarray],
    opset: int,
    **attributes: object,
) -> bytes:
    """A graph of one `op_type` node on input x and the given initializers (in order; "" for an omitted one)."""
    names = ["x", *initializers]
    outputs = [f"y{i}" for i in range(len(output_shapes))]
    node = helper.make_node(op_type, [n if not n.startswith("_") else "" for n in names], outputs, **attributes)
    graph = helper.make_graph(
        [node],
        op_type,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
            for name, shape in zip(outputs, output_shapes, strict=True)
        ],
        [numpy_helper.from_array(v, k) for k, v in initializers.items() if not k.startswith("_")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model.SerializeToString()


_rng = np.random.default_rng(7)
_C = 6


def _per_channel(low: float, high: float, count: int = _C) -> np.ndarray:
    return _rng.uniform(low, high, count).astype(np.float32)


def _resize(mode: str, transform: str, scales: list[float] | None, sizes: list[int] | None, **extra: object) -> bytes:
    inputs: dict[str, np.ndarray] = {"_roi": np.zeros(0, np.float32)}
    inputs["scales" if scales else "_scales"] = np.array(scales or [], np.float32)
    if sizes:
        inputs["sizes"] = np.array(sizes, np.int64)
    return _one_node(
        "Resize", [2, _C, 7, 9], [None], inputs, 19, mode=mode, coordinate_transformation_mode=transform, **extra
    )


SINGLE_OPS = {
    "layer_norm_last_axis": _one_node(
        "LayerNormalization", [2, 5, _C], [None], {"s": _per_channel(0.5, 1.5), "b": _per_channel(-1, 1)}, 17,
        epsilon=1e-3,
    ),
    "layer_norm_two_axes_three_outputs": _one_node(
        "LayerNormalization", [2, 3, 4, _C], [None, None, None],
        {"s": _rng.uniform(0.5, 1.5, (4, _C)).astype(np.float32)}, 17, axis=-2,
    ),
    "layer_norm_broadcast_scale": _one_node(
        "LayerNormalization", [2, 3, 4, _C], [None], {"s": _per_channel(0.5, 1.5), "b": _per_channel(-1, 1)}, 17,
        axis=2,
    ),
    "group_norm_opset18_per_group": _one_node(
        "GroupNormalization", [2, _C, 5, 5], [None], {"s": _per_channel(0.5, 1.5, 3), "b": _per_channel(-1, 1, 3)}, 18,
        num_groups=3,
    ),
    "group_norm_opset21_per_channel": _one_node(
        "GroupNormalization", [2, _C, 5, 5], [None], {"s": _per_channel(0.5, 1.5), "b": _per_channel(-1, 1)}, 21,
        num_groups=2,
    ),
    "instance_norm": _one_node(
        "InstanceNormalization", [2, _C, 5, 5], [None], {"s": _per_channel(0.5, 1.5), "b": _per_channel(-1, 1)}, 17,
        epsilon=1e-4,
    ),
    "split_sizes_input": _one_node("Split", [2, 7, 3], [None, None], {"split": np.array([3, 4], np.int64)}, 13, axis=1),
    "split_num_outputs_uneven": _one_node("Split", [2, 7, 3], [None, None, None], {}, 18, axis=1, num_outputs=3),
    "split_equal_opset13": _one_node("Split", [2, 3, 8], [None, None], {}, 13, axis=-1),
    "resize_nearest_asymmetric_floor": _resize("nearest", "asymmetric", [1, 1, 2, 3], None, nearest_mode="floor"),
    "resize_linear_half_pixel_down": _resize("linear", "half_pixel", [1, 1, 0.5, 0.75], None),
    "resize_linear_pytorch_half_pixel_sizes": _resize("linear", "pytorch_half_pixel", None, [2, _C, 14, 5]),
    "resize_linear_align_corners": _resize("linear", "align_corners", [1, 1, 2, 2], None),
    "resize_cubic_half_pixel": _resize("cubic", "half_pixel", [1, 1, 2, 1.5], None),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SINGLE_OPS))
def test_each_new_operator_matches_onnx_runtime(name: str) -> None:
    model = SINGLE_OPS[name]
    proto = onnx.load_from_string(model)
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(8).normal(0, 2, shape).astype(np.float32)
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})
    graph = TorchGraph(model)
    with torch.no_grad():
        got = graph.run({"x": torch.from_numpy(x)}, graph.output_names)
    for output, reference in zip(graph.output_names, expected, strict=True):
        assert got[output].shape == reference.shape, output
        assert np.abs(got[output].numpy() - reference).max() <= TOLERANCE, output


def test_integer_operators_match_onnx_runtime() -> None:
    """Mod (both sign conventions) and Range, as the legacy exporter's attention shape arithmetic uses them."""
    import onnxruntime as ort

    a = numpy_helper.from_array(np.array([7, -7, 7, -7], np.int64), "a")
    b = numpy_helper.from_array(np.array([3, 3, -3, -3], np.int64), "b")
    nodes = [
        helper.make_node("Mod", ["a", "b"], ["python_mod"]),
        helper.make_node("Mod", ["a", "b"], ["c_mod"], fmod=1),
        helper.make_node("Cast", ["x"], ["start"], to=TensorProto.INT64),
        helper.make_node("Range", ["start", "limit", "delta"], ["range"]),
        helper.make_node("Add", ["python_mod", "c_mod"], ["both"]),
    ]
    graph = helper.make_graph(
        nodes,
        "integers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info(n, TensorProto.INT64, None) for n in ("both", "python_mod", "range")],
        [
            a,
            b,
            numpy_helper.from_array(np.array(11, np.int64), "limit"),
            numpy_helper.from_array(np.array(3, np.int64), "delta"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    data = model.SerializeToString()
    x = np.array(-1.0, np.float32)
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    view = TorchGraph(data)
    got = view.run({"x": torch.from_numpy(x)}, view.output_names)
    for output, reference in zip(view.output_names, expected, strict=True):
        np.testing.assert_array_equal(got[output].numpy(), reference)


def test_resnet_at_224_takes_gradients_on_channels_last_images() -> None:
    """ResNet's strided 1x1 shortcuts at 224x224 on channels-last images, as BAN runs them on CPU: the torch view
    matches ONNX Runtime and the noise gradients come back (torch's own strided 1x1 backward crashes the process
    there; the view runs it on every other pixel instead)."""
    from scanner.detectors.ban.steps import BanModel, Cost, adversarial_noise

    model = cached_export("resnet", 1000, 224, "legacy")
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 224, 224)).astype(np.float32)
    assert np.abs(torch_view_outputs(model, x, torch.channels_last) - onnx_runtime_outputs(model, x)).max() <= TOLERANCE
    graph = TorchGraph(model)
    images = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    ban = BanModel(graph, anatomy_of(graph, images), Cost())
    noise = adversarial_noise(
        ban, images, torch.tensor([1, 2]), eps=0.3, steps=1, generator=torch.Generator().manual_seed(0)
    )
    assert noise and all(bool(torch.isfinite(value).all()) for value in noise.values())
    assert any(bool(value.abs().max() > 0) for value in noise.values())
