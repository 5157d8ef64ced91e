"""ONNX Runtime's intra-op thread spinning, on and off, with 2 threads on the small CNN of runtime_batch_size.

Run from the repository root:  python -m bench.runtime_spinning [--images 4096] [--repeats 7] [--batch-size 512]
Spinning threads busy-wait between operators for lower latency; on a machine whose cores are shared they take
CPU time from other jobs (and from each other). Prints wall-clock and CPU-time throughput, fastest of the repeats.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.runtime_batch_size import SIDE, small_cnn
from scanner.runtime import as_probabilities, batches


def throughput(spinning: bool, threads: int, images: np.ndarray, batch_size: int, repeats: int) -> tuple[float, float]:
    import onnxruntime as ort

    data, _ = small_cnn()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    wall, cpu = [], []
    for _ in range(repeats + 1):  # the first is a warm-up
        start, start_cpu = time.perf_counter(), time.process_time()
        for low, high in batches(len(images), batch_size, images[0].nbytes):
            as_probabilities(session.run(None, {"image": images[low:high]})[0])
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return len(images) / min(wall[1:]), len(images) / min(cpu[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    images = np.random.default_rng(0).random((args.images, 3, SIDE, SIDE), dtype=np.float32)
    print(f"{args.images} images, batch {args.batch_size}, fastest of {args.repeats}; load {os.getloadavg()[0]:.1f}\n")
    print("| threads | spinning | images/s | images/CPU-s |")
    print("|---:|---|---:|---:|")
    for threads in (1, 2):
        for spinning in (True, False):
            wall, cpu = throughput(spinning, threads, images, args.batch_size, args.repeats)
            print(f"| {threads} | {'on' if spinning else 'off'} | {wall:,.0f} | {cpu:,.0f} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
