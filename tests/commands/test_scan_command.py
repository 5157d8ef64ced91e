"""`model-scanner scan` with the real intake, policy and reports. The detectors here are a fake that reads the
verdict from the model's file name (their neighbour in this test); test_scan_zoo.py runs the real ones on the zoo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import scanner.detectors as detectors_registry
from scanner.commands import scan as scan_command
from scanner.detectors import DETECTORS
from scanner.detectors.interface import DetectionContext, Detector
from scanner.findings import DetectorResult, ModelArtifact, Status
from scanner.reports.json_report import report_schema
from tests.intake.builders import endless_cnn, save, tiny_cnn
from tests.intake.hostile import HOSTILE, HOSTILE_NEIGHBOURS, NOT_IMAGE_MODELS, PICKLE_MARKER


class ByName(Detector):
    """Scores 0.9 for a model whose file name says 'trojan', else 0.1."""

    name = "one_pixel"
    version = "test"

    def detect(self, model: ModelArtifact, context: DetectionContext) -> DetectorResult:
        context.progress(1, 1)
        score = 0.9 if "trojan" in Path(model.path).name else 0.1
        return DetectorResult(self.name, Status.SCANNED, score=score, target_class=3, forward_passes=1)


@pytest.fixture
def fake_detectors(monkeypatch):
    fake = {"one-pixel": ByName}
    monkeypatch.setattr(scan_command, "DETECTORS", fake)  # what --detectors is checked against
    monkeypatch.setattr(detectors_registry, "DETECTORS", fake)  # what load_detectors builds from


@pytest.fixture
def models(tmp_path) -> Path:
    folder = tmp_path / "models"
    save(tiny_cnn(seed=1), folder / "good.onnx")
    save(tiny_cnn(seed=2), folder / "nested" / "trojan.onnx")
    return folder


def report_of(text: str) -> dict:
    document = json.loads(text)
    jsonschema.Draft202012Validator(report_schema()).validate(document)
    return document


def test_clean_model_exits_0(cli, fake_detectors, models):
    run = cli("scan", str(models / "good.onnx"))
    assert run.code == 0, run.stderr
    (result,) = report_of(run.stdout)["results"]
    assert result["status"] == "scanned" and result["verdict"] == "clean" and result["decision"]["action"] == "allow"


def test_backdoored_model_exits_1_and_says_why_on_stderr(cli, fake_detectors, models):
    run = cli("scan", str(models))
    assert run.code == 1
    results = {Path(r["target"]).name: r for r in report_of(run.stdout)["results"]}
    assert (
        results["trojan.onnx"]["decision"]["action"] == "block"
        and results["good.onnx"]["decision"]["action"] == "allow"
    )
    assert f"model-scanner: block: {models / 'nested' / 'trojan.onnx'}: rule block-backdoored" in run.stderr


def test_audit_policy_warns_and_exits_0(cli, fake_detectors, models):
    run = cli("scan", str(models), "--policy", "audit")
    assert run.code == 0
    assert "model-scanner: warn:" in run.stderr and "rule warn-backdoored" in run.stderr
    assert report_of(run.stdout)["policy"].startswith("audit@")
    quiet = cli("scan", str(models), "--policy", "audit", "-q")
    assert quiet.code == 0 and quiet.stderr == ""


def test_policy_file_and_environment_choose_the_policy(cli, fake_detectors, models, repo_root, monkeypatch):
    assert cli("scan", str(models), "--policy", str(repo_root / "policies" / "audit.yaml")).code == 0
    monkeypatch.setenv("MODEL_SCANNER_POLICY", str(repo_root / "policies" / "audit.yaml"))
    assert cli("scan", str(models)).code == 0
    assert cli("scan", str(models), "--policy", "default").code == 1


def test_sarif_and_markdown_go_to_output_and_summary(cli, fake_detectors, models, tmp_path, repo_root):
    sarif_path, summary = tmp_path / "scan.sarif", tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    run = cli("scan", str(models), "--format", "sarif", "--output", str(sarif_path), "--summary", str(summary))
    assert run.code == 1 and run.stdout == ""
    sarif = json.loads(sarif_path.read_text())
    schema = json.loads((repo_root / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["MS001"]
    text = summary.read_text()
    assert text.startswith("# earlier step\n## model-scanner: 2 targets, 1 blocked")


def test_bad_usage_exits_2_with_one_line(cli, fake_detectors, models, tmp_path):
    for argv, expected in [
        (("scan", str(models), "--policy", str(tmp_path / "none.yaml")), "does not exist"),
        (("scan", str(models), "--clean-data", str(tmp_path / "none.npz")), "none.npz does not exist"),
        (("scan", str(models), "--detectors", "nope"), "unknown detector nope"),
        (("scan", str(models), "--value-range", "1,0"), "LO must be below HI"),
        (("scan", str(models), "--mean", "0.5,0.5,0.5", "--std", "0.2,0,0.2"), "every std must be above 0"),
        (("scan", str(models), "--mean", "0.5,x,0.5", "--std", "0.2,0.2,0.2"), "expected one number per channel"),
        (("scan", str(models), "--mean", "0.5,0.5,0.5"), "--mean and --std go together"),
        (("scan", str(models), "--budget", "-5"), "expected seconds (600, 600s, 10m, 1h) or forward passes"),
        (("scan", str(models), "--budget", "2mpasses"), "150kpasses"),
        (("scan", str(models), "--mean", "0.5,0.5", "--std", "0.2,0.2,0.2"), "--mean and --std go together"),
        (("scan", str(models), "--output", str(tmp_path / "no" / "dir" / "r.json")), "cannot write the report"),
    ]:
        run = cli(*argv)
        assert run.code == 2, argv
        assert expected in run.stderr and "Traceback" not in run.stderr


def test_mean_and_std_reach_the_intake_and_the_report(cli, fake_detectors, models):
    run = cli("scan", str(models / "good.onnx"), "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")
    assert run.code == 0, run.stderr
    (result,) = report_of(run.stdout)["results"]
    assert result["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert result["normalization"]["std"] == [0.229, 0.224, 0.225]
    assert result["normalization"]["channel_ranges"][2] == pytest.approx([-0.406 / 0.225, 0.594 / 0.225])
    plain = report_of(cli("scan", str(models / "good.onnx")).stdout)["results"][0]
    assert "normalization" not in plain


def test_a_normalisation_for_other_channels_than_the_model_has_is_an_error_result(cli, fake_detectors, models):
    run = cli("scan", str(models / "good.onnx"), "--mean=0.5", "--std=0.25")
    assert run.code == 2
    (result,) = report_of(run.stdout)["results"]
    assert result["status"] == "error" and result["error"]["kind"] == "usage"
    assert "1 channels' mean and std, but good.onnx takes 3 channels" in result["error"]["message"]


def test_max_model_size_sets_the_intake_limit(cli, fake_detectors, models):
    size = (models / "good.onnx").stat().st_size
    refused = cli("scan", str(models / "good.onnx"), "--max-model-size", f"{size - 1}B")
    assert refused.code == 2 and f"over the intake limit of {size - 1} bytes" in refused.stderr
    assert "--max-model-size" in refused.stderr  # the hint says how to raise it
    (result,) = report_of(refused.stdout)["results"]
    assert result["status"] == "error" and result["error"]["kind"] == "file_too_large"
    assert cli("scan", str(models / "good.onnx"), "--max-model-size", f"{size}").code == 0
    for bad in ("3GiB", "0", "lots"):
        run = cli("scan", str(models / "good.onnx"), "--max-model-size", bad)
        assert run.code == 2 and "--max-model-size" in run.stderr and "Traceback" not in run.stderr


def test_an_unavailable_detector_asked_for_by_name_is_an_error(cli, models, monkeypatch):
    def broken() -> Detector:
        raise ImportError("No module named 'torch'")

    monkeypatch.setitem(DETECTORS, "one-pixel", ByName)  # the registry the CLI and `serve` both load from
    monkeypatch.setitem(DETECTORS, "ban", broken)
    run = cli("scan", str(models), "--detectors", "ban")
    assert run.code == 2 and "detector ban is not available" in run.stderr
    by_default = cli("scan", str(models / "good.onnx"))  # reported as failed, the other detector decides
    assert by_default.code == 0, by_default.stderr
    (result,) = report_of(by_default.stdout)["results"]
    assert result["detectors"]["ban"]["status"] == "error" and "torch" in result["detectors"]["ban"]["reason"]


@pytest.mark.parametrize(("builder", "kind"), HOSTILE, ids=[builder.__name__ for builder, _ in HOSTILE])
def test_hostile_file_exits_2_with_its_one_line_error(cli, tmp_path, builder, kind):
    path = builder(tmp_path)
    run = cli("scan", str(path))
    assert run.code == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("model-scanner: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"model-scanner: error: {path}: ")
    assert "Traceback" not in run.stderr
    (result,) = report_of(run.stdout)["results"]
    assert result["status"] == "error" and result["error"]["kind"] == kind
    assert result["decision"]["action"] == "block"
    assert not (tmp_path / PICKLE_MARKER).exists()


@pytest.mark.parametrize(("builder", "kind"), NOT_IMAGE_MODELS, ids=[b.__name__ for b, _ in NOT_IMAGE_MODELS])
def test_a_model_that_is_no_image_classifier_is_not_applicable_and_warned(cli, tmp_path, builder, kind):
    run = cli("scan", str(builder(tmp_path)))
    assert run.code == 0
    (result,) = report_of(run.stdout)["results"]
    assert result["status"] == "not_applicable" and result["decision"]["action"] == "warn"
    assert cli("scan", str(builder(tmp_path)), "--policy", "strict").code == 1


def test_a_folder_of_hostile_files_as_users_run_it(cli_process, tmp_path):
    """One subprocess over every hostile file: exit 2, one error line per file, no traceback."""
    paths = []
    for index, (builder, _) in enumerate(HOSTILE):
        folder = tmp_path / f"{index:02d}"
        folder.mkdir()
        paths.append(builder(folder))
    run = cli_process("scan", str(tmp_path), "--format", "markdown")
    assert run.code == 2
    assert "Traceback" not in run.stderr
    for path in paths:
        assert sum(line.startswith(f"model-scanner: error: {path}: ") for line in run.stderr.splitlines()) == 1, path
    assert run.stdout.startswith(f"## model-scanner: {len(paths)} targets, {len(paths)} blocked")


def test_a_model_that_never_finishes_is_stopped_at_the_time_limit(cli, tmp_path):
    """The real one-pixel detector on a valid model whose forward pass loops for ever: exit 2, not a hang."""
    path = save(endless_cnn(), tmp_path / "endless.onnx")
    run = cli("scan", str(path), "--detectors", "one-pixel", "--time-limit", "1")
    assert run.code == 2 and "time limit of 1 s" in run.stderr and "Traceback" not in run.stderr
    (result,) = report_of(run.stdout)["results"]
    assert result["status"] == "error" and "time limit of 1 s" in result["detectors"]["one_pixel"]["reason"]
    assert result["decision"]["action"] == "block"
    for bad in ("-1", "inf", "soon"):
        refused = cli("scan", str(path), "--time-limit", bad)
        assert refused.code == 2 and "--time-limit" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow
def test_synthesized_clean_data_lets_ban_scan_a_model_given_none(cli, models):
    """--synthesize-clean-data: images the model puts in each class stand in for clean data; the report says so."""
    run = cli("scan", str(models / "good.onnx"), "--detectors", "ban", "--synthesize-clean-data", "--format", "json")
    (result,) = report_of(run.stdout)["results"]
    assert result["clean_data"] == "synthesized (class inversion)", run.stderr
    assert result["detectors"]["ban"]["status"] == "scanned" and result["score"] is not None
    assert "--synthesize-clean-data" in cli("scan", "--help").stdout


def test_ban_alone_without_any_clean_data_is_a_usage_error(cli, models, tmp_path, monkeypatch):
    """Else BAN reports not_applicable for every model, which the default policy only warns about: exit 0 for all."""
    run = cli("scan", str(models), "--detectors", "ban")
    assert run.code == 2 and "--detectors ban needs clean sample data" in run.stderr and not run.stdout
    # Clean data may sit beside a registered version: that is the registry's to say (here: none is given).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    registry = cli("scan", "models:/fraud/1", "--detectors", "ban")
    assert registry.code == 2 and "needs clean sample data" not in registry.stderr
    assert "MLFLOW_TRACKING_URI is not set" in registry.stderr and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(("builder", "kind"), HOSTILE_NEIGHBOURS, ids=[b.__name__ for b, _ in HOSTILE_NEIGHBOURS])
def test_a_hostile_neighbour_in_a_scanned_folder_exits_2_naming_it(cli, fake_detectors, tmp_path, builder, kind):
    folder = tmp_path / "model"
    folder.mkdir()
    save(tiny_cnn(), folder / "good.onnx")
    path = builder(folder)

    run = cli("scan", str(folder))

    assert run.code == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("model-scanner: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"model-scanner: error: {path}: "), run.stderr
    results = {result["target"]: result for result in report_of(run.stdout)["results"]}
    assert results[str(path)]["status"] == "error" and results[str(path)]["error"]["kind"] == kind
    assert results[str(path)]["decision"]["action"] == "block"
    assert results[str(folder / "good.onnx")]["status"] == "scanned"
    assert not (folder / PICKLE_MARKER).exists()

    path.unlink()
    assert cli("scan", str(folder)).code == 0


def test_a_scan_leaves_the_working_directory_and_home_unchanged(tmp_path, repo_root):
    """A real scan, both detectors, as a user runs it from an empty directory: nothing written to CWD or HOME."""
    folder = tmp_path / "models"
    save(tiny_cnn(), folder / "model.onnx")
    (folder / "config.json").write_text("{}")
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    cwd.mkdir()
    (cwd / "notes.txt").write_text("mine")
    before = {tree: _listing(tree) for tree in (cwd, home)}
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(repo_root)}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("ORT_DISABLE_TELEMETRY", None)

    done = subprocess.run(
        [sys.executable, "-m", "scanner", "-q", "scan", str(folder)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode in (0, 1), done.stderr
    assert {result["status"] for result in report_of(done.stdout)["results"]} == {"scanned"}
    assert {tree: _listing(tree) for tree in (cwd, home)} == before


def _listing(tree: Path) -> list[tuple[str, int]]:
    return sorted((str(path.relative_to(tree)), path.stat().st_size) for path in tree.rglob("*"))


def test_a_terminal_gets_a_table_and_a_pipe_gets_json(cli, fake_detectors, models, monkeypatch):
    piped = cli("scan", str(models / "nested" / "trojan.onnx"))
    assert report_of(piped.stdout)["results"][0]["verdict"] == "backdoored"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # capsys's stdout, standing in for a terminal
    shown = cli("scan", str(models / "nested" / "trojan.onnx"))
    assert shown.code == 1
    assert shown.stdout.startswith("DECISION") and "backdoored" in shown.stdout and "--format json" in shown.stdout
    asked = cli("scan", str(models / "nested" / "trojan.onnx"), "--format", "json")
    assert report_of(asked.stdout)["results"][0]["verdict"] == "backdoored"


def test_a_real_terminal_gets_a_table(repo_root, tmp_path):
    """`model-scanner scan` as a person runs it: stdout a pseudo-terminal."""
    import os
    import pty
    import subprocess

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    main_end, terminal = pty.openpty()
    scan = subprocess.Popen(
        [sys.executable, "-m", "scanner", "scan", str(broken), "--detectors", "one-pixel"],
        cwd=repo_root,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main_end, 4096)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(main_end)
    assert scan.wait(timeout=120) == 2
    text = shown.decode()
    assert text.startswith("DECISION") and "broken.onnx" in text and "error" in text
    assert '"schema"' not in text
