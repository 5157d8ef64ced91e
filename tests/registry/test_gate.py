"""The gate: promotions the policy forbids and scan.* tag writes by anyone but the scanner are refused.

First the decision logic in-process (a fake tag reader stands in for MLflow's store), then the plugin inside a real
`mlflow server --app-name model-scanner-gate` on loopback, driven by MlflowClient like a user would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from scanner.findings import DetectorResult, ScanResult, Status, Verdict
from scanner.policy import PromotionTarget
from scanner.registry import tags as scan_tags
from scanner.registry.client import TOKEN_HEADER, RegistryClient
from scanner.registry.gate import (
    CREATE_VERSION,
    DELETE_VERSION_TAG,
    RENAME_MODEL,
    SET_ALIAS,
    SET_VERSION_TAG,
    TRANSITION_STAGE,
    Gate,
    PolicySource,
    RegistryRequest,
)
from scanner.registry.model_files import files_digest

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated, still gated

POLICIES = Path(__file__).resolve().parents[2] / "policies"
FILES = "f0" * 32  # the digest of the version's files, as scanned and (in FakeRegistry) as stored now
_names = itertools.count()


def scanned(verdict: Verdict, score: float) -> ScanResult:
    detectors = {
        "one_pixel": DetectorResult("one_pixel", Status.SCANNED, score=score),
        "ban": DetectorResult("ban", Status.SCANNED, score=score),
    }
    return ScanResult("models:/m/1", "ab" * 32, Status.SCANNED, verdict=verdict, score=score, detectors=detectors)


def scan_tags_for(result: ScanResult, files: str | None = FILES) -> dict[str, str]:
    tags = scan_tags.tags_for(result, policy="default@test", scanner_version="test", report_uri=None)
    return tags | ({scan_tags.FILES: files} if files else {})


class FakeRegistry:
    """Stands in for MLflow's stores: every version has `version_tags`; `held` are the model's stages and aliases."""

    def __init__(
        self,
        version_tags: Mapping[str, str] | None,
        files: str | None = FILES,
        held: Sequence[tuple[str, PromotionTarget]] = (),
    ) -> None:
        self.version_tags, self.files, self.held = version_tags, files, held

    def tags(self, name: str, version: str) -> Mapping[str, str] | None:
        return self.version_tags

    def promotions(self, name: str) -> Sequence[tuple[str, PromotionTarget]]:
        return self.held

    def files_digest(self, name: str, version: str) -> str | None:
        return self.files


def gate_over(
    version_tags: Mapping[str, str] | None, policy: str = "default.yaml", token: str | None = "tok", **registry: Any
) -> Gate:
    return Gate(PolicySource(str(POLICIES / policy)), token=token, registry=FakeRegistry(version_tags, **registry))


def stage(name: str, version: str, to: str) -> RegistryRequest:
    return RegistryRequest(TRANSITION_STAGE, {"name": name, "version": version, "stage": to})


def alias(name: str, version: str, to: str) -> RegistryRequest:
    return RegistryRequest(SET_ALIAS, {"name": name, "version": version, "alias": to})


# -- the decision logic ---------------------------------------------------------------------------------------------


def test_backdoored_version_is_refused_production_and_champion() -> None:
    gate = gate_over(scan_tags_for(scanned(Verdict.BACKDOORED, 0.97)))
    refusal = gate.check(stage("cnn", "3", "Production"), {})
    assert refusal is not None and refusal.status == 403
    assert "cnn version 3" in refusal.message and "verdict: backdoored" in refusal.message
    assert "block-backdoored" in refusal.message
    assert gate.check(alias("cnn", "3", "champion"), {}) is not None
    # Not protected by the default policy:
    assert gate.check(stage("cnn", "3", "Staging"), {}) is None
    assert gate.check(alias("cnn", "3", "candidate"), {}) is None


def test_clean_version_is_promoted() -> None:
    gate = gate_over(scan_tags_for(scanned(Verdict.CLEAN, 0.03)))
    assert gate.check(stage("cnn", "3", "production"), {}) is None
    assert gate.check(alias("cnn", "3", "champion"), {}) is None


@pytest.mark.parametrize(
    ("scanned_files", "files_now", "why"),
    [
        (FILES, "0e" * 32, "files changed since the scan"),
        (FILES, None, "files cannot be read"),
        (None, FILES, "recorded no digest of the version's files"),
    ],
    ids=["changed", "unreadable", "never-recorded"],
)
def test_a_clean_verdict_binds_only_the_files_it_was_made_on(
    scanned_files: str | None, files_now: str | None, why: str
) -> None:
    clean = scan_tags_for(scanned(Verdict.CLEAN, 0.03), files=scanned_files)
    refusal = gate_over(clean, files=files_now).check(alias("cnn", "3", "champion"), {})
    assert refusal is not None and why in refusal.message and "fail-closed" in refusal.message
    # Judged as never scanned: a policy that lets unscanned models through lets it through.
    assert gate_over(clean, policy="audit.yaml", files=files_now).check(alias("cnn", "3", "champion"), {}) is None


@pytest.mark.parametrize(
    "version_tags",
    [{}, {scan_tags.STATUS: scan_tags.PENDING}, {scan_tags.STATUS: "error", scan_tags.ERROR: "pickle_refused: no"}],
    ids=["unscanned", "pending", "errored"],
)
def test_unscanned_or_errored_version_is_refused_when_failing_closed(version_tags: dict[str, str]) -> None:
    refusal = gate_over(version_tags).check(alias("cnn", "1", "champion"), {})
    assert refusal is not None and "fail-closed" in refusal.message


def test_audit_policy_lets_everything_through() -> None:
    gate = gate_over(scan_tags_for(scanned(Verdict.BACKDOORED, 0.97)), policy="audit.yaml")
    assert gate.check(stage("cnn", "3", "Production"), {}) is None


@pytest.mark.parametrize(
    "request_",
    [
        RegistryRequest(SET_VERSION_TAG, {"name": "m", "version": "1", "key": "scan.verdict", "value": "clean"}),
        RegistryRequest(DELETE_VERSION_TAG, {"name": "m", "version": "1", "key": "scan.status"}),
        RegistryRequest(CREATE_VERSION, {"name": "m", "source": "s", "tags": [{"key": "scan.verdict"}]}),
        RegistryRequest(SET_VERSION_TAG, {"name": "m", "version": "1", "key": "model_scanner.value_range"}),
        RegistryRequest(DELETE_VERSION_TAG, {"name": "m", "version": "1", "key": "model_scanner.layout"}),
        RegistryRequest(CREATE_VERSION, {"name": "m", "source": "s", "tags": [{"key": "model_scanner.layout"}]}),
        RegistryRequest(SET_VERSION_TAG, {"name": "m", "version": "1", "key": "model_scanner.mean", "value": "0,0,0"}),
        RegistryRequest(SET_VERSION_TAG, {"name": "m", "version": "1", "key": "model_scanner.std", "value": "9,9,9"}),
        RegistryRequest(DELETE_VERSION_TAG, {"name": "m", "version": "1", "key": "model_scanner.std"}),
        RegistryRequest(CREATE_VERSION, {"name": "m", "source": "s", "tags": [{"key": "model_scanner.mean"}]}),
    ],
    ids=[
        "set",
        "delete",
        "create-with-tag",
        "set-hint",
        "delete-hint",
        "create-with-hint",
        "set-mean-hint",
        "set-std-hint",
        "delete-std-hint",
        "create-with-mean-hint",
    ],
)
def test_scan_tags_and_input_hints_need_the_scanner_token(request_: RegistryRequest) -> None:
    gate = gate_over({})
    assert gate.check(request_, {}) is not None
    assert gate.check(request_, {TOKEN_HEADER: "wrong"}) is not None
    assert gate.check(request_, {TOKEN_HEADER.lower(): "tok"}) is None
    assert gate_over({}, token=None).check(request_, {TOKEN_HEADER: "tok"}) is not None


def test_other_tags_and_requests_pass() -> None:
    gate = gate_over({})
    assert gate.check(RegistryRequest(SET_VERSION_TAG, {"name": "m", "version": "1", "key": "team"}), {}) is None
    assert gate.check(RegistryRequest("DeleteRegisteredModelAlias", {"name": "m", "alias": "champion"}), {}) is None


@pytest.mark.parametrize(
    "request_",
    [
        RegistryRequest(TRANSITION_STAGE, {"name": "m", "version": "1"}),
        RegistryRequest(SET_ALIAS, {"name": "m", "alias": "champion"}),
        RegistryRequest(SET_VERSION_TAG, {"name": "m", "version": "1"}),
        RegistryRequest(RENAME_MODEL, {"name": "m"}),
    ],
    ids=["stage", "alias", "tag", "rename"],
)
def test_a_request_the_gate_cannot_resolve_is_refused(request_: RegistryRequest) -> None:
    refusal = gate_over(scan_tags_for(scanned(Verdict.CLEAN, 0.03))).check(request_, {})
    assert refusal is not None and refusal.status == 400 and "does not name its" in refusal.message


def test_a_rename_is_judged_as_promoting_everything_the_model_holds_under_the_new_name(tmp_path: Path) -> None:
    policy_file = tmp_path / "prod-only.yaml"
    policy_file.write_text(PROD_ONLY_POLICY, encoding="utf-8")
    backdoored = scan_tags_for(scanned(Verdict.BACKDOORED, 0.97))
    held = [("3", PromotionTarget("lab-cnn", alias="champion"))]
    gate = Gate(PolicySource(str(policy_file)), token="tok", registry=FakeRegistry(backdoored, held=held))
    assert gate.check(alias("lab-cnn", "3", "champion"), {}) is None  # the lab's champion is not protected
    refusal = gate.check(RegistryRequest(RENAME_MODEL, {"name": "lab-cnn", "new_name": "prod-cnn"}), {})
    assert refusal is not None and "renaming lab-cnn to prod-cnn refused" in refusal.message
    assert "alias champion" in refusal.message and "backdoored" in refusal.message
    assert gate.check(RegistryRequest(RENAME_MODEL, {"name": "lab-cnn", "new_name": "lab-cnn-2"}), {}) is None


PROD_ONLY_POLICY = """\
version: 1
name: prod-only
rules:
  - id: block-backdoored
    match: {models: ["prod-*"], aliases: [champion]}
    when: {verdict: [backdoored]}
    action: block
