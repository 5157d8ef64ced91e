"""`model-scanner scan models:/NAME/VERSION` against a real MLflow server on loopback (no gate: the scan only reads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.intake.builders import save, tiny_cnn


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A plain MLflow server and one registered version of a small ONNX classifier: (url, name, version)."""
    import mlflow
    import onnx

    from scanner.registry.local_server import LocalMlflowServer

    state = tmp_path_factory.mktemp("mlflow")
    model_path = save(tiny_cnn(seed=3), state / "cnn.onnx")
    with LocalMlflowServer(state / "server", gate=False) as server:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("scan-command-tests")
        with mlflow.start_run():
            info = mlflow.onnx.log_model(onnx.load(str(model_path)), name="model", save_as_external_data=False)
        version = mlflow.register_model(info.model_uri, "scan-cli-cnn")
        yield server.url, "scan-cli-cnn", str(version.version)


def scan(repo_root: Path, url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    command = [sys.executable, "-m", "scanner", "scan", *argv, "--detectors", "one-pixel"]
    return subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.server
def test_a_registered_version_is_fetched_scanned_and_named_by_its_uri(registry, repo_root):
    url, name, version = registry
    done = scan(repo_root, url, f"models:/{name}/{version}")
    (result,) = json.loads(done.stdout)["results"]
    assert result["target"] == f"models:/{name}/{version}"
    assert result["status"] == "scanned" and len(result["sha256"]) == 64, done.stderr
    assert done.returncode == {"allow": 0, "warn": 0, "block": 1}[result["decision"]["action"]]


@pytest.mark.server
def test_a_missing_version_is_an_error_result_and_exit_2(registry, repo_root):
    url, name, _ = registry
    done = scan(repo_root, url, f"models:/{name}/99")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["status"] == "error" and result["error"]["kind"] == "registry"
    assert f"model-scanner: error: models:/{name}/99: " in done.stderr
