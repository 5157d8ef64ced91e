"""Helpers for the registry tests: real captured MLflow webhook deliveries (tests/data/mlflow-webhooks/)."""

from __future__ import annotations

import json
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
