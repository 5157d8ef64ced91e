"""The gate against a hostile registry user, in a real `mlflow server --app-name model-scanner-gate` on loopback.

Every mutating registry endpoint the gate judges, under both API prefixes, in every body encoding MLflow decodes,
is sent raw over HTTP: none may promote an unscanned or backdoored version or write the scanner's tags. Then the
verdict's binding to the bytes (a model file replaced through the artifact proxy after a clean scan), and renames
onto a waived or protected name.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scanner.findings import DetectorResult, ScanResult, Status, Verdict
from scanner.registry import tags as scan_tags
from scanner.registry.client import RegistryClient
from scanner.registry.model_files import files_digest

pytestmark = [pytest.mark.server, pytest.mark.filterwarnings("ignore::FutureWarning")]

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
_names = itertools.count()


def scan_tags_for(verdict: Verdict, sha256: str, files: str) -> dict[str, str]:
    score = 0.98 if verdict is Verdict.BACKDOORED else 0.02
    detectors = {name: DetectorResult(name, Status.SCANNED, score=score) for name in ("one_pixel", "ban")}
    result = ScanResult("models:/m/1", sha256, Status.SCANNED, verdict=verdict, score=score, detectors=detectors)
    tags = scan_tags.tags_for(result, policy="default@test", scanner_version="test", report_uri=None)
    return tags | {scan_tags.FILES: files}


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    run_id: str
    model_dir: Path  # the files logged as the version's artifacts (under "model" in its run)


def register_with_files(client: Any, tmp_path: Path, prefix: str, content: bytes = b"onnx bytes") -> Version:
    """A registered version whose artifacts (an MLmodel and a model file) went through the artifact proxy."""
    name = f"{prefix}-{next(_names)}"
    model_dir = tmp_path / name / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n", encoding="utf-8")
    (model_dir / "model.onnx").write_bytes(content)
    client.create_registered_model(name)
    experiment = client.get_experiment_by_name("gate-bypasses") or client.get_experiment(
        client.create_experiment("gate-bypasses")
    )
    run = client.create_run(experiment.experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return Version(name, str(version.version), run.info.run_id, model_dir)


def scanned_as(server: Any, version: Version, verdict: Verdict) -> None:
    tags = scan_tags_for(verdict, "ab" * 32, files_digest(version.model_dir))
    RegistryClient(server.url, token=server.token).set_scan_tags(version.name, version.version, tags)


def send(url: str, method: str, path: str, body: bytes | None, content_type: str | None) -> int:
    request = urllib.request.Request(url + path, data=body, method=method)
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# Every way MLflow's `_get_request_message` turns a body into the request it acts on (for POST it requires an
# application/json content type; for DELETE and PATCH it reads any body as JSON, or none).
def as_json(fields: dict[str, Any]) -> tuple[bytes, str | None]:
    return json.dumps(fields).encode(), "application/json"


def as_json_string(fields: dict[str, Any]) -> tuple[bytes, str | None]:
    """The issue's bypass: a JSON string holding the request object, which MLflow decodes a second time."""
    return json.dumps(json.dumps(fields)).encode(), "application/json"


def as_utf16_with_charset(fields: dict[str, Any]) -> tuple[bytes, str | None]:
    return json.dumps(fields).encode("utf-16"), "application/json; charset=utf-16"


def as_camel_case_json_string(fields: dict[str, Any]) -> tuple[bytes, str | None]:
    camel = {"".join(w.capitalize() if i else w for i, w in enumerate(k.split("_"))): v for k, v in fields.items()}
    return json.dumps(json.dumps(camel)).encode(), "application/json"


def as_text_plain(fields: dict[str, Any]) -> tuple[bytes, str | None]:
    return json.dumps(fields).encode(), "text/plain"


def without_content_type(fields: dict[str, Any]) -> tuple[bytes, str | None]:
    return json.dumps(json.dumps(fields)).encode(), None


ENCODINGS: list[Callable[[dict[str, Any]], tuple[bytes, str | None]]] = [
    as_json,
    as_json_string,
    as_utf16_with_charset,
    as_camel_case_json_string,
    as_text_plain,
    without_content_type,
]


@dataclass(frozen=True)
class Attack:
    """One hostile request and how to tell that it did not take effect."""

    id: str
    method: str
    endpoint: str
    fields: Callable[[dict[str, Version]], dict[str, Any]]
    held: Callable[[Any, dict[str, Version]], bool]  # True while the registry is as the attack would not have it


def _tag(client: Any, v: Version, key: str) -> str | None:
    return dict(client.get_model_version(v.name, v.version).tags).get(key)


def _aliases(client: Any, v: Version) -> dict[str, str]:
    return dict(client.get_registered_model(v.name).aliases)


