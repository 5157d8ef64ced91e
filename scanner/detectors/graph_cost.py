"""FLOPs of one forward pass, counted from an ONNX graph: the multiply-adds of Conv, Gemm and MatMul (x2).

Element-wise ops, pooling and activations are left out: on the small CNNs we scan they are a few percent of the
work, and leaving them out makes the "fraction of the machine's matmul peak" an upper bound on efficiency.
"""

from __future__ import annotations

import math

import onnx
from onnx import shape_inference


def _static_shape(value: onnx.ValueInfoProto, batch: int) -> list[int] | None:
    dims = []
    for i, dim in enumerate(value.type.tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        elif i == 0:
            dims.append(batch)
        else:
            return None
    return dims


def flops_per_forward(onnx_bytes: bytes) -> int:
    """Multiply-add FLOPs (2 per MAC) of one image through the graph; 0 for ops whose shapes cannot be inferred."""
    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    initialisers = {init.name: list(init.dims) for init in graph.initializer}
    for graph_input in graph.input:  # fix the batch axis to 1 so every shape is static
        dims = graph_input.type.tensor_type.shape.dim
        if graph_input.name not in initialisers and len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    inferred = shape_inference.infer_shapes(model).graph
    shapes: dict[str, list[int]] = dict(initialisers)
    for value in [*inferred.input, *inferred.value_info, *inferred.output]:
        shape = _static_shape(value, 1)
        if shape is not None:
            shapes[value.name] = shape
    total = 0
    for node in inferred.node:
        out = shapes.get(node.output[0]) if node.output else None
        if out is None:
            continue
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in shapes:
            weight = shapes[node.input[1]]  # (out_channels, in_channels / groups, *kernel)
            total += 2 * math.prod(out) * math.prod(weight[1:])
        elif node.op_type in ("Gemm", "MatMul") and node.input[0] in shapes:
            inner = shapes[node.input[0]][-1]
            if node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute):
                inner = shapes[node.input[0]][0]
            total += 2 * math.prod(out) * inner
    return int(total)
