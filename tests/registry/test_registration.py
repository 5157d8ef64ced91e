"""The whole loop on real models: register a clean and a backdoored zoo model in a real MLflow server, let
`model-scanner serve` scan them from the webhook, and watch the gate promote one and refuse the other."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner.registry import tags as scan_tags

pytestmark = [pytest.mark.server, pytest.mark.filterwarnings("ignore::FutureWarning")]

TAGS_WITHIN_S = 60


def test_registered_models_are_scanned_and_gated(
    gated_server: Any,
    serve: Callable[..., Any],
    register_model: Callable[..., str],
    wait_for_condition: Callable[..., Any],
    zoo_pair: tuple[Path, Path],
    zoo_pair_clean_data: Path,
    tmp_path: Path,
) -> None:
    import mlflow
    from mlflow.exceptions import RestException

    client = gated_server.client()
    serve("--detectors", "one-pixel", "--reconcile-interval", "30")
    models = {}
    # Each logged with the clean sample the pair was chosen with (clean_sample.npz at the run's root), as the demo
    # does: this test is about the loop around the detector.
    sample = tmp_path / "clean_sample.npz"
    sample.write_bytes(zoo_pair_clean_data.read_bytes())
    for kind, onnx_path in zip(("clean", "backdoored"), zoo_pair, strict=True):
        name = f"digits-{kind}"
        registered = register_model(gated_server.url, onnx_path, name, clean_sample=sample)
        models[kind] = (name, registered, time.monotonic())

    found = {}
    for kind, (name, version, registered_at) in models.items():
        found[kind] = wait_for_condition(
            lambda n=name, v=version: (t := client.get_model_version(n, v).tags).get(scan_tags.STATUS) and t,
            timeout_s=TAGS_WITHIN_S + 30,
            what=f"scan tags on {name}",
        )
        assert time.monotonic() - registered_at < TAGS_WITHIN_S, f"{name}: tags took over {TAGS_WITHIN_S} s"
    for kind, expected in (("clean", "clean"), ("backdoored", "backdoored")):
        tags = found[kind]
        assert tags[scan_tags.STATUS] == "scanned", tags.get(scan_tags.ERROR)
        assert tags[scan_tags.VERDICT] == expected, tags
        assert set(tags) >= {scan_tags.SCORE, scan_tags.DECISION, scan_tags.POLICY, scan_tags.SCANNER_VERSION,
                             scan_tags.SHA256, scan_tags.SCANNED_AT, scan_tags.FILES, scan_tags.INPUTS}  # fmt: skip
        assert tags[scan_tags.INPUTS] == "{}" and len(tags[scan_tags.FILES]) == 64
    assert float(found["backdoored"][scan_tags.SCORE]) > float(found["clean"][scan_tags.SCORE])

    clean_name, clean_version, _ = models["clean"]
    client.set_registered_model_alias(clean_name, "champion", clean_version)
    client.transition_model_version_stage(clean_name, clean_version, "Production")

    bad_name, bad_version, _ = models["backdoored"]
    for promote in (
        lambda: client.set_registered_model_alias(bad_name, "champion", bad_version),
        lambda: client.transition_model_version_stage(bad_name, bad_version, "Production"),
    ):
        with pytest.raises(RestException) as refused:
            promote()
        assert refused.value.error_code == "PERMISSION_DENIED"
        assert f"{bad_name} version {bad_version}" in refused.value.message
        assert "backdoored" in refused.value.message
    with pytest.raises(RestException) as refused:
        client.set_model_version_tag(bad_name, bad_version, scan_tags.VERDICT, "clean")
    assert refused.value.error_code == "PERMISSION_DENIED"

    # The report (and the heatmap) are on the version's source run, where scan.report points.
    run_id = client.get_model_version(bad_name, bad_version).run_id
    report_dir = found["backdoored"][scan_tags.REPORT].split("/artifacts/", 1)[1]
    files = {Path(a.path).name for a in client.list_artifacts(run_id, report_dir)}
    assert "scan-report.json" in files and any(f.endswith(".png") for f in files), files
    report_path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"{report_dir}/scan-report.json", dst_path=str(tmp_path / "dl")
    )
    report = json.loads(Path(report_path).read_text())
    assert report["schema"] == "model-scanner/report/v1"
    assert report["results"][0]["verdict"] == "backdoored"

    # A new version nobody has scanned yet (its tags not written) may not be promoted: fail closed.
    run = client.create_run(client.get_experiment_by_name("registry-tests").experiment_id)
    unscanned = client.create_model_version(clean_name, source=f"runs:/{run.info.run_id}/none", run_id=run.info.run_id)
    with pytest.raises(RestException) as refused:
        client.set_registered_model_alias(clean_name, "production", unscanned.version)
    assert refused.value.error_code == "PERMISSION_DENIED"