ATTACKS = [
    Attack(
        "stage-backdoored",
        "POST",
        "/model-versions/transition-stage",
        lambda vs: {"name": vs["bad"].name, "version": vs["bad"].version, "stage": "Production"},
        lambda c, vs: c.get_model_version(vs["bad"].name, vs["bad"].version).current_stage != "Production",
    ),
    Attack(
        "stage-unscanned",
        "POST",
        "/model-versions/transition-stage",
        lambda vs: {"name": vs["unscanned"].name, "version": vs["unscanned"].version, "stage": "production"},
        lambda c, vs: c.get_model_version(vs["unscanned"].name, vs["unscanned"].version).current_stage == "None",
    ),
    Attack(
        "alias-backdoored",
        "POST",
        "/registered-models/alias",
        lambda vs: {"name": vs["bad"].name, "version": vs["bad"].version, "alias": "champion"},
        lambda c, vs: "champion" not in _aliases(c, vs["bad"]),
    ),
    Attack(
        "alias-unscanned",
        "POST",
        "/registered-models/alias",
        lambda vs: {"name": vs["unscanned"].name, "version": vs["unscanned"].version, "alias": "production"},
        lambda c, vs: "production" not in _aliases(c, vs["unscanned"]),
    ),
    Attack(
        "set-scan-tag",
        "POST",
        "/model-versions/set-tag",
        lambda vs: {"name": vs["bad"].name, "version": vs["bad"].version, "key": "scan.verdict", "value": "clean"},
        lambda c, vs: _tag(c, vs["bad"], "scan.verdict") == "backdoored",
    ),
    Attack(
        "set-hint-tag",
        "POST",
        "/model-versions/set-tag",
        lambda vs: {
            "name": vs["bad"].name,
            "version": vs["bad"].version,
            "key": "model_scanner.value_range",
            "value": "0,0.001",
        },
        lambda c, vs: _tag(c, vs["bad"], "model_scanner.value_range") is None,
    ),
    Attack(
        "delete-scan-tag",
        "DELETE",
        "/model-versions/delete-tag",
        lambda vs: {"name": vs["bad"].name, "version": vs["bad"].version, "key": "scan.verdict"},
        lambda c, vs: _tag(c, vs["bad"], "scan.verdict") == "backdoored",
    ),
    Attack(
        "create-with-scan-tags",
        "POST",
        "/model-versions/create",
        lambda vs: {
            "name": vs["target"].name,
            "source": f"runs:/{vs['target'].run_id}/model",
            "run_id": vs["target"].run_id,
            "tags": [{"key": "scan.status", "value": "scanned"}, {"key": "scan.verdict", "value": "clean"}],
        },
        lambda c, vs: all(
            "scan.status" not in dict(found.tags) for found in c.search_model_versions(f"name = '{vs['target'].name}'")
        ),
    ),
    Attack(
        "create-with-hint-tag",
        "POST",
        "/model-versions/create",
        lambda vs: {
            "name": vs["target"].name,
            "source": f"runs:/{vs['target'].run_id}/model",
            "run_id": vs["target"].run_id,
            "tags": [{"key": "model_scanner.layout", "value": "NHWC"}],
        },
        lambda c, vs: all(
            "model_scanner.layout" not in dict(found.tags)
            for found in c.search_model_versions(f"name = '{vs['target'].name}'")
        ),
    ),
]


@pytest.fixture(scope="module")
def victims(gated_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Version]:
    client = gated_server.client()
    folder = tmp_path_factory.mktemp("victims")
    bad = register_with_files(client, folder, "bypass-bad")
    scanned_as(gated_server, bad, Verdict.BACKDOORED)
    return {
        "bad": bad,
        "unscanned": register_with_files(client, folder, "bypass-unscanned"),
        "target": register_with_files(client, folder, "bypass-target"),
    }


@pytest.mark.parametrize("encode", ENCODINGS, ids=[e.__name__ for e in ENCODINGS])
@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_no_encoding_of_a_registry_request_gets_past_the_gate(
    gated_server: Any,
    victims: dict[str, Version],
    attack: Attack,
    prefix: str,
    encode: Callable[[dict[str, Any]], tuple[bytes, str | None]],
) -> None:
    client = gated_server.client()
    body, content_type = encode(attack.fields(victims))
    status = send(gated_server.url, attack.method, prefix + attack.endpoint, body, content_type)
    assert attack.held(client, victims), f"{attack.id} took effect (HTTP {status})"
    assert status >= 400


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_scanner_and_users_still_get_through_in_those_encodings(
    gated_server: Any, tmp_path: Path, prefix: str
) -> None:
    """The gate refuses by what a request means, not by its shape: a double-encoded clean promotion is fine."""
    client = gated_server.client()
    clean = register_with_files(client, tmp_path, "bypass-clean")
    scanned_as(gated_server, clean, Verdict.CLEAN)
    fields = {"name": clean.name, "version": clean.version, "alias": "champion"}
    assert send(gated_server.url, "POST", f"{prefix}/registered-models/alias", *as_json_string(fields)) == 200
    assert client.get_model_version_by_alias(clean.name, "champion").version == clean.version
    tag = {"name": clean.name, "version": clean.version, "key": "team", "value": "vision"}
    assert send(gated_server.url, "POST", f"{prefix}/model-versions/set-tag", *as_json_string(tag)) == 200


