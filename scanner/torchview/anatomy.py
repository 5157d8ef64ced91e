"""Where to cut a CNN classifier into backbone and head, and which parameters carry per-channel noise.

Found from the graph and one traced forward pass, never from layer names: the feature map is the last tensor with
spatial extent on the path into the last node that collapses an image-shaped tensor (or a transformer's tokens) to
(batch, features) (Flatten, a Reshape, a Gemm, a global pooling without keepdims, the class token's Gather); global
pooling and 1x1 maps before it are walked back over.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scanner.torchview.graph import Node, TorchGraph, UnsupportedGraph

# Ops that only summarise a feature map over space (or pass it through): the cut goes before them.
_POOLING = {
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceMax",
    "ReduceSum",
    "AveragePool",
    "MaxPool",
    "Identity",
    "Dropout",
    "Relu",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
}
# Normalisations whose per-channel scale and shift carry the noise (BAN's reference perturbs BatchNorm; LayerNorm's
# scale and shift are its analogue in ConvNeXt and ViT, GroupNorm's and InstanceNorm's in the models that use them).
_NORMS = {"BatchNormalization", "LayerNormalization", "GroupNormalization", "InstanceNormalization"}
_NOISY_LAYERS = {"Conv", "Gemm", "MatMul"} | _NORMS


@dataclass(frozen=True)
class NoiseTarget:
    """A parameter that gets multiplicative noise per output channel: param * (1 + noise.view(shape))."""

    param: str
    channels: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Anatomy:
    feature: str  # value name of the feature map z = backbone(x)
    feature_shape: tuple[int, ...]  # z's shape without the batch axis
    noise_targets: tuple[NoiseTarget, ...]  # backbone parameters, per output channel


def _is_image(value: torch.Tensor) -> bool:
    return value.is_floating_point() and value.dim() >= 3


def find_feature(graph: TorchGraph, env: dict[str, torch.Tensor]) -> str:
    """The feature map's value name, given every value of one traced forward pass (`env`)."""
    on_input_path = graph.downstream([graph.input_name])
    collapse: Node | None = None
    # The last such node: attention reshapes tokens to (batch * tokens, features) inside the backbone, and the head
    # starts after the last collapse (the class token's Gather, a mean over tokens, a CNN's Flatten).
    for node in graph.nodes:
        outputs = [env.get(name) for name in node.outputs if name]
        inputs = [name for name in node.inputs if name in on_input_path and name in env and _is_image(env[name])]
        if inputs and any(o is not None and o.is_floating_point() and o.dim() == 2 for o in outputs):
            collapse = node
    if collapse is None:
        raise UnsupportedGraph(
            "no node turns a feature map into a (batch, features) tensor",
            hint="BAN needs a convolutional classifier that pools or flattens its last feature map",
        )
    feature = next(name for name in collapse.inputs if name in on_input_path and _is_image(env[name]))
    while True:
        spatial = env[feature].shape[2:].numel()
        producer = graph.producer.get(feature)
        if producer is None or producer.op_type not in _POOLING:
            break
        if spatial > 1 and producer.op_type not in {"Identity", "Dropout"}:
            break
        feature = producer.inputs[0]
    if feature == graph.input_name or not any(
        n.op_type == "Conv" for n in graph.nodes if n.outputs[0] in _upstream(graph, feature)
    ):
        raise UnsupportedGraph(
            "no convolutional stage before the classifier head",
            hint="BAN needs a convolutional backbone; the other detectors still run",
        )
    return feature


def _upstream(graph: TorchGraph, name: str) -> set[str]:
    seen: set[str] = set()
    stack = [name]
    while stack:
        value = stack.pop()
        if value in seen:
            continue
        seen.add(value)
        node = graph.producer.get(value)
        if node is not None:
            stack.extend(n for n in node.inputs if n)
    return seen


def _channel_targets(graph: TorchGraph, node: Node) -> list[NoiseTarget]:
    """Per-output-channel multipliers for a layer's weight and bias (initializers only)."""
    params = graph.params
    inputs = list(node.inputs) + [""] * 3
    targets: list[NoiseTarget] = []
    if node.op_type in _NORMS:
        for name in inputs[1:3]:
            if name in params and params[name].dim() <= 1:
                targets.append(NoiseTarget(name, params[name].numel(), tuple(params[name].shape)))
        return targets
    weight, bias = inputs[1], inputs[2]
    if weight not in params or params[weight].dim() < 2:
        return targets
    shape = tuple(params[weight].shape)
    if node.op_type == "Conv":
        channels, multiplier = shape[0], (shape[0],) + (1,) * (len(shape) - 1)
    elif node.op_type == "Gemm" and int(node.attributes.get("transB", 0)):
        channels, multiplier = shape[0], (shape[0], 1)
    else:  # Gemm without transB, MatMul: weight is (in, out)
        channels, multiplier = shape[-1], (1,) * (len(shape) - 1) + (shape[-1],)
    targets.append(NoiseTarget(weight, channels, multiplier))
    if node.op_type != "MatMul" and bias in params and params[bias].numel() == channels:
        targets.append(NoiseTarget(bias, channels, tuple(params[bias].shape)))
    return targets


def noise_targets(graph: TorchGraph, feature: str) -> tuple[NoiseTarget, ...]:
    """Backbone layers' parameters: normalisations' scale and shift (BatchNorm, LayerNorm, GroupNorm, InstanceNorm),
    and the weight and bias of every Conv/Gemm/MatMul whose output does not go straight into one."""
    backbone = _upstream(graph, feature)
    targets: list[NoiseTarget] = []
    for node in graph.nodes:
        if node.op_type not in _NOISY_LAYERS or node.outputs[0] not in backbone:
            continue
        consumers = graph.consumers.get(node.outputs[0], [])
        if node.op_type not in _NORMS and consumers and all(c.op_type in _NORMS for c in consumers):
            continue  # its normalisation carries the noise, as BatchNorm does in the reference
        targets.extend(_channel_targets(graph, node))
    # A parameter that something else reads too is left alone: exporters share equal constants between nodes (the
    # dynamo exporter gave GroupNorm's unit scales and a Resize's scales one initializer), and noise meant for a
    # layer must not move the other.
    shared = {t.param for t in targets if any(c.op_type not in _NOISY_LAYERS for c in graph.consumers[t.param])}
    seen: set[str] = set(shared)
    unique = [t for t in targets if not (t.param in seen or seen.add(t.param))]  # type: ignore[func-returns-value]
    if not unique:
        raise UnsupportedGraph(
            "the backbone has no Conv, Gemm, MatMul or normalisation parameters to perturb",
            hint="BAN needs a backbone whose weights are initializers",
        )
    return tuple(unique)


def anatomy_of(graph: TorchGraph, sample: torch.Tensor) -> Anatomy:
    """Cut `graph` into backbone and head by tracing one forward pass of `sample` (a small batch)."""
    with torch.no_grad():
        env = graph.run({graph.input_name: sample}, [graph.output_name], keep_all=True)
    feature = find_feature(graph, env)
    return Anatomy(feature, tuple(env[feature].shape[1:]), noise_targets(graph, feature))
