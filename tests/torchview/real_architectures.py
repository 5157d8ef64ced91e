"""Small faithful definitions of real ImageNet architectures in plain torch (test and bench helper).

Each follows its published definition (torchvision's layouts of ResNet, MobileNetV2/V3, EfficientNet and ConvNeXt,
torchvision's ViT and a timm-style DeiT) at tiny widths and depths, so that an export contains the same operators a
real checkpoint's would; and ResNet-18 and ViT-Tiny at their real widths and depths (REAL_WIDTHS: 11.7 M and 5.7 M
parameters, for the bench). Weights are random; `build(name, classes, size)` gives one in eval mode.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tests.torchview.onnx_models import export_onnx


def _divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class ResNet(nn.Module):
    """ResNet-18's layout (7x7 stem, max pooling, four stages of basic blocks, adaptive pooling): `blocks` a stage
    (ResNet-18: width 64, 2 blocks)."""

    def __init__(self, classes: int, width: int = 8, blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        widths = [width, width * 2, width * 4, width * 8]
        stages, inputs = [], width
        for index, outputs in enumerate(widths):
            for block in range(blocks):
                stages.append(BasicBlock(inputs, outputs, 2 if index > 0 and block == 0 else 1))
                inputs = outputs
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(inputs, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int, gate: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.ReLU() if gate is F.hardsigmoid else nn.SiLU()
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.activation(self.fc1(scale))))


def _conv_bn(
    inputs: int, outputs: int, kernel: int, stride: int, activation: type[nn.Module] | None, groups: int = 1
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(inputs, outputs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 and EfficientNet's block: expand, depthwise, optional squeeze-excitation, project."""

    def __init__(
        self,
        inputs: int,
        expanded: int,
        outputs: int,
        kernel: int,
        stride: int,
        activation: type[nn.Module],
        excite: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != inputs:
            layers.append(_conv_bn(inputs, expanded, 1, 1, activation))
        layers.append(_conv_bn(expanded, expanded, kernel, stride, activation, groups=expanded))
        if excite is not None:
            squeezed = max(1, inputs // 4) if excite is torch.sigmoid else _divisible(expanded // 4)
            layers.append(SqueezeExcitation(expanded, squeezed, excite))
        layers.append(_conv_bn(expanded, outputs, 1, 1, None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


class MobileNetV2(nn.Module):
    """ReLU6 (Clip), depthwise convs, inverted residuals, dropout before the classifier."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 8, 3, 2, nn.ReLU6),
            InvertedResidual(8, 8, 8, 3, 1, nn.ReLU6, None),
            InvertedResidual(8, 48, 16, 3, 2, nn.ReLU6, None),
            InvertedResidual(16, 96, 16, 3, 1, nn.ReLU6, None),
            _conv_bn(16, 64, 1, 1, nn.ReLU6),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class MobileNetV3(nn.Module):
    """Hardswish, squeeze-excitation gated by Hardsigmoid, a Linear-Hardswish-Dropout-Linear classifier."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 8, 3, 2, nn.Hardswish),
            InvertedResidual(8, 8, 8, 3, 2, nn.ReLU, F.hardsigmoid),
            InvertedResidual(8, 32, 16, 5, 2, nn.Hardswish, F.hardsigmoid),
            InvertedResidual(16, 48, 16, 5, 1, nn.Hardswish, F.hardsigmoid),
            _conv_bn(16, 48, 1, 1, nn.Hardswish),
        )
        self.classifier = nn.Sequential(nn.Linear(48, 64), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class EfficientNet(nn.Module):
    """EfficientNet-B0's block types: SiLU, MBConv with squeeze-excitation (sigmoid gate), 5x5 depthwise."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 8, 3, 2, nn.SiLU),
            InvertedResidual(8, 8, 8, 3, 1, nn.SiLU, torch.sigmoid),
            InvertedResidual(8, 48, 16, 3, 2, nn.SiLU, torch.sigmoid),
            InvertedResidual(16, 96, 16, 5, 1, nn.SiLU, torch.sigmoid),
            _conv_bn(16, 64, 1, 1, nn.SiLU),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class LayerNorm2d(nn.LayerNorm):
    """torchvision's channels-first LayerNorm: permute, normalise over channels, permute back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pw1 = nn.Linear(channels, 4 * channels)
        self.pw2 = nn.Linear(4 * channels, channels)
        self.layer_scale = nn.Parameter(torch.full((channels, 1, 1), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)
        out = self.pw2(F.gelu(self.pw1(self.norm(out)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * out


class ConvNeXt(nn.Module):
    """Patchify stem with LayerNorm2d, blocks of depthwise 7x7 + LayerNorm + MLP (GELU) + layer scale, LayerNorm2d
    downsampling, and torchvision's head (pool, LayerNorm2d, flatten, linear)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16, eps=1e-6))
        self.stage1 = ConvNeXtBlock(16)
        self.down = nn.Sequential(LayerNorm2d(16, eps=1e-6), nn.Conv2d(16, 32, 2, 2))
        self.stage2 = ConvNeXtBlock(32)
        self.norm = LayerNorm2d(32, eps=1e-6)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.fc(torch.flatten(self.norm(F.adaptive_avg_pool2d(x, 1)), 1))


class EncoderBlock(nn.Module):
    """torchvision's ViT encoder block: pre-norm nn.MultiheadAttention and an MLP with GELU."""

    def __init__(self, dim: int, heads: int, mlp: int = 2) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + y
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    """torchvision's ViT: conv patch embedding, class token, learned positions, encoder, head on the class token
    (ViT-Tiny: patch 16, dim 192, depth 12, 3 heads, MLP ratio 4)."""

    def __init__(
        self, classes: int, size: int, patch: int = 8, dim: int = 32, depth: int = 2, heads: int = 4, mlp: int = 2
    ) -> None:
        super().__init__()
        self.patch, self.dim = patch, dim
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embedding = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.layers = nn.Sequential(*[EncoderBlock(dim, heads, mlp) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1) + self.pos_embedding
        x = self.ln(self.layers(x))
        return self.head(x[:, 0])


class Attention(nn.Module):
    """timm's attention: one qkv linear, batched MatMul, Softmax, projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, c))


class DeiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DeiT(nn.Module):
    """timm's distilled DeiT: class and distillation tokens, two heads averaged at inference."""

    def __init__(self, classes: int, size: int, patch: int = 8, dim: int = 32, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.dist_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[DeiTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.head_dist = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = (self.cls_token.expand(x.shape[0], -1, -1), self.dist_token.expand(x.shape[0], -1, -1), x)
        x = self.norm(self.blocks(torch.cat(tokens, dim=1) + self.pos_embed))
        return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2


class NormsNet(nn.Module):
    """GroupNorm, InstanceNorm and a nearest/bilinear Resize (Upsample), as segmentation-born backbones use them."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, 2, 1)
        self.gn = nn.GroupNorm(4, 16)
        self.c2 = nn.Conv2d(16, 16, 3, 2, 1)
        self.inorm = nn.InstanceNorm2d(16, affine=True)
        self.c3 = nn.Conv2d(16, 16, 3, 1, 1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.gn(self.c1(x)))
        x = F.relu(self.inorm(self.c2(x)))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = F.relu(self.c3(x)) + F.interpolate(x, scale_factor=1.0, mode="nearest")
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(name: str, classes: int, size: int, seed: int = 1) -> nn.Module:
    """A randomised `name` for `classes` classes and `size` x `size` RGB input, in eval mode. Normalisation layers get
    statistics and affine parameters far from the identity, so an op that ignored them would show."""
    torch.manual_seed(seed)
    module = {
        "resnet": lambda: ResNet(classes),
        "mobilenet_v2": lambda: MobileNetV2(classes),
        "mobilenet_v3": lambda: MobileNetV3(classes),
        "efficientnet": lambda: EfficientNet(classes),
        "convnext": lambda: ConvNeXt(classes),
        "vit": lambda: VisionTransformer(classes, size, patch=16 if size >= 224 else 8),
        "deit": lambda: DeiT(classes, size, patch=16 if size >= 224 else 8),
        "norms": lambda: NormsNet(classes),
        "resnet18": lambda: ResNet(classes, width=64, blocks=2),
        "vit_tiny": lambda: VisionTransformer(classes, size, patch=16, dim=192, depth=12, heads=3, mlp=4),
    }[name]()
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
        is_norm = isinstance(layer, nn.BatchNorm2d | nn.LayerNorm | nn.GroupNorm | nn.InstanceNorm2d)
        if is_norm and layer.weight is not None:
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.3, 0.3)
    return module.eval()


ARCHITECTURES = ("resnet", "mobilenet_v2", "mobilenet_v3", "efficientnet", "convnext", "vit", "deit", "norms")
REAL_WIDTHS = ("resnet18", "vit_tiny")  # real checkpoints' widths and depths: seconds to export, for the bench

# How each exporter is driven: the legacy exporter at its default opset (LayerNormalization, Split with num_outputs)
# and at the oldest opset each model exports to (LayerNorm decomposed into ReduceMean/Sub/Pow/Sqrt/Div; ViT's
# scaled_dot_product_attention needs 14), and the dynamo exporter.
EXPORTERS = ("legacy", "legacy-old", "dynamo")


def _legacy_opset(arch: str, exporter: str) -> int | None:
    if exporter != "legacy-old":
        return None
    return 14 if arch == "vit" else 13


def cached_export(arch: str, classes: int, size: int, exporter: str, seed: int = 1) -> bytes:
    """The ONNX bytes of `build(arch, classes, size, seed)` from `exporter` (EXPORTERS), cached outside the repo
    under $MODEL_SCANNER_CACHE, keyed by this file's and the export helper's code and the torch version."""
    code = Path(__file__).read_bytes() + Path(export_onnx.__code__.co_filename).read_bytes()
    key = hashlib.sha256(code + f"{torch.__version__}|{arch}|{classes}|{size}|{exporter}|{seed}".encode())
    root = Path(os.environ.get("MODEL_SCANNER_CACHE", Path.home() / ".cache" / "model-scanner"))
    path = root / "real-architectures-onnx" / f"{arch}-{classes}-{size}-{exporter}-{key.hexdigest()[:20]}.onnx"
    if path.exists():
        return path.read_bytes()
    module = build(arch, classes, size, seed)
    model = export_onnx(
        module, (3, size, size), "dynamo" if exporter == "dynamo" else "legacy", _legacy_opset(arch, exporter)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(model)
    partial.replace(path)
    return model
