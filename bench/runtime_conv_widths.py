"""How fast ONNX Runtime runs the zoo's 32x32x3 CNN shape at several channel widths, against the matmul peak.

    python -m bench.runtime_conv_widths [--widths 12-24-48,16-32-48,...] [--images 16384] [--repeats 3]

Each model is the zoo cnn's graph (three 3x3 convolutions with ReLU, 2x2 max-pooling after the first two, a 10-way
Gemm on the flattened map) with random weights and the given channel widths; 12-24-48 is the zoo's own. It runs
through the scanner's OnnxClassifier (the detector's session options) in batches of 256. Prints markdown: FLOPs per
forward (counted from the graph), images/s (fastest of the repeats), achieved GFLOP/s and its share of ONNX Runtime's
MatMul peak measured here, and what the 49 153 passes of a K=16 per-channel signature (one base) would take.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from bench.one_pixel_speed import ort_matmul_peak
from scanner.detectors.graph_cost import flops_per_forward
from scanner.intake import load_model
from scanner.runtime import OnnxClassifier

SIDE = 32
K16_PER_CHANNEL_PASSES = 16 * 3 * SIDE * SIDE + 1
BATCH = 256


def zoo_cnn_graph(widths: tuple[int, int, int]) -> bytes:
    """The zoo cnn's layers with `widths` output channels, random weights."""
    rng = np.random.default_rng(0)
    nodes, weights, previous, channels = [], [], "image", 3
    for index, width in enumerate(widths):
        kernel = rng.normal(0, 0.2, (width, channels, 3, 3)).astype(np.float32)
        weights.append(numpy_helper.from_array(kernel, f"w{index}"))
        weights.append(numpy_helper.from_array(np.zeros(width, np.float32), f"b{index}"))
        nodes.append(helper.make_node("Conv", [previous, f"w{index}", f"b{index}"], [f"c{index}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        previous, channels = f"r{index}", width
        if index < len(widths) - 1:
            nodes.append(helper.make_node("MaxPool", [previous], [f"p{index}"], kernel_shape=[2, 2], strides=[2, 2]))
            previous = f"p{index}"
    flat = channels * (SIDE // 4) ** 2
    weights.append(numpy_helper.from_array(rng.normal(0, 0.02, (10, flat)).astype(np.float32), "fc"))
    nodes += [
        helper.make_node("Flatten", [previous], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    graph = helper.make_graph(nodes, "zoo_cnn", [image], [logits], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def images_per_second(classifier: OnnxClassifier, images: np.ndarray, repeats: int) -> float:
    def run() -> float:
        started = time.perf_counter()
        for start in range(0, len(images), BATCH):
            classifier.logits(images[start : start + BATCH])
        return time.perf_counter() - started

    run()  # warm-up
    return len(images) / min(run() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="12-24-48,16-32-48,16-32-64,24-48-96,32-64-64,16-16-32,8-16-32")
    parser.add_argument("--images", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    images = np.random.default_rng(0).random((args.images, 3, SIDE, SIDE), dtype=np.float32)
    peak = ort_matmul_peak(args.threads)
    print(f"ONNX Runtime MatMul peak (1024^3, {args.threads} threads): {peak / 1e9:.1f} GFLOP/s;")
    load = os.getloadavg()[0]
    print(f"{args.images} images in batches of {BATCH}, fastest of {args.repeats}; load average {load:.1f}\n")
    print("| widths | MFLOP per forward | images/s | GFLOP/s | share of the MatMul peak | K=16 per-channel signature |")
    print("|---|---:|---:|---:|---:|---:|")
    for text in args.widths.split(","):
        widths = tuple(int(part) for part in text.split("-"))
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "cnn.onnx"
            path.write_bytes(zoo_cnn_graph(widths))  # type: ignore[arg-type]
            artifact = load_model(path)
        flops = flops_per_forward(artifact.onnx_bytes)
        rate = images_per_second(OnnxClassifier(artifact, device="cpu", threads=args.threads), images, args.repeats)
        print(
            f"| {text} | {flops / 1e6:.2f} | {rate:,.0f} | {rate * flops / 1e9:.1f} | {rate * flops / peak:.2f} |"
            f" {K16_PER_CHANNEL_PASSES / rate:.2f} s |",
            flush=True,
        )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
