"""Real architectures at two sizes: what a scan costs, and whether the torch view matches ONNX Runtime.

    python -m bench.real_architectures [--sizes 32 224] [--architectures resnet vit] [--exporters legacy dynamo]
        [--budget 600] [--clean 512] [--out results.json]

For each architecture of tests/torchview/real_architectures.py (small faithful definitions in plain torch, random
weights; ResNet-18 and ViT-Tiny at their real widths on request: --architectures resnet18 vit_tiny) at 32x32 with 10
classes and 224x224 with 1000, from each exporter: parameters, ONNX Runtime forward ms (one image, and per image in a
batch of 32), the torch view's largest difference from ONNX Runtime, and a scan by each detector as `scan` runs it
(clean data: --clean random images in [0, 1], labels from the model; the budget shared evenly between the two
detectors): seconds, forward passes (one-pixel) or forward-equivalents (BAN), status and what the budget reduced. Each
model runs in its own process, whose peak RSS is reported. Prints a Markdown table; --out also writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from scanner.commands.options import budget as budget_of
from scanner.findings import Budget
from scanner.scan import DEFAULT_BUDGET

ARCHITECTURES = ("resnet", "mobilenet_v2", "mobilenet_v3", "efficientnet", "convnext", "vit", "deit")
REAL_WIDTHS = ("resnet18", "vit_tiny")  # on request: real widths and depths, 11.7 M and 5.7 M parameters
CLASSES = {32: 10, 224: 1000}


def measure(
    arch: str, size: int, exporter: str, budget: Budget | None, clean_count: int, threads: int
) -> dict[str, Any]:
    """One model's row (runs in its own process)."""
    import onnx
    import torch

    from scanner.detectors.ban.detector import BanDetector
    from scanner.detectors.interface import CleanData, DetectionContext
    from scanner.detectors.one_pixel import OnePixelDetector
    from scanner.intake import load_model
    from scanner.runtime import OnnxClassifier
    from scanner.torchview import TorchGraph
    from tests.torchview.real_architectures import cached_export

    classes = CLASSES[size]
    began = time.perf_counter()
    data = cached_export(arch, classes, size, exporter)
    export_s = time.perf_counter() - began
    graph_proto = onnx.load_from_string(data)
    parameters = sum(int(np.prod(t.dims)) for t in graph_proto.graph.initializer)
    row: dict[str, Any] = {"arch": arch, "size": size, "classes": classes, "exporter": exporter}
    row.update(parameters=parameters, onnx_mib=round(len(data) / 2**20, 2), export_or_cache_s=round(export_s, 1))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{arch}.onnx"
        path.write_bytes(data)
        artifact = load_model(path)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (clean_count, 3, size, size)).astype(np.float32)
    runner = OnnxClassifier(artifact, device="cpu", threads=threads)
    runner.logits(x[:1])
    row["forward_ms_1"] = round(1000 * min(_timed(lambda: runner.logits(x[:1])) for _ in range(5)), 2)
    batch = np.concatenate([x] * -(-32 // len(x)))[:32]
    row["forward_ms_per_image_b32"] = round(1000 * _timed(lambda: runner.logits(batch)) / 32, 2)
    torch.set_num_threads(threads)
    view = TorchGraph(artifact.onnx_bytes, device="cpu")
    with torch.no_grad():
        viewed = view.run({view.input_name: torch.from_numpy(x[:4])}, [view.output_name])[view.output_name]
    row["torch_view_max_abs_diff"] = float(np.abs(viewed.numpy() - runner.logits(x[:4])).max())
    clean = CleanData(x=x)
    share = budget.share(2) if budget else None
    for name, detector in (("one_pixel", OnePixelDetector(threads=threads)), ("ban", BanDetector())):
        started = time.perf_counter()
        result = detector.detect(artifact, DetectionContext(clean_data=clean, device="cpu", budget=share))
        plan = result.details.get("budget") or {}
        row[name] = {
            "status": result.status.value,
            "seconds": round(time.perf_counter() - started, 1),
            "passes": result.forward_passes,
            "full_passes": plan.get("full_passes", plan.get("full_forward_equivalents")),
            "settings": plan.get("settings", {}),
            "reduced": plan.get("note") or "",
            "reason": result.reason,
        }
    row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| architecture | size / classes | exporter | parameters | forward ms (1; per image in 32) | view vs ORT |"
        " one-pixel: s, passes | BAN: s, forward-eq. | peak RSS MiB | reduced by the budget |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arch']} | {r['size']} | {r['exporter']} | not measured: {r['error']} |||||||")
            continue
        cells = []
        reduced = []
        for name in ("one_pixel", "ban"):
            d = r[name]
            if d["status"] != "scanned":
                cells.append(f"{d['status']}: {d['reason']}")
                continue
            cells.append(f"{d['seconds']:g}, {d['passes']:,}")
            if d["reduced"]:
                chosen = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.get("settings", {}).items())
                reduced.append(f"{name}: {d['passes']:,} of {d['full_passes']:,} ({chosen})")
        lines.append(
            f"| {r['arch']} | {r['size']} / {r['classes']} | {r['exporter']} | {r['parameters']:,} |"
            f" {r['forward_ms_1']:g}; {r['forward_ms_per_image_b32']:g} | {r['torch_view_max_abs_diff']:.1e} |"
            f" {cells[0]} | {cells[1]} | {r['peak_rss_mib']:,} | {'; '.join(reduced) or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", choices=sorted(CLASSES), default=[32])
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES + REAL_WIDTHS, default=list(ARCHITECTURES))
    parser.add_argument(
        "--exporters", nargs="+", choices=["legacy", "legacy-old", "dynamo"], default=["legacy", "dynamo"]
    )
    parser.add_argument(
        "--budget",
        type=budget_of,
        default=DEFAULT_BUDGET,
        help="per model, as scan --budget (600, 10m, 150kpasses; 0: none)",
    )
    parser.add_argument("--clean", type=int, default=512, help="clean images (random, in [0, 1])")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the rows here as JSON")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # ARCH,SIZE,EXPORTER: one row, in this process
    args = parser.parse_args(argv)
    if args.row:
        arch, size, exporter = args.row.split(",")
        print(json.dumps(measure(arch, int(size), exporter, args.budget, args.clean, args.threads)))
        return 0
    rows = []
    for size in args.sizes:
        for arch in args.architectures:
            for exporter in args.exporters:
                command = [sys.executable, "-m", "bench.real_architectures", "--row", f"{arch},{size},{exporter}"]
                budget = "0" if args.budget is None else f"{args.budget.amount:g}{args.budget.unit.value}"
                command += ["--budget", budget, "--clean", str(args.clean), "--threads", str(args.threads)]
                done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
                if done.returncode == 0:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                else:
                    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    row = {"arch": arch, "size": size, "exporter": exporter, "error": tail[:200]}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
