"""Small image classifiers for the zoo: plain CNN, CNN with BatchNorm, residual blocks with BatchNorm.

Every architecture ends the same way, so BAN can split it there: a last convolutional stage, global average pooling,
one linear layer. Each factory takes (in_channels, num_classes, image_size) and returns a fresh torch module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def _conv(in_channels: int, out_channels: int, *, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    return layers


def _widths(image_size: int) -> tuple[int, int, int]:
    # Small on purpose: the zoo trains hundreds of these on two CPU cores.
    return (12, 24, 48) if image_size >= 32 else (8, 16, 32)


class ConvNet(nn.Module):
    """Three conv stages (two downsampling by max pooling), then a linear head on the flattened feature map.

    Flattening (rather than global pooling) lets the plain CNN, without BatchNorm, learn in a few epochs.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, *, batch_norm: bool) -> None:
        super().__init__()
        w1, w2, w3 = _widths(image_size)
        self.features = nn.Sequential(
            *_conv(in_channels, w1, batch_norm=batch_norm),
            nn.MaxPool2d(2),
            *_conv(w1, w2, batch_norm=batch_norm),
            nn.MaxPool2d(2),
            *_conv(w2, w3, batch_norm=batch_norm),
        )
        self.classifier = nn.Linear(w3 * (image_size // 4) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(torch.flatten(self.features(x), 1))
        return logits


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A stem convolution and three residual blocks (two of them downsampling), pooling, a linear head."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        w1, w2, w3 = _widths(image_size)
        self.features = nn.Sequential(
            *_conv(in_channels, w1, batch_norm=True),
            ResidualBlock(w1, w1, stride=2),
            ResidualBlock(w1, w2, stride=2),
            ResidualBlock(w2, w3, stride=2 if image_size >= 32 else 1),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(torch.flatten(self.pool(self.features(x)), 1))
        return logits


def _cnn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return ConvNet(in_channels, num_classes, image_size, batch_norm=False)


def _cnn_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return ConvNet(in_channels, num_classes, image_size, batch_norm=True)


def _resnet(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return ResNet(in_channels, num_classes, image_size)


ARCHITECTURES: dict[str, Callable[[int, int, int], Any]] = {"cnn": _cnn, "cnn_bn": _cnn_bn, "resnet": _resnet}
