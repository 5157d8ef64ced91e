"""The gate: promotions the policy forbids and scan.* tag writes by anyone but the scanner are refused.

First the decision logic in-process (a fake tag reader stands in for MLflow's store), then the plugin inside a real
`mlflow server --app-name model-scanner-gate` on loopback, driven by MlflowClient like a user would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from scanner.findings import DetectorResult, ScanResult, Status, Verdict
from scanner.registry import tags as scan_tags
from scanner.registry.client import TOKEN_HEADER, RegistryClient
from scanner.registry.gate import Gate, PolicySource

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated, still gated

POLICIES = Path(__file__).resolve().parents[2] / "policies"
TRANSITION = "/api/2.0/mlflow/model-versions/transition-stage"
ALIAS = "/ajax-api/2.0/mlflow/registered-models/alias"
_names = itertools.count()


def scanned(verdict: Verdict, score: float) -> ScanResult:
    detectors = {
        "one_pixel": DetectorResult("one_pixel", Status.SCANNED, score=score),
        "ban": DetectorResult("ban", Status.SCANNED, score=score),
    }
    return ScanResult("models:/m/1", "ab" * 32, Status.SCANNED, verdict=verdict, score=score, detectors=detectors)


def scan_tags_for(result: ScanResult) -> dict[str, str]:
    return scan_tags.tags_for(result, policy="default@test", scanner_version="test", report_uri=None)


def gate_over(version_tags: Mapping[str, str] | None, policy: str = "default.yaml", token: str | None = "tok") -> Gate:
    return Gate(PolicySource(str(POLICIES / policy)), token=token, read_tags=lambda name, version: version_tags)


# -- the decision logic ---------------------------------------------------------------------------------------------


def test_backdoored_version_is_refused_production_and_champion() -> None:
    gate = gate_over(scan_tags_for(scanned(Verdict.BACKDOORED, 0.97)))
    refusal = gate.check("POST", TRANSITION, {"name": "cnn", "version": "3", "stage": "Production"}, {}, {})
    assert refusal is not None
    assert "cnn version 3" in refusal.message and "verdict: backdoored" in refusal.message
    assert "block-backdoored" in refusal.message
    assert gate.check("POST", ALIAS, {"name": "cnn", "version": "3", "alias": "champion"}, {}, {}) is not None
    # Not protected by the default policy:
    assert gate.check("POST", TRANSITION, {"name": "cnn", "version": "3", "stage": "Staging"}, {}, {}) is None
    assert gate.check("POST", ALIAS, {"name": "cnn", "version": "3", "alias": "candidate"}, {}, {}) is None


def test_clean_version_is_promoted() -> None:
    gate = gate_over(scan_tags_for(scanned(Verdict.CLEAN, 0.03)))
    assert gate.check("POST", TRANSITION, {"name": "cnn", "version": "3", "stage": "production"}, {}, {}) is None
    assert gate.check("POST", ALIAS, {"name": "cnn", "version": "3", "alias": "champion"}, {}, {}) is None


@pytest.mark.parametrize(
    "version_tags",
    [{}, {scan_tags.STATUS: scan_tags.PENDING}, {scan_tags.STATUS: "error", scan_tags.ERROR: "pickle_refused: no"}],
    ids=["unscanned", "pending", "errored"],
)
def test_unscanned_or_errored_version_is_refused_when_failing_closed(version_tags: dict[str, str]) -> None:
    refusal = gate_over(version_tags).check("POST", ALIAS, {"name": "cnn", "version": "1", "alias": "champion"}, {}, {})
    assert refusal is not None and "fail-closed" in refusal.message


def test_audit_policy_lets_everything_through() -> None:
    gate = gate_over(scan_tags_for(scanned(Verdict.BACKDOORED, 0.97)), policy="audit.yaml")
    assert gate.check("POST", TRANSITION, {"name": "cnn", "version": "3", "stage": "Production"}, {}, {}) is None


@pytest.mark.parametrize(
    ("method", "path", "body", "args"),
    [
        ("POST", "/api/2.0/mlflow/model-versions/set-tag", {"name": "m", "version": "1", "key": "scan.verdict"}, {}),
        (
            "DELETE",
            "/api/2.0/mlflow/model-versions/delete-tag",
            {},
            {"name": "m", "version": "1", "key": "scan.status"},
        ),
        ("POST", "/api/2.0/mlflow/model-versions/create", {"name": "m", "tags": [{"key": "scan.verdict"}]}, {}),
    ],
    ids=["set", "delete", "create-with-tag"],
)
def test_scan_tags_need_the_scanner_token(method: str, path: str, body: dict[str, Any], args: dict[str, str]) -> None:
    gate = gate_over({})
    assert gate.check(method, path, body, args, {}) is not None
    assert gate.check(method, path, body, args, {TOKEN_HEADER: "wrong"}) is not None
    assert gate.check(method, path, body, args, {TOKEN_HEADER.lower(): "tok"}) is None
    assert gate_over({}, token=None).check(method, path, body, args, {TOKEN_HEADER: "tok"}) is not None


def test_other_tags_and_requests_pass() -> None:
    gate = gate_over({})
    assert gate.check("POST", "/api/2.0/mlflow/model-versions/set-tag", {"key": "team"}, {}, {}) is None
    assert (
        gate.check("GET", "/api/2.0/mlflow/registered-models/alias", {}, {"name": "m", "alias": "champion"}, {}) is None
    )


def test_policy_edits_are_picked_up_and_a_broken_edit_keeps_the_last_good_one(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text((POLICIES / "default.yaml").read_text())
    source = PolicySource(str(policy_file))
    assert source.current().name == "default"
    time.sleep(0.01)
    policy_file.write_text((POLICIES / "audit.yaml").read_text())
    assert source.current().name == "audit"
    policy_file.write_text("version: 1\nrules: [not a rule]\n")
    assert source.current().name == "audit" and source.problem is not None


def test_no_valid_policy_refuses_every_promotion(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("this: is: not yaml")
    gate = Gate(PolicySource(str(broken)), token="tok", read_tags=lambda name, version: {})
    refusal = gate.check("POST", TRANSITION, {"name": "m", "version": "1", "stage": "Staging"}, {}, {})
    assert refusal is not None and "no valid policy" in refusal.message


# -- the plugin in a real MLflow server ----------------------------------------------------------------------------


def register_version(client: Any) -> tuple[str, str]:
    """A registered model version (its content does not matter to the gate: only its scan tags do)."""
    name = f"gate-model-{next(_names)}"
    client.create_registered_model(name)
    experiment = client.get_experiment_by_name("gate-tests") or client.get_experiment(
        client.create_experiment("gate-tests")
    )
    run = client.create_run(experiment.experiment_id)
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return name, str(version.version)


def refused(call: Any) -> str:
    from mlflow.exceptions import RestException

    with pytest.raises(RestException) as error:
        call()
    assert error.value.error_code == "PERMISSION_DENIED"
    return str(error.value.message)


@pytest.mark.server
def test_gate_in_a_real_mlflow_server(gated_server: Any) -> None:
    client = gated_server.client()
    scanner = RegistryClient(gated_server.url, token=gated_server.token)
    clean_name, clean_v = register_version(client)
    bad_name, bad_v = register_version(client)
    unscanned_name, unscanned_v = register_version(client)
    scanner.set_scan_tags(clean_name, clean_v, scan_tags_for(scanned(Verdict.CLEAN, 0.02)))
    scanner.set_scan_tags(bad_name, bad_v, scan_tags_for(scanned(Verdict.BACKDOORED, 0.98)))

    client.set_registered_model_alias(clean_name, "champion", clean_v)
    client.transition_model_version_stage(clean_name, clean_v, "Production")
    assert client.get_model_version_by_alias(clean_name, "champion").version == clean_v

    message = refused(lambda: client.set_registered_model_alias(bad_name, "champion", bad_v))
    assert f"{bad_name} version {bad_v}" in message and "backdoored" in message and "block-backdoored" in message
    refused(lambda: client.transition_model_version_stage(bad_name, bad_v, "Production"))
    assert client.get_model_version(bad_name, bad_v).current_stage == "None"
    client.transition_model_version_stage(bad_name, bad_v, "Staging")  # not protected by the default policy

    assert "never scanned" in refused(
        lambda: client.set_registered_model_alias(unscanned_name, "production", unscanned_v)
    )

    # Nobody but the scanner writes scan.* tags: not a clean verdict on the backdoored version, not a deletion.
    refused(lambda: client.set_model_version_tag(bad_name, bad_v, "scan.verdict", "clean"))
    refused(lambda: client.delete_model_version_tag(bad_name, bad_v, "scan.verdict"))
    assert client.get_model_version(bad_name, bad_v).tags["scan.verdict"] == "backdoored"
    client.set_model_version_tag(bad_name, bad_v, "team", "vision")  # other tags are the users'


@pytest.mark.server
def test_gate_rereads_the_policy_file(gated_server: Any) -> None:
    client = gated_server.client()
    scanner = RegistryClient(gated_server.url, token=gated_server.token)
    name, version = register_version(client)
    scanner.set_scan_tags(name, version, scan_tags_for(scanned(Verdict.BACKDOORED, 0.98)))
    original = gated_server.policy_file.read_text()
    try:
        gated_server.policy_file.write_text((POLICIES / "audit.yaml").read_text())
        client.set_registered_model_alias(name, "champion", version)  # audit: warn only
    finally:
        gated_server.policy_file.write_text(original)
    refused(lambda: client.set_registered_model_alias(name, "production", version))


@pytest.mark.server
@pytest.mark.slow
def test_gate_under_gunicorn(tmp_path: Path, repo_root: Path) -> None:
    """MLflow's other server: the factory then hands back the Flask app itself (no FastAPI wrapper)."""
    from mlflow import MlflowClient

    from scanner.registry.local_server import LocalMlflowServer, entry_point_dir

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text((POLICIES / "default.yaml").read_text())
    server = LocalMlflowServer(
        tmp_path / "server",
        gunicorn=True,
        pythonpath=[entry_point_dir(tmp_path / "ep"), repo_root],
        env={"MODEL_SCANNER_POLICY": str(policy_file), "MODEL_SCANNER_TOKEN": "tok"},
    )
    with server:
        assert "gunicorn" in server.log_file.read_text(errors="replace").lower()
        client = MlflowClient(server.url, registry_uri=server.url)
        name, version = register_version(client)
        assert "never scanned" in refused(lambda: client.set_registered_model_alias(name, "champion", version))
        refused(lambda: client.set_model_version_tag(name, version, "scan.verdict", "clean"))
        RegistryClient(server.url, token="tok").set_scan_tags(name, version, scan_tags_for(scanned(Verdict.CLEAN, 0.1)))
        client.set_registered_model_alias(name, "champion", version)
