"""Speed of the one-pixel signature: forwards/s against the FLOP bound, overhead against raw ONNX Runtime.

    python -m bench.one_pixel_speed --model PATH.onnx [--threads 2] [--values 16] [--per-channel]

Prints one JSON object, with the coarse-to-fine signature beside (`coarse_to_fine_*`). The matmul peak is measured
here (ONNX Runtime MatMul 1024^3 and numpy), not assumed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def ort_matmul_peak(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of ONNX Runtime's float32 MatMul on size^3, best of `repeats`."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [size, size])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((size, size), dtype=np.float32)
    feed = {"a": x, "b": x}
    session.run(None, feed)
    best = min(_timed(lambda: session.run(None, feed)) for _ in range(repeats))
    del onnx
    return 2 * size**3 / best


def numpy_matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    x = np.random.default_rng(0).random((size, size), dtype=np.float32)
    x @ x
    best = min(_timed(lambda: x @ x) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(work) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--values", type=int, default=16)
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()

    from scanner.calibration.zoos import artifact_for
    from scanner.detectors.graph_cost import flops_per_forward
    from scanner.detectors.one_pixel.signature import SignatureSettings, signature_for, synthetic_bases
    from scanner.runtime import OnnxClassifier

    artifact = artifact_for(args.model)
    spec = artifact.spec
    flops = flops_per_forward(artifact.onnx_bytes)
    runner = OnnxClassifier(artifact, threads=args.threads)
    base = synthetic_bases(spec)[1:2]  # one base (mid-grey): the figure asked for is per base
    settings = SignatureSettings(values=args.values, per_channel=args.per_channel, batch_size=args.batch)
    signature_for(runner, base, SignatureSettings(values=2, batch_size=args.batch))  # warm-up

    started = time.perf_counter()
    signature = signature_for(runner, base, settings)
    signature_seconds = time.perf_counter() - started
    passes = signature.forward_passes

    images = np.random.default_rng(0).random((args.batch, *spec.image_shape), dtype=np.float32)
    started = time.perf_counter()
    done = 0
    while done < passes:
        chunk = min(args.batch, passes - done)
        runner.logits(images[:chunk])
        done += chunk
    raw_seconds = time.perf_counter() - started

    coarse = SignatureSettings(
        values=args.values, per_channel=args.per_channel, mode="coarse-to-fine", batch_size=args.batch
    )
    started = time.perf_counter()
    coarse_signature = signature_for(runner, base, coarse)
    coarse_seconds = time.perf_counter() - started

    peak_ort = ort_matmul_peak(args.threads)
    peak_numpy = numpy_matmul_peak()
    print(
        json.dumps(
            {
                "model": str(args.model),
                "input": spec.image_shape,
                "layout": spec.layout.value,
                "threads": args.threads,
                "load_average": os.getloadavg(),
                "flops_per_forward": flops,
                "values": args.values,
                "per_channel": args.per_channel,
                "forward_passes": passes,
                "signature_seconds": round(signature_seconds, 3),
                "signature_forwards_per_s": round(passes / signature_seconds),
                "raw_ort_seconds": round(raw_seconds, 3),
                "raw_forwards_per_s": round(passes / raw_seconds),
                "overhead_vs_raw_ort": round(signature_seconds / raw_seconds, 3),
                "matmul_peak_gflops_ort": round(peak_ort / 1e9, 1),
                "matmul_peak_gflops_numpy": round(peak_numpy / 1e9, 1),
                "achieved_gflops": round(passes * flops / signature_seconds / 1e9, 1),
                "fraction_of_ort_peak": round(passes * flops / signature_seconds / peak_ort, 3),
                "flop_bound_seconds": round(passes * flops / peak_ort, 3),
                "coarse_to_fine_passes": coarse_signature.forward_passes,
                "coarse_to_fine_seconds": round(coarse_seconds, 3),
                "coarse_to_fine_pass_reduction": round(passes / coarse_signature.forward_passes, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
