"""The Action's script run as GitHub would run it, on a temporary repository whose last commit adds a model.

GitHub's side is imitated by its environment only: GITHUB_WORKSPACE, GITHUB_EVENT_PATH (a pull_request event with
the base commit), GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, RUNNER_TEMP. The scan is the real CLI on real zoo models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DETECTORS = "one-pixel"
# The clean sample the repository keeps beside its models (in the base commit: not a model the diff adds).
CLEAN_DATA = "data/digits-clean.npz"


def run_action(repo_root: Path, workspace: Path, base: str, tmp_path: Path, **inputs: str):
    runner = tmp_path / "runner"
    runner.mkdir()
    event = runner / "event.json"
    event.write_text(json.dumps({"pull_request": {"base": {"sha": base}}}))
    summary, outputs = runner / "summary.md", runner / "outputs.txt"
    summary.touch()
    outputs.touch()
    env = {
        **os.environ,
        "PYTHONPATH": str(repo_root),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
        "RUNNER_TEMP": str(runner),
        "INPUT_DETECTORS": DETECTORS,
        "INPUT_SARIF": "model-scanner.sarif",
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
    }
    script = repo_root / "hooks" / "action" / "action.py"
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=workspace, env=env, capture_output=True, text=True, timeout=300
    )
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return completed, summary.read_text(), values


def test_a_pull_request_adding_a_backdoored_model_fails(git_repo, zoo_pair, zoo_pair_clean_data, repo_root, tmp_path):
    _, backdoored = zoo_pair
    base = git_repo.commit(
        "base", {"README.md": b"a repository with models\n", CLEAN_DATA: zoo_pair_clean_data.read_bytes()}
    )
    git_repo.commit("add a model", {"models/digits.onnx": backdoored.read_bytes(), "docs/x.md": b"not a model"})

    completed, summary, outputs = run_action(repo_root, git_repo.root, base, tmp_path, clean_data=CLEAN_DATA)

    assert completed.returncode == 1, completed.stderr
    errors = [line for line in completed.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and errors[0].startswith("::error file=models/digits.onnx,line=1,title=model-scanner"), (
        errors
    )
    assert "backdoored" in errors[0]
    assert (outputs["verdict"], outputs["decision"], outputs["models"]) == ("backdoored", "block", "1")
    assert "## model-scanner" in summary and "`models/digits.onnx`" in summary and "block" in summary
    # the flagged model's signature heatmap, by its name (the Action uploads the folder as an artifact and links
    # it); never a data: image, which GitHub strips, nor a path on the runner
    (heatmap,) = (tmp_path / "runner" / "model-scanner-artifacts").glob("*.png")
    assert f"- signature heatmap: `{heatmap.name}`" in summary and heatmap.name.startswith("digits-")
    assert "data:" not in summary and str(tmp_path) not in summary
    sarif = json.loads((git_repo.root / "model-scanner.sarif").read_text())
    (result,) = [r for r in sarif["runs"][0]["results"] if r["level"] == "error"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "models/digits.onnx"
    assert Path(outputs["report"]).is_file()


def test_a_pull_request_adding_a_clean_model_passes(git_repo, zoo_pair, zoo_pair_clean_data, repo_root, tmp_path):
    clean, _ = zoo_pair
    base = git_repo.commit(
        "base", {"README.md": b"a repository with models\n", CLEAN_DATA: zoo_pair_clean_data.read_bytes()}
    )
    git_repo.commit("add a model", {"models/digits.onnx": clean.read_bytes()})

    completed, summary, outputs = run_action(repo_root, git_repo.root, base, tmp_path, clean_data=CLEAN_DATA)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "::error" not in completed.stdout
    assert (outputs["verdict"], outputs["decision"]) == ("clean", "allow")
    assert "`models/digits.onnx`" in summary and "allow" in summary


def test_no_model_in_the_diff_passes_without_scanning(git_repo, repo_root, tmp_path):
    base = git_repo.commit("base", {"README.md": b"hello\n"})
    git_repo.commit("docs only", {"README.md": b"hello again\n"})
    completed, summary, outputs = run_action(repo_root, git_repo.root, base, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert (outputs["verdict"], outputs["models"]) == ("none", "0")
    assert "no model files to scan" in summary


def test_fail_on_never_reports_but_passes(git_repo, repo_root, tmp_path):
    """A pickle is refused (never loaded): an error annotation, and with fail-on never the step still passes."""
    base = git_repo.commit("base", {"README.md": b"hello\n"})
    git_repo.commit("add weights", {"weights/net.pt": b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}\x94."})
    completed, _, outputs = run_action(repo_root, git_repo.root, base, tmp_path, fail_on="never")
    assert completed.returncode == 0, completed.stderr
    assert "::error file=weights/net.pt,line=1" in completed.stdout
    assert outputs["decision"] in {"block", "error"}
