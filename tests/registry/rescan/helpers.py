"""A registry of model versions for re-scan tests and benchmarks: register ONNX files, tag them as an older scanner
would have, read the tags back. Imported by tests/registry/rescan/test_rescan_e2e.py and bench/rescan_bench.py."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# The detector version an "older scanner" recorded: anything but the current one.
OLD_DETECTOR_VERSION = "0-old"


def register_versions(tracking_uri: str, models: Sequence[Path], *, count: int, prefix: str) -> list[tuple[str, str]]:
    """`count` versions spread over registered models `{prefix}-0..3`, cycling through `models` (each logged once)."""
    import mlflow
    import onnx
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = mlflow.set_experiment(f"{prefix}-models")
    logged = []
    for path in models:
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            # Explicit requirements: inferring them imports and times the model in a subprocess (seconds each).
            info = mlflow.onnx.log_model(
                onnx.load(str(path)),
                name="model",
                save_as_external_data=False,
                pip_requirements=["onnx", "onnxruntime"],
            )
            logged.append((info.model_uri, run.info.run_id, info.model_id))
    names = [f"{prefix}-{index}" for index in range(min(4, count))]
    for name in names:
        client.create_registered_model(name)
    versions = []
    for index in range(count):
        source, run_id, model_id = logged[index % len(logged)]
        created = client.create_model_version(names[index % len(names)], source, run_id=run_id, model_id=model_id)
        versions.append((created.name, str(created.version)))
    return versions


def old_engine_key(current_key: str) -> str:
    """The engine key of the same scanner with every detector at an older version."""
    document = json.loads(current_key)
    document["detectors"] = [[name, OLD_DETECTOR_VERSION] for name, _ in document["detectors"]]
    return json.dumps(document)


def tag_as_older_scan(registry: Any, versions: Sequence[tuple[str, str]], *, policy: str, engine_key: str) -> None:
    """Tags every version as scanned (clean, allowed) yesterday by the same scanner with older detector versions."""
    from concurrent.futures import ThreadPoolExecutor

    from scanner import __version__

    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat(timespec="seconds")
    tags = {
        "scan.status": "scanned",
        "scan.verdict": "clean",
        "scan.decision": "allow",
        "scan.policy": policy,
        "scan.scanner_version": __version__,
        "scan.scanned_at": yesterday,
        "scan.engine": old_engine_key(engine_key),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda ref: registry.set_scan_tags(*ref, tags), versions))


def scan_tags_of(tracking_uri: str, versions: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = {}
    for name, version in versions:
        tags = client.get_model_version(name, version).tags
        found[(name, version)] = {k: v for k, v in tags.items() if k.startswith("scan.")}
    return found


def judged(tags: dict[tuple[str, str], dict[str, str]]) -> dict[tuple[str, str], tuple[str, str, str, str]]:
    """What must not depend on where a scan ran: status, verdict, decision, score."""
    return {
        ref: (t.get("scan.status", ""), t.get("scan.verdict", ""), t.get("scan.decision", ""), t.get("scan.score", ""))
        for ref, t in tags.items()
    }


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def zoo_models(request: Any, *, family: str, count: int) -> list[Path]:
    """`count` models of `family` from the test zoo (the session-scoped fixture), clean and backdoored alternately;
    backdoors with a local trigger (a patch) first, the kind a one-pixel signature shows best."""
    return models_of(zoo_directory(request), family=family, count=count)


def zoo_directory(request: Any) -> Path:
    import pytest

    try:
        return Path(request.getfixturevalue("zoo"))
    except pytest.FixtureLookupError:
        pytest.skip("the test zoo fixture (branch zoo) is not merged yet")


def models_of(directory: Path, *, family: str, count: int) -> list[Path]:
    from scanner.zoo.manifest import read_manifest

    entries = [entry for entry in read_manifest(directory) if entry.family == family]
    clean = [entry.path(directory) for entry in entries if not entry.backdoored]
    local_first = sorted(
        (entry for entry in entries if entry.backdoored),
        key=lambda entry: not any(word in (entry.attack or "").lower() for word in ("patch", "badnet", "pixel")),
    )
    backdoored = [entry.path(directory) for entry in local_first]
    mixed = [model for pair in zip(clean, backdoored, strict=False) for model in pair]
    return mixed[:count]
