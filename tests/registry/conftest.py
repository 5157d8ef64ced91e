"""Helpers for the registry tests: captured MLflow webhook deliveries, a real MLflow server with the gate, model
registration, and `model-scanner serve` as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DELIVERIES = Path(__file__).resolve().parent.parent / "data" / "mlflow-webhooks"
# The secret the captured deliveries were signed with (see tests/data/mlflow-webhooks/INDEX.md).
CAPTURED_SECRET = "s3cret"


def load_captured(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DELIVERIES / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture
def captured() -> Callable[[str], dict[str, Any]]:
    """Loads a captured delivery by its file name under tests/data/mlflow-webhooks/."""
    return load_captured


@pytest.fixture
def model_version_created() -> dict[str, Any]:
    return load_captured("03_model_version.created.json")


# -- a real MLflow server on loopback, with the gate, shared by the registry tests --------------------------------

SCANNER_TOKEN = "test-scanner-token"


@dataclass(frozen=True)
class GatedServer:
    url: str
    policy_file: Path  # what MODEL_SCANNER_POLICY points at; tests may rewrite it (the gate re-reads it)
    token: str
    log_file: Path

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@pytest.fixture(scope="session")
def gated_server(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[GatedServer]:
    """`mlflow server --app-name model-scanner-gate` (uvicorn, sqlite, light settings) with this checkout's gate.

    The gate's entry point is declared by a dist-info directory on the server's PYTHONPATH (see
    scanner.registry.local_server.entry_point_dir), so the project need not be installed for the tests.
    """
    from scanner.registry.local_server import LocalMlflowServer, entry_point_dir

    state = tmp_path_factory.mktemp("mlflow")
    policy_file = state / "policy.yaml"
    policy_file.write_text((repo_root / "policies" / "default.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    server = LocalMlflowServer(
        state / "server",
        pythonpath=[entry_point_dir(state / "entry-points"), repo_root],
        env={"MODEL_SCANNER_POLICY": str(policy_file), "MODEL_SCANNER_TOKEN": SCANNER_TOKEN},
    )
    with server:
        yield GatedServer(url=server.url, policy_file=policy_file, token=SCANNER_TOKEN, log_file=server.log_file)


# -- registering models and running `model-scanner serve` ----------------------------------------------------------


def log_and_register(url: str, onnx_path: Path, name: str, *, clean_sample: Path | None = None) -> str:
    """Logs `onnx_path` with mlflow.onnx.log_model in a new run (and `clean_sample` as the run's
    clean_sample.npz), registers it as a new version of `name`, and returns the version."""
    import mlflow
    import onnx

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("registry-tests")
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="model", save_as_external_data=False)
        if clean_sample is not None:
            mlflow.log_artifact(str(clean_sample))
    version = mlflow.register_model(info.model_uri, name)
    return str(version.version)


class ServeProcess:
    """`python -m scanner serve ...` as a subprocess of this checkout, killable like a real deployment."""

    def __init__(self, repo_root: Path, server: GatedServer, state_dir: Path, *extra: str) -> None:
        from scanner.registry.local_server import free_port

        self.repo_root = repo_root
        self.server = server
        self.state_dir = state_dir
        self.port = free_port()
        self.extra = extra
        self.log_file = state_dir / f"serve-{self.port}.log"  # one per process: restarts share the state dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = 90) -> ServeProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "scanner", "-v", "serve",
            "--tracking-uri", self.server.url,
            "--policy", str(self.server.policy_file),
            "--listen", f"127.0.0.1:{self.port}",
            "--state-dir", str(self.state_dir),
            *self.extra,
        ]  # fmt: skip
        # Only --tracking-uri may lead the service to the server (mlflow.set_tracking_uri in this process sets these).
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        env |= {"MODEL_SCANNER_TOKEN": self.server.token, "MODEL_SCANNER_WEBHOOK_SECRET": "serve-secret"}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=self.repo_root, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log_file.read_text()}")
            if "model-scanner serve: webhooks on" in self.log_file.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        raise AssertionError(f"serve did not start:\n{self.log_file.read_text()}")

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def wait_for(condition: Callable[[], Any], *, timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture
def register_model() -> Callable[..., str]:
    return log_and_register


@pytest.fixture
def serve(repo_root: Path, gated_server: GatedServer, tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Starts `model-scanner serve` subprocesses against the session-scoped gated server; all are stopped at the end."""
    started: list[ServeProcess] = []

    def start(*extra: str, state_dir: Path | None = None) -> ServeProcess:
        process = ServeProcess(repo_root, gated_server, state_dir or tmp_path / "serve-state", *extra).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def wait_for_condition() -> Callable[..., Any]:
    return wait_for


@pytest.fixture(scope="session")
def service_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real ONNX classifier (16x16 grey, 10 classes) for the service's mechanics."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(10, 256)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("Gemm", ["flat", "W"], ["logits"], transB=1)],
        "tiny-linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    onnx.save(model, str(path))
    return path