def test_a_model_file_replaced_after_a_clean_scan_is_not_promoted(gated_server: Any, tmp_path: Path) -> None:
    from mlflow.exceptions import RestException

    client = gated_server.client()
    version = register_with_files(client, tmp_path, "replaced")
    scanned_as(gated_server, version, Verdict.CLEAN)
    client.set_registered_model_alias(version.name, "candidate", version.version)
    client.set_registered_model_alias(version.name, "champion", version.version)  # the bytes that were scanned

    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / "model.onnx").write_bytes(b"other onnx bytes, with a backdoor")
    client.log_artifacts(version.run_id, str(swapped), "model")  # through the artifact proxy, over model.onnx
    with pytest.raises(RestException) as refused:
        client.set_registered_model_alias(version.name, "production", version.version)
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "files changed since the scan" in refused.value.message
    with pytest.raises(RestException):
        client.transition_model_version_stage(version.name, version.version, "Production")
    assert client.get_model_version(version.name, version.version).current_stage == "None"

    # The original bytes back: the verdict speaks for them again.
    client.log_artifacts(version.run_id, str(version.model_dir), "model")
    client.transition_model_version_stage(version.name, version.version, "Production")


WAIVED_POLICY = """\
version: 1
name: waived
rules:
  - id: block-backdoored
    match: {aliases: [champion]}
    when: {verdict: [backdoored]}
    action: block
  - id: block-backdoored-prod
    match: {models: ["prod-*"], aliases: [candidate]}
    when: {verdict: [backdoored]}
    action: block
waivers:
  - models: ["%s"]%s
    reason: the reviewed legacy model
    approved_by: security
    expires: 2099-12-31
"""


def test_renames_are_judged_again(gated_server: Any, tmp_path: Path) -> None:
    """A backdoored model renamed onto a waived name is not promoted; a rename that would carry a backdoored
    version's alias to a name where that alias is protected is refused."""
    from mlflow.exceptions import RestException

    client = gated_server.client()
    waived_name = f"legacy-{next(_names)}"
    reviewed = "cd" * 32
    original = gated_server.policy_file.read_text()
    evil = register_with_files(client, tmp_path, "evil")
    scanned_as(gated_server, evil, Verdict.BACKDOORED)  # sha256 "ab"*32, not the reviewed file
    try:
        # The attack: a waiver by name alone (the gate keeps its last good policy: it no longer loads).
        for waiver_digest in ("", f'\n    sha256: "{reviewed}"'):
            gated_server.policy_file.write_text(WAIVED_POLICY % (waived_name, waiver_digest))
            if not waiver_digest:
                client.rename_registered_model(evil.name, waived_name)
            with pytest.raises(RestException) as refused:
                client.set_registered_model_alias(waived_name, "champion", evil.version)
            assert refused.value.error_code == "PERMISSION_DENIED" and "backdoored" in refused.value.message

        lab = register_with_files(client, tmp_path, "lab")
        scanned_as(gated_server, lab, Verdict.BACKDOORED)
        client.set_registered_model_alias(lab.name, "candidate", lab.version)  # not protected outside prod-*
        with pytest.raises(RestException) as refused:
            client.rename_registered_model(lab.name, f"prod-{lab.name}")
        assert refused.value.error_code == "PERMISSION_DENIED"
        assert f"renaming {lab.name} to prod-{lab.name} refused" in refused.value.message
        assert client.get_registered_model(lab.name).aliases == {"candidate": lab.version}
    finally:
        gated_server.policy_file.write_text(original)


def test_a_copy_is_judged_on_its_own(gated_server: Any, tmp_path: Path) -> None:
    """A copy may not carry the original's verdict (MlflowClient.copy_model_version copies every tag: refused); a
    copy without scan tags is a new, unscanned version: not promoted until it is scanned."""
    from mlflow.exceptions import MlflowException, RestException

    client = gated_server.client()
    clean = register_with_files(client, tmp_path, "copied")
    scanned_as(gated_server, clean, Verdict.CLEAN)
    copy_name = f"copy-of-{clean.name}"
    with pytest.raises(MlflowException) as refused_copy:
        client.copy_model_version(f"models:/{clean.name}/{clean.version}", copy_name)
    assert "only model-scanner may set scan." in str(refused_copy.value)
    copy = client.create_model_version(copy_name, source=f"models:/{clean.name}/{clean.version}")
    with pytest.raises(RestException) as refused:
        client.set_registered_model_alias(copy_name, "champion", copy.version)
    assert refused.value.error_code == "PERMISSION_DENIED" and "never scanned" in refused.value.message
