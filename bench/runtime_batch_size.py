"""Throughput of OnnxClassifier.probabilities by batch size and thread count, on a small CNN for 32x32 RGB images.

Run from the repository root:  python -m bench.runtime_batch_size [--images 8192] [--repeats 5]
Prints a markdown table (bench/RESULTS.md, "Speed"): images per second of wall-clock time, and images per
second of this process's CPU time, each from the fastest of the repeats. On a machine shared with other jobs the
fastest repeat is the one least disturbed by them, and the CPU-time figure shows the work per image (what the batch
size changes) apart from waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from scanner.intake import load_model
from scanner.runtime import OnnxClassifier

BATCH_SIZES = (1, 16, 64, 128, 256, 512, 1024, 2048)
THREADS = (1, 2)
# (in channels, out channels, stride) of the 3x3 convolutions; global average pooling and a 10-way Gemm follow.
CONVS = ((3, 16, 1), (16, 32, 2), (32, 64, 2))
SIDE = 32


def small_cnn() -> tuple[bytes, int]:
    """The model's bytes and its multiply-accumulates per image."""
    rng = np.random.default_rng(0)
    nodes, weights, previous, side, macs = [], [], "image", SIDE, 0
    for index, (cin, cout, stride) in enumerate(CONVS):
        weights.append(numpy_helper.from_array(rng.normal(0, 0.2, (cout, cin, 3, 3)).astype(np.float32), f"w{index}"))
        weights.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"b{index}"))
        nodes.append(
            helper.make_node(
                "Conv", [previous, f"w{index}", f"b{index}"], [f"c{index}"], pads=[1, 1, 1, 1], strides=[stride] * 2
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        side //= stride
        macs += cout * cin * 9 * side * side
        previous = f"r{index}"
    cout = CONVS[-1][1]
    weights.append(numpy_helper.from_array(rng.normal(0, 0.2, (10, cout)).astype(np.float32), "fc"))
    nodes += [
        helper.make_node("GlobalAveragePool", [previous], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1),
    ]
    macs += 10 * cout
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    model = helper.make_model(
        helper.make_graph(nodes, "small_cnn", [image], [logits], weights), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    return model.SerializeToString(), macs


def images_per_second(
    classifier: OnnxClassifier, images: np.ndarray, batch_size: int, repeats: int
) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU second of this process)."""
    classifier.probabilities(images[: batch_size * 2], batch_size=batch_size)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        classifier.probabilities(images, batch_size=batch_size)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return len(images) / min(wall), len(images) / min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data, macs = small_cnn()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "small_cnn.onnx"
        path.write_bytes(data)
        artifact = load_model(path)
    images = np.random.default_rng(0).random((args.images, 3, SIDE, SIDE), dtype=np.float32)
    print(f"small CNN: {macs / 1e6:.2f} M multiply-accumulates ({2 * macs / 1e6:.1f} MFLOP) per 32x32x3 image")
    print(f"{args.images} images, fastest of {args.repeats} runs; load average before: {os.getloadavg()[0]:.1f}\n")
    header = " | ".join(f"{t} thread{'s' * (t > 1)}: images/s, images/CPU-s" for t in THREADS)
    print(f"| batch size | {header} |")
    print("|---:|" + "---:|" * len(THREADS))
    classifiers = {threads: OnnxClassifier(artifact, device="cpu", threads=threads) for threads in THREADS}
    for batch_size in BATCH_SIZES:
        count = min(args.images, 128 * batch_size)  # batch 1 would take minutes on the full set
        cells = []
        for threads in THREADS:
            wall, cpu = images_per_second(classifiers[threads], images[:count], batch_size, args.repeats)
            cells.append(f"{wall:,.0f}, {cpu:,.0f}")
        print(f"| {batch_size} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
