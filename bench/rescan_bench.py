"""Re-scan throughput, local executor against a local Ray, on a real MLflow server (with the gate).

    python -m bench.rescan_bench --zoo DIR [--family digits16] [--count 20] [--detectors one-pixel]

Registers `count` versions (models of `family` from the zoo's manifest, clean and backdoored alternately), tags
them as scanned by older detector versions, then runs `model-scanner rescan --stale-only` three times: local
executor, again (must scan none), and, after re-tagging, `--executor ray`. Prints one JSON object: wall time of
each CLI run, the re-scan's own time (without start-up), versions per second, and whether Ray's verdicts,
decisions and scores equal the local ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.registry.rescan.helpers import (  # noqa: E402 - after the path set-up
    judged,
    models_of,
    register_versions,
    scan_tags_of,
    tag_as_older_scan,
)

TOKEN = "bench-scanner-token"


def rescan(url: str, policy: Path, state: Path, prefix: str, detectors: str, *extra: str) -> dict[str, object]:
    env = {**os.environ, "MODEL_SCANNER_TOKEN": TOKEN, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "scanner", "-q", "rescan", "--tracking-uri", url, "--models", f"{prefix}-*"]
    command += ["--policy", str(policy), "--detectors", detectors, "--state-dir", str(state), "--stale-only", *extra]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(f"rescan failed ({completed.returncode}): {completed.stderr}")
    report = json.loads(completed.stdout)
    scanned = int(report["scanned"])
    seconds = float(report["seconds"])
    return {
        "executor": report["executor"],
        "scanned": scanned,
        "wall_s": round(wall, 1),
        "rescan_s": round(seconds, 1),
        "versions_per_s": round(scanned / seconds, 3) if scanned else None,
        "versions_per_s_wall": round(scanned / wall, 3) if scanned else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--family", default="digits16")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--distinct", type=int, default=4, help="distinct models behind the versions")
    parser.add_argument("--detectors", default="one-pixel")
    args = parser.parse_args()

    from scanner.policy import load_builtin_policy
    from scanner.registry.client import RegistryClient
    from scanner.registry.local_server import LocalMlflowServer, entry_point_dir
    from scanner.registry.rescan.driver import Rescanner
    from scanner.registry.rescan.executors import LocalExecutor

    with tempfile.TemporaryDirectory(prefix="rescan-bench-") as scratch:
        root = Path(scratch)
        policy_file = root / "policy.yaml"
        policy_file.write_text((REPO_ROOT / "policies" / "default.yaml").read_text())
        server = LocalMlflowServer(
            root / "server",
            pythonpath=[entry_point_dir(root / "entry-points"), REPO_ROOT],
            env={"MODEL_SCANNER_POLICY": str(policy_file), "MODEL_SCANNER_TOKEN": TOKEN},
        )
        with server:
            policy = load_builtin_policy()
            registry = RegistryClient(server.url, token=TOKEN)
            names = [name.strip() for name in args.detectors.split(",")]
            engine_key = Rescanner(registry, policy, names, LocalExecutor()).engine.key
            models = models_of(args.zoo, family=args.family, count=args.distinct)
            versions = register_versions(server.url, models, count=args.count, prefix="bench")
            tag_as_older_scan(registry, versions, policy=policy.label, engine_key=engine_key)
            local = rescan(server.url, policy_file, root / "state", "bench", args.detectors)
            local_tags = scan_tags_of(server.url, versions)
            again = rescan(server.url, policy_file, root / "state", "bench", args.detectors)
            tag_as_older_scan(registry, versions, policy=policy.label, engine_key=engine_key)
            ray = rescan(server.url, policy_file, root / "state", "bench", args.detectors, "--executor", "ray")
            ray_tags = scan_tags_of(server.url, versions)
    verdicts: dict[str, int] = {}
    for _, verdict, _, _ in judged(local_tags).values():
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    print(
        json.dumps(
            {
                "versions": len(versions),
                "family": args.family,
                "detectors": args.detectors,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 1),
                "local": local,
                "second_run": again,
                "ray": ray,
                "local_verdicts": verdicts,
                "ray_equals_local": judged(ray_tags) == judged(local_tags),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
