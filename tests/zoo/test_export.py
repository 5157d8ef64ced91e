import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from scanner.zoo.errors import ZooError
from scanner.zoo.export import export_onnx
from scanner.zoo.models import ARCHITECTURES


def _run(path, images):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.parametrize(("arch", "exporter", "nhwc"), [("cnn_bn", "dynamo", False), ("resnet", "legacy", True)])
def test_export_is_one_file_with_a_dynamic_batch_that_matches_torch(tmp_path, arch, exporter, nhwc):
    torch.manual_seed(0)
    model = ARCHITECTURES[arch](3, 10, 32).eval()
    path = tmp_path / "m.onnx"
    difference = export_onnx(model, path, image_shape=(3, 32, 32), exporter=exporter, nhwc=nhwc)
    assert difference <= 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"], "no external data file"
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param, "batch axis is symbolic"
    images = np.random.default_rng(0).uniform(0, 1, (5, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    feed = images.transpose(0, 2, 3, 1).copy() if nhwc else images
    assert np.abs(_run(path, feed) - expected).max() <= 1e-4


def test_unknown_exporter_is_refused(tmp_path):
    with pytest.raises(ZooError):
        export_onnx(ARCHITECTURES["cnn"](1, 10, 16), tmp_path / "m.onnx", image_shape=(1, 16, 16), exporter="tf")
