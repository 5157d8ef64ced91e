"""Time and peak memory of load_model on a large model, with its weights inline or in an external data file.

Run from the repository root:  python -m bench.intake_large_model [--megabytes 200]
The model is a Gemm classifier over 32x32x3 images whose weight matrix takes the given size; weights are random,
since the intake never looks at values.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

PIXELS = 3 * 32 * 32


def large_model(megabytes: int, directory: Path, external: bool) -> Path:
    classes = max(2, megabytes * 2**20 // (4 * PIXELS))
    weights = numpy_helper.from_array(np.random.default_rng(0).random((PIXELS, classes), dtype=np.float32), "w")
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])
    nodes = [helper.make_node("Flatten", ["image"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["scores"])]
    model = helper.make_model(
        helper.make_graph(nodes, "large", [image], [scores], [weights]), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    path = directory / "large.onnx"
    if external:
        data = model.graph.initializer[0].raw_data
        (directory / "large.onnx.data").write_bytes(data)
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "large.onnx.data"), ("offset", "0"), ("length", str(len(data)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    return path


_MEASURE = """
import resource, sys, time
from pathlib import Path
from scanner.intake import load_model
start = time.perf_counter()
artifact = load_model(Path(sys.argv[1]))
seconds = time.perf_counter() - start
print(len(artifact.onnx_bytes), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--external", action="store_true", help="weights in large.onnx.data instead of inline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = large_model(args.megabytes, Path(directory), args.external)
        # A fresh process, so that its peak memory is the intake's alone (plus the interpreter and onnx).
        measured = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
    size, seconds, peak_kib = int(measured[0]), float(measured[1]), int(measured[2])
    where = "external data file" if args.external else "inline"
    print(f"{size / 2**20:.0f} MiB model, weights {where}: load_model {seconds:.2f} s, peak RSS {peak_kib >> 10} MiB")


if __name__ == "__main__":
    main()
