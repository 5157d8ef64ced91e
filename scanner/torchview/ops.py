"""The op table: each supported ONNX operator as a small torch function (inputs, attributes) -> outputs.

Only operators that image classifiers (CNNs, ConvNeXt, ViT) use are here, from both torch exporters (legacy: opset
9-20, BatchNorm folded into Conv; dynamo: opset 18+, Reshape with allowzero, axes as inputs). Anything else is
refused by name before a single node runs, so nothing in a model file is ever executed, only interpreted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Attributes = Mapping[str, Any]
# inputs (None for an omitted optional input), attributes -> outputs
OpFunction = Callable[[Sequence[torch.Tensor | None], Attributes], list[torch.Tensor]]

# ONNX TensorProto data types that tensors may be cast to.
_ONNX_DTYPES: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
}


def _ints(tensor: torch.Tensor | None) -> list[int]:
    return [] if tensor is None else [int(v) for v in tensor.reshape(-1).tolist()]


def _spatial_pads(attrs: Attributes, rank: int) -> list[int]:
    """ONNX pads (begin_1..begin_n, end_1..end_n) as F.pad's (end-first, last axis first) list."""
    pads = list(attrs.get("pads", [0] * (2 * rank)))
    begins, ends = pads[:rank], pads[rank:]
    out: list[int] = []
    for axis in reversed(range(rank)):
        out += [begins[axis], ends[axis]]
    return out


