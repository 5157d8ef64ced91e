"""`model-scanner rescan` against a real MLflow server (with the gate) and real models, local and on a local Ray.

20 registered versions tagged by "an older scanner" (same policy and scanner version, older detector versions):
the re-scan scans exactly those 20 and updates their tags; a second re-scan scans none; the same 20 re-scanned with
`--executor ray` get the same verdicts, decisions and scores as with the local executor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.registry.rescan.helpers import judged, register_versions, scan_tags_of, tag_as_older_scan

COUNT = 20
PREFIX = "rescan-e2e"
DETECTORS = "one-pixel"


@pytest.fixture(scope="module")
def digits_models(request: pytest.FixtureRequest) -> list[Path]:
    """A few clean and backdoored 16x16 digits models from the test zoo."""
    from tests.registry.rescan.helpers import zoo_models

    return zoo_models(request, family="digits16", count=4)


def rescan(repo_root, server, policy, state_dir, *extra):
    env = {**os.environ, "MODEL_SCANNER_TOKEN": server.token, "PYTHONPATH": str(repo_root)}
    command = [sys.executable, "-m", "scanner", "-q", "rescan", "--tracking-uri", server.url]
    command += ["--models", f"{PREFIX}-*", "--policy", str(policy), "--detectors", DETECTORS]
    command += ["--state-dir", str(state_dir), "--stale-only", *extra]
    completed = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, env=env, timeout=600)
    assert completed.returncode in (0, 1), completed.stderr
    return json.loads(completed.stdout), completed.returncode


@pytest.mark.server
@pytest.mark.slow
def test_rescan_after_a_detector_upgrade_local_then_ray(gated_server, digits_models, repo_root, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'model-scanner[ray]')")
    from scanner.policy import load_policy
    from scanner.registry.client import RegistryClient
    from scanner.registry.rescan.driver import Rescanner
    from scanner.registry.rescan.executors import LocalExecutor

    policy = load_policy(gated_server.policy_file)
    registry = RegistryClient(gated_server.url, token=gated_server.token)
    engine_key = Rescanner(registry, policy, [DETECTORS], LocalExecutor()).engine.key
    versions = register_versions(gated_server.url, digits_models, count=COUNT, prefix=PREFIX)
    tag_as_older_scan(registry, versions, policy=policy.label, engine_key=engine_key)

    first, _ = rescan(repo_root, gated_server, gated_server.policy_file, tmp_path / "state")
    assert sorted(first["rescanned"]) == sorted(f"models:/{n}/{v}" for n, v in versions)
    assert first["reasons"] == {"detector_changed": COUNT}
    local = scan_tags_of(gated_server.url, versions)
    assert all(tags["scan.engine"] == engine_key for tags in local.values())
    assert {tags["scan.status"] for tags in local.values()} == {"scanned"}
    # Only what changed is reported: versions whose decision moved away from the old "allow".
    blocked = {ref for ref, tags in local.items() if tags["scan.decision"] == "block"}
    assert {(c["name"], c["version"]) for c in first["changes"] if c["change"] == "newly_blocked"} == blocked
    # Recorded in serve's queue under serve's scan key: serve's workers will not scan these again.
    from scanner.registry.queue import WorkQueue

    recorded = WorkQueue(tmp_path / "state" / "queue.db").scan_records()
    assert sorted((r.model_name, r.model_version) for r in recorded) == sorted(versions)
    assert {(r.starts, r.publishes) for r in recorded} == {(1, 1)}

    second, _ = rescan(repo_root, gated_server, gated_server.policy_file, tmp_path / "state")
    assert (second["considered"] >= COUNT, second["scanned"], second["changes"]) == (True, 0, [])

    tag_as_older_scan(registry, versions, policy=policy.label, engine_key=engine_key)
    on_ray, _ = rescan(repo_root, gated_server, gated_server.policy_file, tmp_path / "state", "--executor", "ray")
    assert on_ray["executor"] == "ray" and on_ray["scanned"] == COUNT
    assert judged(scan_tags_of(gated_server.url, versions)) == judged(local)
