import numpy as np
import onnxruntime
import pytest
import torch

from scanner.zoo.export import export_onnx
from scanner.zoo.train import train_model


@pytest.mark.slow
def test_two_class_backdoored_model_trains_and_exports_as_nhwc(tmp_path):
    """The 2-class variant others test with: a patch backdoor on digits 0/1, exported with NHWC input."""
    torch.set_num_threads(1)
    trained = train_model("digits16", "cnn", attack="patch", num_classes=2, seed=7)
    assert trained.num_classes == 2 and trained.backdoor is not None and trained.backdoor.target in (0, 1)
    assert trained.clean_acc >= 0.85 and trained.asr is not None and trained.asr >= 0.9
    path = tmp_path / "two.onnx"
    export_onnx(trained.module, path, image_shape=trained.image_shape, exporter="legacy", nhwc=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 1)).astype(np.float32)
    assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (3, 2)