def _auto_pads(
    attrs: Attributes, x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> list[int]:
    mode = attrs.get("auto_pad", "NOTSET")
    if isinstance(mode, bytes):
        mode = mode.decode()
    rank = len(kernel)
    if mode in ("NOTSET", ""):
        return _spatial_pads(attrs, rank)
    if mode == "VALID":
        return [0] * (2 * rank)
    out: list[int] = []
    for axis in reversed(range(rank)):
        size = x.shape[2 + axis]
        target = math.ceil(size / strides[axis])
        total = max(0, (target - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1 - size)
        small, large = total // 2, total - total // 2
        out += [large, small] if mode == "SAME_LOWER" else [small, large]
    # out is (begin, end) per axis, last axis first; F.pad wants exactly that order.
    return out


def _conv(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, weight, bias = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
    assert x is not None and weight is not None
    rank = weight.dim() - 2
    kernel = list(attrs.get("kernel_shape", weight.shape[2:]))
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    pads = _auto_pads(attrs, x, kernel, strides, dilations)
    begin, end = pads[0::2], pads[1::2]  # last axis first
    if begin == end:  # symmetric: the convolution pads, without a copy of x
        padding = list(reversed(begin))
    else:
        x, padding = F.pad(x, pads), [0] * rank
    group = int(attrs.get("group", 1))
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    if _strided_pointwise_on_large_channels_last(x, kernel, strides, padding):
        # The same convolution as a stride-1 one on every s-th pixel: torch 2.13's CPU backward of a strided 1x1
        # convolution on channels-last images crashes the process (a segfault) from about 48 pixels a side (8 to 40
        # run; 48, 56, 64, 112 crash), as in ResNet's downsampling shortcuts at 224x224.
        x, strides = x[:, :, :: strides[0], :: strides[1]], [1, 1]
    return [conv(x, weight, bias, stride=strides, padding=padding, dilation=dilations, groups=group)]


def _strided_pointwise_on_large_channels_last(
    x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int], padding: Sequence[int]
) -> bool:
    return (
        len(kernel) == 2
        and all(k == 1 for k in kernel)
        and any(s > 1 for s in strides)
        and not any(padding)
        and min(x.shape[2:]) > 32  # the zoo's sizes keep the plain call (which runs there)
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _max_pool(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    pads = _auto_pads(attrs, x, kernel, strides, dilations)
    if any(pads):
        x = F.pad(x, pads, value=-math.inf)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[rank]
    return [pool(x, kernel, strides, 0, dilations, ceil_mode=bool(attrs.get("ceil_mode", 0)))]


def _average_pool(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    pads = _auto_pads(attrs, x, kernel, strides, [1] * rank)
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[rank]
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    if not any(pads):
        return [pool(x, kernel, strides, 0, ceil_mode=ceil_mode)]
    # Pad explicitly (ONNX pads may be asymmetric); divide by the count of real pixels unless padding counts.
    summed = pool(F.pad(x, pads), kernel, strides, 0, ceil_mode=ceil_mode)
    if int(attrs.get("count_include_pad", 0)):
        return [summed]
    ones = F.pad(torch.ones_like(x[:1, :1]), pads)
    return [summed / pool(ones, kernel, strides, 0, ceil_mode=ceil_mode)]


def _global_average_pool(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]


def _global_max_pool(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [x.amax(dim=tuple(range(2, x.dim())), keepdim=True)]


def _batch_norm(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, scale, shift, mean, var = inputs[:5]
    assert x is not None and scale is not None and shift is not None and mean is not None and var is not None
    shape = [1, -1] + [1] * (x.dim() - 2)
    inv = scale / torch.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    return [(x - mean.view(shape)) * inv.view(shape) + shift.view(shape)]


def _gemm(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    assert a is not None and b is not None
    if int(attrs.get("transA", 0)):
        a = a.t()
    if int(attrs.get("transB", 0)):
        b = b.t()
    out = float(attrs.get("alpha", 1.0)) * (a @ b)
    if c is not None:
        out = out + float(attrs.get("beta", 1.0)) * c
    return [out]


def _binary(function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpFunction:
    def op(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
        a, b = inputs[0], inputs[1]
        assert a is not None and b is not None
        return [function(a, b)]

    return op


def _variadic(function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpFunction:
    def op(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
        present = [t for t in inputs if t is not None]
        out = present[0]
        for other in present[1:]:
            out = function(out, other)
        return [out]

    return op


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def _unary(function: Callable[[torch.Tensor], torch.Tensor]) -> OpFunction:
    def op(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
        x = inputs[0]
        assert x is not None
        return [function(x)]

    return op


def _leaky_relu(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [F.leaky_relu(x, float(attrs.get("alpha", 0.01)))]


def _elu(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [F.elu(x, float(attrs.get("alpha", 1.0)))]


def _gelu(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    approximate = attrs.get("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    return [F.gelu(x, approximate="tanh" if approximate == "tanh" else "none")]


def _hard_sigmoid(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [torch.clamp(float(attrs.get("alpha", 0.2)) * x + float(attrs.get("beta", 0.5)), 0.0, 1.0)]


def _clip(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    low = inputs[1] if len(inputs) > 1 else None
    high = inputs[2] if len(inputs) > 2 else None
    low_value = float(low) if low is not None else attrs.get("min")
    high_value = float(high) if high is not None else attrs.get("max")
    return [torch.clamp(x, min=low_value, max=high_value)]


def _softmax(log: bool) -> OpFunction:
    def op(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
        x = inputs[0]
        assert x is not None
        axis = int(attrs.get("axis", -1))
        function = F.log_softmax if log else F.softmax
        if attrs.get("_opset", 13) < 13:
            # Before opset 13, Softmax flattens to 2-D at `axis` (default 1) and normalises the trailing block.
            axis = int(attrs.get("axis", 1)) % x.dim()
            flat = x.reshape(math.prod(x.shape[:axis]), -1)
            return [function(flat, dim=1).reshape(x.shape)]
        return [function(x, dim=axis)]

    return op


def _flatten(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    axis = int(attrs.get("axis", 1)) % (x.dim() + 1) if x.dim() else 0
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def _reshape(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, shape_tensor = inputs[0], inputs[1]
    assert x is not None
    shape = _ints(shape_tensor) if shape_tensor is not None else list(attrs["shape"])
    if not int(attrs.get("allowzero", 0)):
        shape = [x.shape[i] if dim == 0 else dim for i, dim in enumerate(shape)]
    return [x.reshape(shape)]


def _transpose(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    perm = list(attrs.get("perm", reversed(range(x.dim()))))
    return [x.permute(perm)]


def _concat(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    present = [t for t in inputs if t is not None and t.numel() > 0] or [t for t in inputs if t is not None]
    return [torch.cat(present, dim=int(attrs["axis"]))]


def _axes(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[int] | None:
    if len(inputs) > 1 and inputs[1] is not None:
        return _ints(inputs[1])
    return list(attrs["axes"]) if "axes" in attrs else None


def _squeeze(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    axes = _axes(inputs, attrs)
    if axes is None:
        return [x.squeeze()]
    axes = sorted((a % x.dim() for a in axes), reverse=True)
    for axis in axes:
        x = x.squeeze(axis)
    return [x]


def _unsqueeze(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    axes = _axes(inputs, attrs) or []
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return [x]


def _reduce(kind: str) -> OpFunction:
    def op(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
        x = inputs[0]
        assert x is not None
        axes = _axes(inputs, attrs)
        keepdims = bool(attrs.get("keepdims", 1))
        if not axes:
            if int(attrs.get("noop_with_empty_axes", 0)):
                return [x]
            axes = list(range(x.dim()))
        dims = tuple(a % x.dim() for a in axes)
        if kind == "mean":
            return [x.mean(dim=dims, keepdim=keepdims)]
        if kind == "sum":
            return [x.sum(dim=dims, keepdim=keepdims)]
        return [x.amax(dim=dims, keepdim=keepdims)]

    return op


def _identity(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [x]


def _dropout(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [x, torch.ones_like(x, dtype=torch.bool)]  # inference: the identity, and an all-kept mask


def _shape(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    dims = list(x.shape)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    dims = dims[start:] if end is None else dims[start : int(end)]
    return [torch.tensor(dims, dtype=torch.int64, device=x.device)]


def _gather(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, indices = inputs[0], inputs[1]
    assert x is not None and indices is not None
    axis = int(attrs.get("axis", 0)) % x.dim()
    indices = indices.long()
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    out = torch.index_select(x, axis, indices.reshape(-1))
    return [out.reshape((*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :]))]


def _slice(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    if len(inputs) > 1:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
        steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    index: list[slice] = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step <= 0:
            raise ValueError("Slice with a negative step is not supported")
        size = x.shape[axis % x.dim()]
        index[axis % x.dim()] = slice(max(-size, min(start, size)), max(-size, min(end, size)), step)
    return [x[tuple(index)]]


def _cast(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    return [x.to(_ONNX_DTYPES[int(attrs["to"])])]


def _expand(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, shape = inputs[0], inputs[1]
    assert x is not None
    target = _ints(shape)
    # ONNX Expand broadcasts both ways (a 1 in `shape` keeps x's size); torch.broadcast_shapes does the same.
    return [x * torch.ones(target, dtype=x.dtype, device=x.device)]


def _constant_of_shape(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    value = attrs.get("value")
    fill = value if isinstance(value, torch.Tensor) else torch.zeros(1, dtype=torch.float32)
    return [torch.full(_ints(inputs[0]), fill.reshape(-1)[0].item(), dtype=fill.dtype)]


def _pad(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    mode = attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    pads = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else list(attrs.get("pads", []))
    value = float(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else float(attrs.get("value", 0.0))
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(x.dim()))
    half = len(axes)
    per_axis = {a % x.dim(): (pads[i], pads[i + half]) for i, a in enumerate(axes)}
    torch_pads: list[int] = []
    for axis in reversed(range(x.dim())):
        torch_pads += list(per_axis.get(axis, (0, 0)))
    if mode != "constant":
        raise ValueError(f"Pad mode {mode!r} is not supported")
    return [F.pad(x, torch_pads, value=value)]


def _where(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    condition, a, b = inputs[0], inputs[1], inputs[2]
    assert condition is not None and a is not None and b is not None
    return [torch.where(condition.bool(), a, b)]


def _output_count(attrs: Attributes) -> int:
    """How many outputs the node names (graph.py records it): optional outputs nobody reads are not computed."""
    return int(attrs.get("_outputs", 1))


def _layer_norm(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    assert x is not None and scale is not None
    axis = int(attrs.get("axis", -1)) % x.dim()
    eps = float(attrs.get("epsilon", 1e-5))
    shape = tuple(x.shape[axis:])
    if tuple(scale.shape) == shape and (bias is None or tuple(bias.shape) == shape):
        y = F.layer_norm(x, shape, scale, bias, eps)
    else:  # ONNX broadcasts scale and bias; F.layer_norm takes them only at the normalised shape
        y = F.layer_norm(x, shape, eps=eps) * scale
        y = y if bias is None else y + bias
    if _output_count(attrs) == 1:
        return [y]
    dims = tuple(range(axis, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    inverse_std = torch.rsqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)
    return [y, mean, inverse_std]


def _instance_norm(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, scale, bias = inputs[0], inputs[1], inputs[2]
    assert x is not None and scale is not None and bias is not None
    return [F.instance_norm(x, weight=scale, bias=bias, eps=float(attrs.get("epsilon", 1e-5)))]


def _group_norm(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x, scale, bias = inputs[0], inputs[1], inputs[2]
    assert x is not None and scale is not None and bias is not None
    groups, channels = int(attrs["num_groups"]), x.shape[1]
    y = F.group_norm(x, groups, eps=float(attrs.get("epsilon", 1e-5)))
    if scale.numel() != channels:  # opset 18: one scale and bias per group (opset 21: per channel)
        scale, bias = scale.repeat_interleave(channels // groups), bias.repeat_interleave(channels // groups)
    shape = [1, channels] + [1] * (x.dim() - 2)
    return [y * scale.view(shape) + bias.view(shape)]


def _split(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    x = inputs[0]
    assert x is not None
    axis = int(attrs.get("axis", 0)) % x.dim()
    sizes = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else list(attrs.get("split", []))
    if not sizes:
        # Equal parts; with num_outputs (opset 18) the last part may be smaller, as torch.split's.
        count = int(attrs.get("num_outputs", _output_count(attrs)))
        return list(torch.split(x, math.ceil(x.shape[axis] / count), dim=axis))
    return list(torch.split(x, sizes, dim=axis))


def _range(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    start, limit, delta = inputs[0], inputs[1], inputs[2]
    assert start is not None and limit is not None and delta is not None
    return [torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device)]


def _mod(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    a, b = inputs[0], inputs[1]
    assert a is not None and b is not None
    # fmod=0 (integers only): the remainder takes the divisor's sign, as Python's; fmod=1: the dividend's, as C's.
    return [torch.fmod(a, b) if int(attrs.get("fmod", 0)) else torch.remainder(a, b)]


def _resize(inputs: Sequence[torch.Tensor | None], attrs: Attributes) -> list[torch.Tensor]:
    """Resize as torch's interpolate computes it: nearest (asymmetric, floor), linear and cubic (half-pixel or
    align-corners), on the spatial axes only."""
    x = inputs[0]
    assert x is not None
    scales = inputs[2] if len(inputs) > 2 and inputs[2] is not None and inputs[2].numel() else None
    sizes = inputs[3] if len(inputs) > 3 and inputs[3] is not None and inputs[3].numel() else None
    axes = [a % x.dim() for a in attrs.get("axes", range(x.dim()))]
    mode = attrs.get("mode", "nearest")
    transform = attrs.get("coordinate_transformation_mode", "half_pixel")
    per_axis_scale = dict(zip(axes, scales.tolist() if scales is not None else [1.0] * len(axes), strict=True))
    per_axis_size = dict(zip(axes, _ints(sizes), strict=True)) if sizes is not None else {}
    if any(per_axis_scale.get(a, 1.0) != 1.0 or per_axis_size.get(a, x.shape[a]) != x.shape[a] for a in (0, 1)):
        raise ValueError("Resize of the batch or channel axis is not supported")
    spatial = range(2, x.dim())
    if mode == "nearest":
        if transform != "asymmetric" or attrs.get("nearest_mode", "round_prefer_floor") != "floor":
            raise ValueError(f"Resize nearest with {transform} coordinates is not supported")
        interpolation, align_corners = "nearest", None
    elif mode in ("linear", "cubic") and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        if mode == "cubic" and float(attrs.get("cubic_coeff_a", -0.75)) != -0.75:
            raise ValueError("Resize cubic with a coefficient other than -0.75 is not supported")
        interpolation = {"linear": {3: "linear", 4: "bilinear", 5: "trilinear"}[x.dim()], "cubic": "bicubic"}[mode]
        align_corners = transform == "align_corners"
    else:
        raise ValueError(f"Resize mode {mode!r} with {transform} coordinates is not supported")
    antialias = bool(int(attrs.get("antialias", 0)))
    if per_axis_size:
        size = [per_axis_size.get(a, x.shape[a]) for a in spatial]
        return [F.interpolate(x, size=size, mode=interpolation, align_corners=align_corners, antialias=antialias)]
    factors = [float(per_axis_scale.get(a, 1.0)) for a in spatial]
    return [
        F.interpolate(
            x,
            scale_factor=factors,
            mode=interpolation,
            align_corners=align_corners,
            recompute_scale_factor=False,
            antialias=antialias,
        )
    ]


OPS: dict[str, OpFunction] = {
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "InstanceNormalization": _instance_norm,
    "GroupNormalization": _group_norm,
    "Gemm": _gemm,
    "MatMul": _binary(torch.matmul),
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _binary(_div),
    "Pow": _binary(torch.pow),
    "Max": _variadic(torch.maximum),
    "Min": _variadic(torch.minimum),
    "Equal": _binary(torch.eq),
    "Where": _where,
    "Relu": _unary(F.relu),
    "LeakyRelu": _leaky_relu,
    "Elu": _elu,
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "Gelu": _gelu,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _unary(F.hardswish),
    "Softplus": _unary(F.softplus),
    "Erf": _unary(torch.erf),
    "Sqrt": _unary(torch.sqrt),
    "Exp": _unary(torch.exp),
    "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs),
    "Reciprocal": _unary(torch.reciprocal),
    "Clip": _clip,
    "Softmax": _softmax(log=False),
    "LogSoftmax": _softmax(log=True),
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "GlobalMaxPool": _global_max_pool,
    "ReduceMean": _reduce("mean"),
    "ReduceSum": _reduce("sum"),
    "ReduceMax": _reduce("max"),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Concat": _concat,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Identity": _identity,
    "Dropout": _dropout,
    "Shape": _shape,
    "Gather": _gather,
    "Slice": _slice,
    "Cast": _cast,
    "Expand": _expand,
    "ConstantOfShape": _constant_of_shape,
    "Pad": _pad,
    "Split": _split,
    "Range": _range,
    "Mod": _mod,
    "Resize": _resize,
}
