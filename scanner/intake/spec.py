"""Read how to feed a model from its graph: the one image input (layout, channels, size) and the class output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner.findings import InputSpec, Layout
from scanner.intake.errors import (
    AmbiguousInputs,
    AmbiguousLayout,
    AmbiguousOutputs,
    InputTooLarge,
    LayoutMismatch,
    NotAnImageModel,
    OutputTooLarge,
    UnknownInputShape,
    UnknownOutputShape,
    UnsupportedInputType,
    shown,
)
from scanner.intake.limits import IntakeLimits

if TYPE_CHECKING:
    import onnx

IMAGE_CHANNELS = frozenset({1, 3})
# A batch of images: NCHW or NHWC.
IMAGE_RANK = 4
# A dimension the graph leaves open (symbolic or missing) is None.
Dims = tuple[int | None, ...]


def infer_spec(
    model: onnx.ModelProto,
    name: str,
    *,
    limits: IntakeLimits,
    value_range: tuple[float, float] = (0.0, 1.0),
    layout: Layout | None = None,
) -> InputSpec:
    image_input = _single_input(model, name)
    dims = _image_dims(image_input, name)
    chosen = _layout(dims, name, layout)
    channels, height, width = (dims[1], dims[2], dims[3]) if chosen is Layout.NCHW else (dims[3], dims[1], dims[2])
    if channels is None or height is None or width is None:
        raise UnknownInputShape(f"{name} declares input '{shown(image_input.name)}' with open dimensions {_show(dims)}")
    _check_bounds(dims[0], channels, height, width, name, limits)
    output_name, num_classes = _class_output(model, name)
    if num_classes > limits.max_classes:
        raise OutputTooLarge(f"{name} declares {num_classes} classes, over the intake limit of {limits.max_classes}")
    return InputSpec(
        input_name=image_input.name,
        output_name=output_name,
        layout=chosen,
        channels=channels,
        height=height,
        width=width,
        num_classes=num_classes,
        value_range=value_range,
    )


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller must feed: before IR 4 every initializer is also listed as a graph input."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def _single_input(model: onnx.ModelProto, name: str) -> onnx.ValueInfoProto:
    inputs = graph_inputs(model)
    if not inputs:
        raise NotAnImageModel(f"{name} takes no input")
    if len(inputs) > 1:
        listed = ", ".join(f"'{shown(value.name)}'" for value in inputs)
        raise AmbiguousInputs(f"{name} has {len(inputs)} inputs ({listed}); an image classifier has exactly one")
    return inputs[0]


def _image_dims(value: onnx.ValueInfoProto, name: str) -> Dims:
    """The input's dimensions, once it is known to be a float32 batch of images.

    Deliberately not applicable (fine models, but no image classifiers the detectors can feed): sequence, map and
    optional inputs, and tensors of another rank than 4, such as flat feature rows [N, F] or 5-D volumes and clips.
    A rank-4 input of another element type than float32 reads as images (uint8 pixels, float16) that the scanner
    cannot feed, which is an error: passing it as not applicable would let an image classifier through unscanned.
    (An input without a declared shape never gets here: the ONNX checker refuses it.)
    """
    import onnx

    if not value.type.HasField("tensor_type"):
        raise NotAnImageModel(f"{name} takes a non-tensor input '{shown(value.name)}', not an image batch")
    tensor_type = value.type.tensor_type
    dims = _dims(tensor_type)
    element = _type_name(tensor_type.elem_type)
    if len(dims) != IMAGE_RANK:
        raise NotAnImageModel(f"{name} takes a {element} input {_show(dims)}, not a batch of images")
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UnsupportedInputType(f"{name} takes {element} images {_show(dims)}; the scanner feeds float32")
    return dims


def _type_name(elem_type: int) -> str:
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()
    except ValueError:
        return f"unknown-type-{elem_type}"


def _layout(dims: Dims, name: str, requested: Layout | None) -> Layout:
    channels_first, channels_last = dims[1] in IMAGE_CHANNELS, dims[3] in IMAGE_CHANNELS
    if requested is not None:
        fits, other_fits = (
            (channels_first, channels_last) if requested is Layout.NCHW else (channels_last, channels_first)
        )
        if not fits and other_fits:  # an error, not "not applicable": a wrong flag must not let a model through
            raise LayoutMismatch(
                f"{name} takes input {_show(dims)}, which reads as images in the other layout, not {requested.value}"
            )
        if not fits and dims[1] is not None and dims[3] is not None:
            raise NotAnImageModel(f"{name} takes input {_show(dims)}: no 1 or 3 channels in {requested.value}")
        return requested
    if channels_first and not channels_last:
        return Layout.NCHW
    if channels_last and not channels_first:
        return Layout.NHWC
    if channels_first and channels_last:
        raise AmbiguousLayout(f"{name} takes input {_show(dims)}, which reads as NCHW and as NHWC")
    if dims[1] is None or dims[3] is None:
        raise UnknownInputShape(f"{name} takes input {_show(dims)}: the channel axis is not fixed")
    raise NotAnImageModel(f"{name} takes input {_show(dims)}, which has no axis of 1 or 3 image channels")


def _check_bounds(batch: int | None, channels: int, height: int, width: int, name: str, limits: IntakeLimits) -> None:
    if min(channels, height, width) <= 0:
        raise UnknownInputShape(f"{name} declares an image of {channels}x{height}x{width}")
    if max(height, width) > limits.max_input_side or channels * height * width > limits.max_input_elements:
        raise InputTooLarge(
            f"{name} declares {height}x{width} images with {channels} channels, over the intake limit of"
            f" {limits.max_input_side} pixels a side and {limits.max_input_elements} values an image"
        )
    if batch is not None and batch * channels * height * width > limits.max_fixed_batch_elements:
        raise InputTooLarge(
            f"{name} fixes its batch at {batch} images, over the intake limit of"
            f" {limits.max_fixed_batch_elements} input values a batch"
        )


def _class_output(model: onnx.ModelProto, name: str) -> tuple[str, int]:
    """The one output shaped (batch, classes), allowing trailing axes of size 1.

    Other outputs may sit beside it (a [N, 1] confidence, a [N] label), but never a second output that could be
    the class scores: neither another (batch, classes) output nor one whose shape is open. Scanning the wrong one
    would pass a backdoored model whose real class scores were never looked at.
    """
    outputs = list(model.graph.output)
    if not outputs:
        raise NotAnImageModel(f"{name} has no output")
    # Every tensor output declares a shape (the ONNX checker sees to it), though maybe with open axes.
    shapes = {value.name: _dims(value.type.tensor_type) for value in outputs if value.type.HasField("tensor_type")}
    if any(_is_open(dims) for dims in shapes.values()):
        shapes.update(_inferred_output_shapes(model))
    described = ", ".join(f"'{shown(n)}' {_show(d)}" for n, d in shapes.items())
    classes = {n: count for n, dims in shapes.items() if (count := _class_count(dims))}
    if len(classes) > 1:
        listed = ", ".join(f"'{shown(n)}'" for n in classes)
        raise AmbiguousOutputs(f"{name} has {len(classes)} outputs shaped (batch, classes): {listed}")
    if any(_is_open(dims) for dims in shapes.values()):
        raise UnknownOutputShape(f"{name} does not declare the number of classes in its output ({described})")
    if classes:
        ((output_name, num_classes),) = classes.items()
        return output_name, num_classes
    if any(len(dims) >= 2 and all(d == 1 for d in dims[1:]) for dims in shapes.values()):
        raise NotAnImageModel(f"{name} has a single output unit ({described}); the detectors need class scores")
    raise NotAnImageModel(f"{name} has no output shaped (batch, classes): {described}")


def _class_count(dims: Dims) -> int | None:
    """C for a (batch, C) output with C >= 2, trailing axes of size 1 allowed; None for any other shape."""
    if _is_open(dims) or len(dims) < 2:
        return None
    class_axes = [d for d in dims[1:] if d != 1]
    if len(class_axes) == 1 and class_axes[0] is not None and class_axes[0] >= 2:
        return class_axes[0]
    return None


def _is_open(dims: Dims) -> bool:
    """An axis after the batch axis that the graph leaves open."""
    return any(d is None for d in dims[1:])


def _inferred_output_shapes(model: onnx.ModelProto) -> dict[str, Dims]:
    """ONNX shape inference (static, nothing executed) for outputs whose shape the exporter left open."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError):
        return {}
    return {
        value.name: _dims(value.type.tensor_type)
        for value in inferred.graph.output
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape")
    }


def _dims(tensor_type: onnx.TypeProto.Tensor) -> Dims:
    if not tensor_type.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)


def _show(dims: Dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
