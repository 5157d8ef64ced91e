"""load_model on ordinary ONNX files: the input spec read from the graph, the bytes handed on, the hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from scanner.errors import UsageError
from scanner.findings import Layout, Normalization
from scanner.intake import (
    AmbiguousLayout,
    FileTooLarge,
    IntakeLimits,
    LayoutMismatch,
    NotAnImageModel,
    PickleRefused,
    UnknownInputShape,
    Unreadable,
    load_model,
)
from tests.intake.builders import move_weights_outside, save, tiny_cnn
from tests.intake.hostile import custom_operator_domain


@pytest.mark.parametrize(
    ("layout", "channels", "image_shape"),
    [
        ("NCHW", 3, (3, 8, 12)),
        ("NCHW", 1, (1, 8, 12)),
        ("NHWC", 3, (8, 12, 3)),
        ("NHWC", 1, (8, 12, 1)),
    ],
)
def test_spec_is_read_from_the_graph(tmp_path: Path, layout: str, channels: int, image_shape: tuple[int, ...]) -> None:
    path = save(tiny_cnn(layout=layout, channels=channels, height=8, width=12, classes=7), tmp_path / "m.onnx")

    spec = load_model(path).spec

    assert (spec.layout, spec.channels, spec.height, spec.width, spec.num_classes) == (layout, channels, 8, 12, 7)
    assert spec.image_shape == image_shape
    assert (spec.input_name, spec.output_name) == ("image", "scores")
    assert spec.value_range == (0.0, 1.0)


def test_artifact_is_the_file_as_given(tmp_path: Path) -> None:
    path = save(tiny_cnn(), tmp_path / "m.onnx")

    artifact = load_model(path, value_range=(-1.0, 1.0))

    assert artifact.onnx_bytes == path.read_bytes()
    assert artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert artifact.path == str(path)
    assert artifact.spec.value_range == (-1.0, 1.0)


def test_fixed_batch_and_softmax_output(tmp_path: Path) -> None:
    spec = load_model(save(tiny_cnn(batch=1, softmax=True, classes=4), tmp_path / "m.onnx")).spec
    assert (spec.num_classes, spec.layout) == (4, Layout.NCHW)


def test_ambiguous_layout_needs_the_callers_word(tmp_path: Path) -> None:
    # 3 x 3 x 3 images read as NCHW and as NHWC alike.
    path = save(tiny_cnn(channels=3, height=3, width=3), tmp_path / "m.onnx")
    with pytest.raises(AmbiguousLayout):
        load_model(path)
    assert load_model(path, layout=Layout.NCHW).spec.layout is Layout.NCHW


@pytest.mark.parametrize(("built", "given"), [("NCHW", Layout.NHWC), ("NHWC", Layout.NCHW)])
def test_a_layout_that_contradicts_the_model_is_an_error_not_a_pass(tmp_path: Path, built: str, given: Layout) -> None:
    """A wrong --layout used to make an image classifier 'not applicable', which the default policy only warns
    about: the backdoored model went through with exit 0."""
    path = save(tiny_cnn(layout=built, channels=1, height=16, width=16), tmp_path / "m.onnx")
    with pytest.raises(LayoutMismatch, match=f"other layout, not {given.value}"):
        load_model(path, layout=given)
    assert load_model(path).spec.layout is Layout(built)


def test_open_image_size_is_refused(tmp_path: Path) -> None:
    model = tiny_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(UnknownInputShape):
        load_model(save(model, tmp_path / "m.onnx"))


def test_value_range_must_be_an_interval(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_model(save(tiny_cnn(), tmp_path / "m.onnx"), value_range=(1.0, 0.0))


def test_external_data_inside_the_directory_is_inlined(tmp_path: Path) -> None:
    model = tiny_cnn()
    expected = _run(model, np.ones((2, 3, 8, 8), np.float32))
    move_weights_outside(model, "weights/fc.bin", tmp_path / "weights" / "fc.bin")
    path = save(model, tmp_path / "m.onnx")

    artifact = load_model(path)

    inlined = onnx.load_model_from_string(artifact.onnx_bytes)
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in inlined.graph.initializer)
    assert artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "weights" / "fc.bin").unlink()  # the artifact must not need the file any more
    np.testing.assert_allclose(_run(inlined, np.ones((2, 3, 8, 8), np.float32)), expected, rtol=1e-6)


def test_size_limit_is_configurable(tmp_path: Path) -> None:
    path = save(tiny_cnn(), tmp_path / "m.onnx")
    size = path.stat().st_size
    load_model(path, limits=IntakeLimits(max_model_bytes=size))
    with pytest.raises(FileTooLarge, match="over the intake limit") as refused:
        load_model(path, limits=IntakeLimits(max_model_bytes=size - 1))
    assert refused.value.kind == "file_too_large"


def test_torch_exported_cnn(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    ).eval()
    path = tmp_path / "torch_cnn.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 32, 32),),
        str(path),
        dynamo=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )

    spec = load_model(path).spec

    assert (spec.layout, spec.channels, spec.height, spec.width, spec.num_classes) == (Layout.NCHW, 3, 32, 32, 10)
    assert (spec.input_name, spec.output_name) == ("x", "logits")


def _run(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"image": images})[0])


def test_custom_domain_passes_when_allowed(tmp_path: Path) -> None:
    path = custom_operator_domain(tmp_path)
    artifact = load_model(path, allowed_domains=frozenset({"com.example.evil"}))
    assert artifact.spec.num_classes == 10


def test_unreadable_file_is_a_refusal_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(tiny_cnn(), tmp_path / "m.onnx")
    real_open = os.open

    def denied(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(file) == path.resolve():  # the tests run as root, who reads every file: the OS's refusal is simulated
            raise PermissionError(13, "Permission denied")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(Unreadable, match="Permission denied") as refused:
        load_model(path)
    assert refused.value.kind == "unreadable"


def test_pickle_is_refused_before_its_size_is_judged(tmp_path: Path) -> None:
    path = tmp_path / "huge.pt"
    path.write_bytes(b"\x80\x02" + bytes(100))
    with pytest.raises(PickleRefused):
        load_model(path, limits=IntakeLimits(max_model_bytes=10))


def test_limits_must_be_positive() -> None:
    with pytest.raises(UsageError, match="max_classes"):
        IntakeLimits(max_classes=0)


def test_empty_external_tensor_leaves_no_reference_behind(tmp_path: Path) -> None:
    model = tiny_cnn()
    empty = onnx.numpy_helper.from_array(np.zeros((0,), np.float32), "unused")
    model.graph.initializer.append(empty)
    move_weights_outside(model, "unused.bin", tmp_path / "unused.bin", tensor="unused")

    artifact = load_model(save(model, tmp_path / "m.onnx"))

    tensors = onnx.load_model_from_string(artifact.onnx_bytes).graph.initializer
    assert all(t.data_location == onnx.TensorProto.DEFAULT and not t.external_data for t in tensors)


def test_layout_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown input layout"):
        load_model(save(tiny_cnn(), tmp_path / "m.onnx"), layout="CHWN")  # type: ignore[arg-type]


def test_class_output_is_found_behind_an_extra_output(tmp_path: Path) -> None:
    """A [N, 1] output listed first (a confidence, say) does not hide the (batch, classes) output after it."""
    model = tiny_cnn(classes=7)
    model.graph.node.append(onnx.helper.make_node("ReduceMax", ["scores"], ["confidence"], axes=[1], keepdims=1))
    model.graph.output.insert(0, onnx.helper.make_tensor_value_info("confidence", onnx.TensorProto.FLOAT, ["N", 1]))

    spec = load_model(save(model, tmp_path / "m.onnx")).spec

    assert (spec.output_name, spec.num_classes) == ("scores", 7)


def test_a_single_output_unit_is_not_applicable(tmp_path: Path) -> None:
    model = tiny_cnn(classes=1)  # a binary detector's single logit: no class scores to probe
    with pytest.raises(NotAnImageModel, match="single output unit"):
        load_model(save(model, tmp_path / "m.onnx"))


IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_a_normalisation_gives_each_channel_its_own_range(tmp_path: Path) -> None:
    artifact = load_model(save(tiny_cnn(), tmp_path / "m.onnx"), normalization=IMAGENET)

    assert artifact.spec.normalization == IMAGENET
    expected = [((0 - m) / s, (1 - m) / s) for m, s in zip(IMAGENET.mean, IMAGENET.std, strict=True)]
    assert np.allclose(artifact.spec.channel_ranges, expected)
    assert artifact.spec.channel_ranges[0] == pytest.approx((-2.1179, 2.2489), abs=1e-4)
    # without one, every channel takes the value range, as before
    plain = load_model(save(tiny_cnn(), tmp_path / "p.onnx"), value_range=(-1.0, 1.0))
    assert plain.spec.normalization is None and plain.spec.channel_ranges == ((-1.0, 1.0),) * 3


@pytest.mark.parametrize(
    ("normalization", "message"),
    [
        (Normalization(mean=(0.5,), std=(0.25,)), "gives 1 channels' mean and std, but m.onnx takes 3 channels"),
        (Normalization(mean=(0.5, 0.5, 0.5), std=(0.2, 0.0, 0.2)), "is not usable"),
        (Normalization(mean=(0.5, 0.5, 0.5), std=(0.2, -0.2, 0.2)), "is not usable"),
        (Normalization(mean=(0.5, float("nan"), 0.5), std=(0.2, 0.2, 0.2)), "is not usable"),
        (Normalization(mean=(0.5, 0.5, 0.5), std=(0.2, 0.2)), "gives 3 means and 2 stds"),
    ],
)
def test_a_normalisation_must_fit_the_model(tmp_path: Path, normalization: Normalization, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_model(save(tiny_cnn(), tmp_path / "m.onnx"), normalization=normalization)