"""


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
    gate = Gate(PolicySource(str(broken)), token="tok", registry=FakeRegistry({}))
    refusal = gate.check(stage("m", "1", "Staging"), {})
    assert refusal is not None and "no valid policy" in refusal.message


# -- the plugin in a real MLflow server ----------------------------------------------------------------------------


def register_version(client: Any, tmp_path: Path) -> tuple[str, str, str]:
    """A registered model version with one model file (its content does not matter to the gate: only its scan tags
    and that its files are those scanned); returns its name, version and the digest of its files."""
    name = f"gate-model-{next(_names)}"
    client.create_registered_model(name)
    experiment = client.get_experiment_by_name("gate-tests") or client.get_experiment(
        client.create_experiment("gate-tests")
    )
    run = client.create_run(experiment.experiment_id)
    model_dir = tmp_path / name
    model_dir.mkdir(parents=True)
    (model_dir / "model.onnx").write_bytes(name.encode())
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return name, str(version.version), files_digest(model_dir)


def refused(call: Any) -> str:
    from mlflow.exceptions import RestException

    with pytest.raises(RestException) as error:
        call()
    assert error.value.error_code == "PERMISSION_DENIED"
    return str(error.value.message)


@pytest.mark.server
def test_gate_in_a_real_mlflow_server(gated_server: Any, tmp_path: Path) -> None:
    client = gated_server.client()
    scanner = RegistryClient(gated_server.url, token=gated_server.token)
    clean_name, clean_v, clean_files = register_version(client, tmp_path)
    bad_name, bad_v, bad_files = register_version(client, tmp_path)
    unscanned_name, unscanned_v, _ = register_version(client, tmp_path)
    scanner.set_scan_tags(clean_name, clean_v, scan_tags_for(scanned(Verdict.CLEAN, 0.02), clean_files))
    scanner.set_scan_tags(bad_name, bad_v, scan_tags_for(scanned(Verdict.BACKDOORED, 0.98), bad_files))

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
def test_gate_rereads_the_policy_file(gated_server: Any, tmp_path: Path) -> None:
    client = gated_server.client()
    scanner = RegistryClient(gated_server.url, token=gated_server.token)
    name, version, files = register_version(client, tmp_path)
    scanner.set_scan_tags(name, version, scan_tags_for(scanned(Verdict.BACKDOORED, 0.98), files))
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
        name, version, files = register_version(client, tmp_path)
        assert "never scanned" in refused(lambda: client.set_registered_model_alias(name, "champion", version))
        refused(lambda: client.set_model_version_tag(name, version, "scan.verdict", "clean"))
        clean = scan_tags_for(scanned(Verdict.CLEAN, 0.1), files)
        RegistryClient(server.url, token="tok").set_scan_tags(name, version, clean)
        client.set_registered_model_alias(name, "champion", version)
