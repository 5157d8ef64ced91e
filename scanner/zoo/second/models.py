"""The second zoo's architectures, none of them in the first zoo: VGG-style with global average pooling,
depthwise-separable (MobileNet-like, ReLU6 or Hardswish), average-pooling with LeakyReLU or GELU and a dropout MLP head,
and a small ConvMixer. Width, depth, activation and BatchNorm are drawn per model (`ArchChoice`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "gelu": nn.GELU,
}


@dataclass(frozen=True)
class ArchChoice:
    name: str
    width: int  # channels of the first stage
    batch_norm: bool
    activation: str
    depth: int = 2  # blocks or stages beyond the first, as the architecture reads it


def _norm(channels: int, batch_norm: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels)] if batch_norm else []


def _stem_stride(image_size: int) -> int:
    # Larger inputs are downsampled at once: the models stay cheap at 64 px.
    return 2 if image_size >= 40 else 1


class VggGap(nn.Module):
    """Stages of two 3x3 convolutions and max pooling, doubling the width, then global average pooling, one linear."""

    def __init__(self, choice: ArchChoice, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, width = in_channels, choice.width
        for stage in range(choice.depth + 1):
            stride = _stem_stride(image_size) if stage == 0 else 1
            for conv in range(2 if stage else 1):
                layers += [
                    nn.Conv2d(
                        channels, width, 3, stride=stride if conv == 0 else 1, padding=1, bias=not choice.batch_norm
                    ),
                    *_norm(width, choice.batch_norm),
                    ACTIVATIONS[choice.activation](),
                ]
                channels = width
            if stage < choice.depth:
                layers.append(nn.MaxPool2d(2))
                width *= 2
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(torch.flatten(self.pool(self.features(x)), 1))
        return logits


class DepthwiseSeparable(nn.Module):
    """A strided stem, then blocks of depthwise 3x3 and pointwise 1x1 convolutions (every other one strided)."""

    def __init__(self, choice: ArchChoice, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        act = ACTIVATIONS[choice.activation]
        width = choice.width
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, stride=_stem_stride(image_size), padding=1, bias=not choice.batch_norm),
            *_norm(width, choice.batch_norm),
            act(),
        ]
        for block in range(choice.depth + 1):
            stride = 2 if block % 2 == 0 else 1
            out = width * 2 if stride == 2 else width
            layers += [
                nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=width, bias=not choice.batch_norm),
                *_norm(width, choice.batch_norm),
                act(),
                nn.Conv2d(width, out, 1, bias=not choice.batch_norm),
                *_norm(out, choice.batch_norm),
                act(),
            ]
            width = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(torch.flatten(self.pool(self.features(x)), 1))
        return logits


class AvgPoolMlp(nn.Module):
    """Convolutions (the first strided on large inputs) with average pooling (LeakyReLU or GELU), a fixed 4x4, 2x2 or
    1x1 average pool, flatten, a dropout MLP."""

    def __init__(self, choice: ArchChoice, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        act = ACTIVATIONS[choice.activation]
        layers: list[nn.Module] = []
        channels, width = in_channels, choice.width
        stride = _stem_stride(image_size)
        for stage in range(choice.depth + 1):
            layers += [
                nn.Conv2d(channels, width, 3, stride=stride if stage == 0 else 1, padding=1),
                *_norm(width, choice.batch_norm),
                act(),
            ]
            if stage < choice.depth:
                layers.append(nn.AvgPool2d(2))
            channels, width = width, width * 2
        self.features = nn.Sequential(*layers)
        final = -(-image_size // stride) // 2**choice.depth
        side = next(p for p in (4, 2, 1) if final % p == 0)  # the legacy exporter pools only by whole factors
        self.pool = nn.AdaptiveAvgPool2d(side)
        hidden = max(32, channels)
        self.classifier = nn.Sequential(
            nn.Dropout(0.2),
            nn.Linear(channels * side * side, hidden),
            act(),
            nn.Dropout(0.2),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(torch.flatten(self.pool(self.features(x)), 1))
        return logits


class Residual(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.inner(x)
        return out


class ConvMixer(nn.Module):
    """ConvMixer (Trockman and Kolter 2022), small: a patch embedding, then depth blocks of a residual depthwise
    convolution and a pointwise one, each with GELU and BatchNorm; global average pooling, one linear."""

    def __init__(self, choice: ArchChoice, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        # Patches of 2 px below 32 px, 4 px below 64, 8 px at 64: 7 to 14 tokens a side (16 cost 37 s CPU a model).
        width, patch = choice.width * 2, 2 if image_size < 32 else 4 if image_size < 64 else 8
        act = ACTIVATIONS[choice.activation]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, patch, stride=patch), act(), *_norm(width, True)]
        for _ in range(choice.depth + 1):
            layers += [
                Residual(
                    nn.Sequential(nn.Conv2d(width, width, 5, padding=2, groups=width), act(), *_norm(width, True))
                ),
                nn.Conv2d(width, width, 1),
                act(),
                *_norm(width, choice.batch_norm),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(torch.flatten(self.pool(self.features(x)), 1))
        return logits


Factory = Callable[[ArchChoice, int, int, int], nn.Module]
ARCHITECTURES: dict[str, Factory] = {
    "vgg_gap": VggGap,
    "depthwise": DepthwiseSeparable,
    "avgpool_mlp": AvgPoolMlp,
    "convmixer": ConvMixer,
}
# Which activations each architecture draws from (as their authors' families use them).
ARCH_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "vgg_gap": ("relu",),
    "depthwise": ("relu6", "hardswish"),
    "avgpool_mlp": ("leaky_relu", "gelu"),
    "convmixer": ("gelu",),
}


def build_module(choice: ArchChoice, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    module = ARCHITECTURES[choice.name](choice, in_channels, num_classes, image_size)
    if not choice.batch_norm:
        # torch's default initialisation shrinks the signal by about sqrt(3) per layer; without BatchNorm to restore
        # it, seven convolutions and global pooling left VGG-GAP and depthwise nets at chance. He initialisation,
        # as VGG without BatchNorm is trained.
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return module
