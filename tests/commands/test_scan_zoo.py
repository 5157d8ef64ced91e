"""`python -m scanner scan` end to end on really trained zoo models, with the real detectors and shipped policies.

One command scans a directory of test-zoo models into one report (a policy's `inputs` give each family its clean
data); then single scans check the exit codes on a clean model the detector judges clean (0), a backdoored
model it judges backdoored (1, and 0 with a warning under the audit policy). How often the detectors are right is
the detectors' benchmark, not this test's: here a model is only picked among those judged correctly. To bound the
time, these use the one-pixel detector (seconds per model); one more scan runs every registered detector on one model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from scanner.reports.json_report import report_schema
from scanner.zoo.manifest import read_manifest


def report_of(text: str) -> dict:
    document = json.loads(text)
    jsonschema.Draft202012Validator(report_schema()).validate(document)
    return document


@pytest.fixture(scope="module")
def zoo_scan(zoo, repo_root, tmp_path_factory):
    """The whole test zoo through one `scan` command: (manifest entries by file name, results by file name)."""
    import subprocess
    import sys

    # Every digits16 model and the first shapes32 one (32x32 RGB costs 4x the forward passes): both families, one
    # directory, one report, in seconds.
    manifest = read_manifest(zoo)
    first_shapes = next(entry for entry in manifest if entry.family == "shapes32")
    entries = {entry.file: entry for entry in manifest if entry.family == "digits16" or entry == first_shapes}
    folder = tmp_path_factory.mktemp("models")
    for file in entries:
        shutil.copyfile(zoo / file, folder / file)
    families = sorted({entry.family for entry in entries.values()})
    policy = tmp_path_factory.mktemp("policy") / "zoo.yaml"
    inputs = "".join(f'  - models: ["{f}-*"]\n    clean_data: {zoo / f"clean_{f}.npz"}\n' for f in families)
    policy.write_text((repo_root / "policies" / "default.yaml").read_text() + "\ninputs:\n" + inputs)
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", str(folder), "--policy", str(policy), "--detectors", "one-pixel"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = report_of(done.stdout)
    results = {Path(result["target"]).name: result for result in report["results"]}
    return done, entries, results


@pytest.mark.slow
def test_one_command_scans_a_zoo_directory_into_one_report(zoo_scan):
    done, entries, results = zoo_scan
    assert set(results) == set(entries)
    assert all(result["status"] == "scanned" for result in results.values()), done.stderr
    assert "Traceback" not in done.stderr
    for result in results.values():
        suspicious = result["score"] >= 0.3  # the default policy's warn band under a clean verdict
        expected = "block" if result["verdict"] == "backdoored" else "warn" if suspicious else "allow"
        assert result["decision"]["action"] == expected
        assert list(result["detectors"]) == ["one_pixel"] and result["detectors"]["one_pixel"]["status"] == "scanned"
    blocked = any(result["decision"]["action"] == "block" for result in results.values())
    assert done.returncode == (1 if blocked else 0)


@pytest.mark.slow
def test_exit_codes_on_zoo_models_under_the_default_and_audit_policies(zoo, zoo_scan, cli_process):
    _, entries, results = zoo_scan
    clean = next(f for f, e in entries.items() if not e.backdoored and results[f]["verdict"] == "clean")
    backdoored = next(f for f, e in entries.items() if e.backdoored and results[f]["verdict"] == "backdoored")

    def scan(file: str, *extra: str):
        clean_data = str(entries[file].clean_data_path(zoo))
        run = cli_process("scan", str(zoo / file), "--clean-data", clean_data, "--detectors", "one-pixel", *extra)
        (result,) = report_of(run.stdout)["results"]
        return run, result

    allowed, result = scan(clean)
    assert allowed.code == 0 and result["decision"]["action"] == "allow", allowed.stderr

    blocked, result = scan(backdoored)
    assert blocked.code == 1 and result["decision"]["rule"] == "block-backdoored", blocked.stderr
    assert "model-scanner: block:" in blocked.stderr and "Traceback" not in blocked.stderr

    audited, result = scan(backdoored, "--policy", "audit")
    assert audited.code == 0 and result["decision"]["action"] == "warn"
    assert "model-scanner: warn:" in audited.stderr


@pytest.mark.slow
def test_every_registered_detector_runs_on_a_zoo_model(zoo, cli_process):
    from scanner.detectors import DETECTORS

    entry = next(entry for entry in read_manifest(zoo) if entry.backdoored and entry.family == "digits16")
    run = cli_process("scan", str(entry.path(zoo)), "--clean-data", str(entry.clean_data_path(zoo)))
    (result,) = report_of(run.stdout)["results"]
    assert set(result["detectors"]) == {name.replace("-", "_") for name in DETECTORS}
    for name, detector in result["detectors"].items():  # a detector not installed here is reported, not hidden
        assert detector["status"] == "scanned" or "detector not available" in detector["reason"], (name, result)
    assert result["status"] == "scanned" and "Traceback" not in run.stderr
    assert run.code == {"allow": 0, "warn": 0, "block": 1}[result["decision"]["action"]]


def small_zoo(zoo: Path, folder: Path, *, manifest: bool = True, clean_data_at: str | None = None) -> Path:
    """One model of the test zoo with its clean data in `folder`, listed in a manifest of its own (or not)."""
    from scanner.zoo.manifest import write_manifest

    entry = next(entry for entry in read_manifest(zoo) if entry.clean_data)
    folder.mkdir(parents=True)
    shutil.copy2(entry.path(zoo), folder / entry.file)
    shutil.copy2(entry.clean_data_path(zoo), folder / entry.clean_data)
    if manifest:
        import dataclasses

        write_manifest(folder, [dataclasses.replace(entry, clean_data=clean_data_at or entry.clean_data)])
    return folder / entry.file


def test_a_folder_scan_uses_the_clean_data_its_zoo_manifest_lists_and_says_so(cli, zoo, tmp_path):
    model = small_zoo(zoo, tmp_path / "zoo")
    run = cli("scan", str(tmp_path / "zoo"), "--detectors", "one-pixel", "--format", "json")
    (result,) = report_of(run.stdout)["results"]
    assert result["target"] == str(model)
    assert result["clean_data"].endswith(".npz") and Path(result["clean_data"]).parent == (tmp_path / "zoo").resolve()
    assert result["status"] == "scanned"


@pytest.mark.parametrize("case", ["no-manifest", "outside"])
def test_clean_data_is_not_taken_from_a_file_name_or_from_outside_the_folder(cli, zoo, tmp_path, case):
    outside = tmp_path / "elsewhere.npz"
    if case == "outside":
        shutil.copy2(next(zoo.glob("clean_*.npz")), outside)
    small_zoo(zoo, tmp_path / "zoo", manifest=case != "no-manifest", clean_data_at="../elsewhere.npz")
    run = cli("scan", str(tmp_path / "zoo"), "--detectors", "one-pixel", "--format", "json")
    (result,) = report_of(run.stdout)["results"]
    assert "clean_data" not in result and result["status"] == "scanned"
