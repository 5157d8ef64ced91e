"""Bench: one `model-scanner scan` command over a directory of zoo models into one report.

    python -m bench.scan_directory ZOO_DIR [--count 20] [--results bench/results/scan_directory.md]

Copies `count` models from the zoo's manifest (clean and backdoored, both families, alternating) into a fresh
directory, writes a policy whose `inputs` point each family at its clean sample data (so BAN runs), runs the CLI
once as a subprocess, and appends what it measured, with the exact command, to the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def pick(entries: list[dict], count: int) -> list[dict]:
    """Alternate clean / backdoored and families, in manifest order, so any prefix is balanced."""
    groups: dict[tuple[bool, str], list[dict]] = {}
    for entry in entries:
        groups.setdefault((bool(entry["backdoored"]), entry["family"]), []).append(entry)
    order = sorted(groups)
    picked: list[dict] = []
    while len(picked) < count and any(groups.values()):
        for key in order:
            if groups[key] and len(picked) < count:
                picked.append(groups[key].pop(0))
    return picked


def policy_text(zoo: Path, families: set[str]) -> str:
    default = (REPO_ROOT / "policies" / "default.yaml").read_text(encoding="utf-8")
    lines = [default.rstrip(), "", "inputs:"]
    for family in sorted(families):
        lines += [f'  - models: ["{family}-*"]', f"    clean_data: {zoo / f'clean_{family}.npz'}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zoo", type=Path, help="a zoo directory with manifest.json (e.g. the test zoo)")
    parser.add_argument("--count", type=int, default=20, help="models to copy and scan (default 20)")
    parser.add_argument("--detectors", help="passed to scan --detectors (default: every registered detector)")
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO_ROOT / "bench" / "results" / "scan_directory.md",
        help="file the measurement is appended to (default bench/results/scan_directory.md; /dev/stdout to print)",
    )
    args = parser.parse_args(argv)

    manifest = json.loads((args.zoo / "manifest.json").read_text())
    chosen = pick(manifest["models"], args.count)
    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    models = work / "models"
    models.mkdir()
    truth = {}
    for index, entry in enumerate(chosen):
        name = f"{entry['family']}-{index:02d}.onnx"
        shutil.copyfile(args.zoo / entry["file"], models / name)
        truth[name] = entry
    policy = work / "policy.yaml"
    policy.write_text(policy_text(args.zoo.resolve(), {entry["family"] for entry in chosen}))
    report_path = work / "report.json"
    command = [
        sys.executable,
        "-m",
        "scanner",
        "scan",
        str(models),
        "--policy",
        str(policy),
        "--format",
        "json",
        "--output",
        str(report_path),
        "--artifacts",
        str(work / "heatmaps"),
    ]
    load_before = os.getloadavg()[0]
    if args.detectors:
        command += ["--detectors", args.detectors]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    if not report_path.exists():
        print(done.stderr, file=sys.stderr)
        return 1
    report = json.loads(report_path.read_text())
    results = report["results"]

    statuses = Counter(result["status"] for result in results)
    actions = Counter((result["decision"] or {}).get("action") for result in results)
    outcome = Counter()
    detector_seconds: dict[str, list[float]] = {}
    detector_statuses: dict[str, Counter] = {}
    for result in results:
        entry = truth[Path(result["target"]).name]
        said = result["verdict"]
        outcome[("backdoored" if entry["backdoored"] else "clean", said)] += 1
        for name, detector in result["detectors"].items():
            detector_statuses.setdefault(name, Counter())[detector["status"]] += 1
            if detector["seconds"] is not None and detector["status"] == "scanned":
                detector_seconds.setdefault(name, []).append(detector["seconds"])
    shown = " ".join(part if " " not in part else repr(part) for part in command)
    shown = shown.replace(str(work), "$WORK").replace(sys.executable, "python")
    lines = [
        f"## Scan a directory of {len(results)} zoo models into one report ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Command (`$WORK` prepared by `python -m bench.scan_directory {args.zoo} --count {args.count}`):",
        "",
        f"    {shown}",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load_before:.1f} before, {load_after:.1f} after (the machine is shared: times are upper bounds)",
        f"- exit code {done.returncode}; wall time {seconds:.1f} s for {len(results)} models "
        f"({seconds / max(1, len(results)):.1f} s per model, process start and imports included)",
        f"- one report: {len(results)} results; status {dict(statuses)}; decisions {dict(actions)}",
        f"- policy {report['policy']} (default rules, plus inputs pointing each family at its clean data)",
    ]
    for name, counts in sorted(detector_statuses.items()):
        lines.append(f"- detector {name}: status {dict(counts)}")
    for name, values in sorted(detector_seconds.items()):
        lines.append(f"- detector {name}: mean {sum(values) / len(values):.2f} s per model, max {max(values):.2f} s")
    lines.append("- verdict vs. ground truth in this sample (not a detection benchmark: see the detectors' results):")
    for (truly, said), number in sorted(outcome.items()):
        lines.append(f"  - truly {truly}, judged {said}: {number}")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.results.exists():
        text = args.results.read_text().rstrip() + "\n\n" + text
    else:
        text = "# Scan command benchmarks\n\n" + text
    args.results.write_text(text)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
