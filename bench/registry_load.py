"""Load on the registry service: a burst of N registrations against a real MLflow server with webhooks.

    python bench/registry_load.py --versions 50 [--model FILE.onnx] [--detectors one-pixel] [--workers 1]

Starts a local MLflow server (gate on, sqlite, light settings) and the scanner service in this process, logs one
model, registers it N times as fast as MLflow takes it, and waits until every version carries its scan tags. Prints
the times and checks that no registration was lost and none scanned twice. Without --model it uses a digits16 model
from the demo zoo in $MODEL_SCANNER_CACHE (built on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--detectors", default="one-pixel")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    import mlflow
    import onnx
    from mlflow import MlflowClient

    from scanner.registry.engine import build_engine
    from scanner.registry.local_server import LocalMlflowServer, entry_point_dir
    from scanner.registry.service import ScannerService, ServiceConfig

    model = args.model
    if model is None:
        from scanner.zoo.build import build_zoo

        zoo = Path(os.environ.get("MODEL_SCANNER_CACHE", Path.home() / ".cache" / "model-scanner")) / "demo-zoo"
        model = next(e for e in build_zoo("digits16", 1, 1, zoo, seed=7) if e.backdoored).path(zoo)

    with tempfile.TemporaryDirectory(prefix="registry-bench-") as scratch:
        state = Path(scratch)
        token = secrets.token_urlsafe(16)
        server = LocalMlflowServer(
            state / "mlflow",
            pythonpath=[entry_point_dir(state / "ep"), REPO_ROOT],
            env={"MODEL_SCANNER_TOKEN": token},
        )
        started = time.perf_counter()
        server.start()
        server_start_s = time.perf_counter() - started
        engine = build_engine(None, args.detectors.split(","), device="cpu")
        config = ServiceConfig(
            tracking_uri=server.url,
            queue_path=state / "queue.db",
            webhook_secret=secrets.token_urlsafe(16),
            scanner_token=token,
            workers=args.workers,
            reconcile_interval_s=30,
        )
        service = ScannerService(config, engine)
        service.start()
        try:
            mlflow.set_tracking_uri(server.url)
            client = MlflowClient(server.url, registry_uri=server.url)
            with mlflow.start_run():
                info = mlflow.onnx.log_model(onnx.load(str(model)), name="model", save_as_external_data=False)
            name = "load-test"
            burst_start = time.perf_counter()
            versions = [str(mlflow.register_model(info.model_uri, name).version) for _ in range(args.versions)]
            registered_s = time.perf_counter() - burst_start
            deadline = time.monotonic() + args.timeout
            while True:
                found = client.search_model_versions(f"name = '{name}'", max_results=1000)
                done = {v.version for v in found if v.tags.get("scan.status") not in (None, "pending")}
                if done >= set(versions) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            all_scanned_s = time.perf_counter() - burst_start
            time.sleep(1)  # let the last job's bookkeeping land
            records = [r for r in service.queue.scan_records() if r.model_name == name]
        finally:
            service.stop(timeout_s=30)
            server.stop()
    publishes = {r.model_version: r.publishes for r in records}
    result = {
        "versions": args.versions,
        "detectors": args.detectors,
        "workers": args.workers,
        "server_start_s": round(server_start_s, 1),
        "registration_burst_s": round(registered_s, 1),
        "all_scanned_s": round(all_scanned_s, 1),
        "per_version_s": round(all_scanned_s / args.versions, 2),
        "scanned": len(done & set(versions)),
        "lost": len(set(versions) - done),
        "scanned_twice": sum(1 for count in publishes.values() if count > 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 and result["scanned_twice"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
