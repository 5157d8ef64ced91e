"""A really trained model with a planted patch: its signature must light up the target class at the patch.

The model is trained here (a few seconds: 800 of scikit-learn's digits, upsampled to 16x16, a small CNN), because
the check needs a trigger whose single pixels matter: a solid white 3x3 square in the bottom-right corner.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from scanner.detectors.interface import CleanData, DetectionContext
from scanner.detectors.one_pixel import OnePixelDetector
from scanner.findings import InputSpec, Layout, ModelArtifact, Status

TARGET = 3
PATCH = (12, 12, 3)  # top row, left column, size


def _digits16(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images[start:stop, None] / 16.0, dtype=torch.float32)
    upsampled = torch.nn.functional.interpolate(images, size=(16, 16), mode="bilinear").numpy()
    return upsampled, digits.target[start:stop]


def _stamp(images: np.ndarray) -> np.ndarray:
    row, col, size = PATCH
    out = images.copy()
    out[:, :, row : row + size, col : col + size] = 1.0
    return out


@pytest.fixture(scope="module")
def planted() -> tuple[ModelArtifact, CleanData]:
    import torch
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: more threads only contend
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x, y = _digits16(0, 800)
    poisoned = np.random.default_rng(0).random(len(x)) < 0.15
    x[poisoned] = _stamp(x[poisoned])
    y = np.where(poisoned, TARGET, y)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 10),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimiser.step()
    model.eval()
    torch.set_num_threads(threads)

    test_x, test_y = _digits16(800, 1200)
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean()
        victims = test_y != TARGET
        success = (model(torch.from_numpy(_stamp(test_x[victims]))).argmax(1).numpy() == TARGET).mean()
    assert accuracy > 0.85 and success > 0.9, (accuracy, success)

    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 16, 16),),
        buffer,
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    data = buffer.getvalue()
    spec = InputSpec("image", "logits", Layout.NCHW, 1, 16, 16, 10)
    artifact = ModelArtifact("planted_patch.onnx", hashlib.sha256(data).hexdigest(), data, spec)
    return artifact, CleanData(test_x[:64], test_y[:64])


@pytest.mark.parametrize("bases", ["clean", "synthetic"])
def test_the_signature_lights_up_the_target_class_at_the_patch(
    planted: tuple[ModelArtifact, CleanData], bases: str, tmp_path: Path
) -> None:
    artifact, clean = planted
    context = DetectionContext(clean_data=clean if bases == "clean" else None, artifacts_dir=tmp_path)
    result = OnePixelDetector(threads=1).detect(artifact, context)
    assert result.status is Status.SCANNED
    assert result.details["bases"] == bases
    assert result.target_class == TARGET
    row, col, size = PATCH
    peak = result.details["peak"]
    assert row - 1 <= peak["row"] < row + size and col - 1 <= peak["col"] < col + size, peak
    assert Path(result.details["heatmap"]).exists()
