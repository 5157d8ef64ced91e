"""Summarise a zoo directory's manifest: counts, clean accuracy and ASR per family, architecture and attack.

Usage: python -m bench.zoo_summary DIR
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from scanner.zoo.manifest import ZooEntry, read_manifest


def summary(entries: list[ZooEntry]) -> str:
    lines = ["| family | kind | arch/attack | models | clean acc min / mean | ASR min / mean | CPU s/model (train) |"]
    lines.append("|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str, str], list[ZooEntry]] = defaultdict(list)
    for entry in entries:
        kind = "backdoored" if entry.backdoored else "clean"
        groups[(entry.family, kind, entry.arch)].append(entry)
        if entry.backdoored:
            groups[(entry.family, kind, f"attack={entry.attack}")].append(entry)
    for (family, kind, label), group in sorted(groups.items()):
        accs = [e.clean_acc for e in group]
        asrs = [e.asr for e in group if e.asr is not None]
        asr = f"{min(asrs):.3f} / {sum(asrs) / len(asrs):.3f}" if asrs else "-"
        seconds = sum(e.train_seconds for e in group) / len(group)
        lines.append(
            f"| {family} | {kind} | {label} | {len(group)} | {min(accs):.3f} / {sum(accs) / len(accs):.3f} | {asr} "
            f"| {seconds:.1f} |"
        )
    exporters = defaultdict(int)
    for entry in entries:
        exporters[entry.exporter] += 1
    lines.append("")
    lines.append(f"{len(entries)} models; exporters: {dict(sorted(exporters.items()))}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zoo", type=Path, help="a zoo directory with manifest.json")
    args = parser.parse_args(argv)
    print(summary(read_manifest(args.zoo)))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
