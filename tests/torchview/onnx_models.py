"""Small CNNs that use every operator family of the torch view, exported by both torch exporters (test helper)."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class PlainNet(nn.Module):
    """Conv, ReLU, max pooling, flatten, linear: the legacy exporter's Flatten, dynamo's Reshape."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * (size // 4) ** 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class NormNet(nn.Module):
    """BatchNorm (folded by both exporters in eval mode), LeakyReLU, strided conv, global average pooling."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.1),
        )  # fmt: skip
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class ResidualNet(nn.Module):
    """Residual Add, convs without bias, a mean over space as the pooling."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
        )  # fmt: skip
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(x + self.block(x))
        return self.fc(x.mean((2, 3)))


class MobileNet(nn.Module):
    """Depthwise conv (groups), Hardswish, GELU, ReLU6 (Clip), average pooling, dropout, Tanh."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.Hardswish(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.GELU(),
            nn.Conv2d(8, 16, 1), nn.ReLU6(), nn.AvgPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(16 * (size // 4) ** 2, 32), nn.Tanh(), nn.Linear(32, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class VggNet(nn.Module):
    """Sigmoid, ELU, ceil-mode pooling, global max pooling, a view on x.shape[0] (Shape/Gather in legacy)."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.Sigmoid(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(16, 16, 3, padding=1), nn.ELU(),
        )  # fmt: skip
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_max_pool2d(self.features(x), 1).view(x.shape[0], -1))


ARCHITECTURES = {"plain": PlainNet, "norm": NormNet, "residual": ResidualNet, "mobile": MobileNet, "vgg": VggNet}


def randomised(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics (far from the identity), in eval mode."""
    torch.manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.3, 0.3)
    return module.eval()


def _cache_dir() -> Path:
    return Path(os.environ.get("MODEL_SCANNER_CACHE", Path.home() / ".cache" / "model-scanner")) / "ban-test-onnx"


def cached_export(arch: str, image_shape: tuple[int, int, int], exporter: str, seed: int = 1) -> bytes:
    """`export_onnx` of a randomised ARCHITECTURES[arch], cached outside the repo (the dynamo exporter takes
    seconds per model), keyed by this file's code, the torch version and the arguments."""
    key = hashlib.sha256(
        Path(__file__).read_bytes() + f"{torch.__version__}|{arch}|{image_shape}|{exporter}|{seed}".encode()
    ).hexdigest()[:20]
    path = _cache_dir() / f"{arch}-{exporter}-{key}.onnx"
    if path.exists():
        return path.read_bytes()
    model = export_onnx(randomised(ARCHITECTURES[arch](image_shape[0], image_shape[1]), seed), image_shape, exporter)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(model)
    partial.replace(path)
    return model


def export_onnx(
    module: nn.Module, image_shape: tuple[int, int, int], exporter: str, legacy_opset: int | None = 13
) -> bytes:
    """ONNX bytes from the legacy (opset 13 unless told, None for its default; BatchNorm folded) or the dynamo
    (opset 18+) exporter."""
    example = (torch.rand(2, *image_shape),)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(
                module, example, dynamo=True, external_data=False, verbose=False,
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, input_names=["x"], output_names=["logits"],
            )  # fmt: skip
            assert program is not None
            program.save(buffer)
        else:
            torch.onnx.export(
                module, example, buffer, dynamo=False, opset_version=legacy_opset, input_names=["x"],
                output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            )  # fmt: skip
    return buffer.getvalue()
