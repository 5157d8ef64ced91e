"""action.yml, its scripts and its script's environment agree with each other."""

import os
import re

import yaml


def load(repo_root):
    return yaml.safe_load((repo_root / "action.yml").read_text())


def test_composite_action_with_the_issues_inputs_and_outputs(repo_root):
    action = load(repo_root)
    assert action["runs"]["using"] == "composite"
    assert {"models", "policy", "clean-data", "detectors", "fail-on", "sarif"} <= set(action["inputs"])
    assert action["inputs"]["fail-on"]["default"] == "block"
    assert {"verdict", "report"} <= set(action["outputs"])
    for step in action["runs"]["steps"]:
        assert "uses" in step or step.get("shell") == "bash", step  # composite run steps need a shell


def test_every_input_is_declared_and_used(repo_root):
    text = (repo_root / "action.yml").read_text()
    action = load(repo_root)
    referenced = set(re.findall(r"inputs\.([a-z-]+)", text))
    assert referenced == set(action["inputs"])


def test_the_script_reads_exactly_the_inputs_the_action_passes(repo_root):
    action = load(repo_root)
    (scan,) = [step for step in action["runs"]["steps"] if step.get("id") == "scan"]
    passed = {name for name in scan["env"] if name.startswith("INPUT_")}
    script = (repo_root / "hooks" / "action" / "action.py").read_text()
    read = {f"INPUT_{name}" for name in re.findall(r'read\("([A-Z_]+)"', script)}
    # REPORT and ARTIFACTS are knobs for tests and self-hosted runners; the Action leaves them at RUNNER_TEMP.
    assert passed == read - {"INPUT_REPORT", "INPUT_ARTIFACTS"}


def test_the_scripts_the_action_runs_exist_and_are_executable(repo_root):
    text = (repo_root / "action.yml").read_text()
    scripts = set(re.findall(r"\$GITHUB_ACTION_PATH/([\w/.-]+)", text))
    assert scripts == {"hooks/action/cache-key.sh", "hooks/action/install.sh", "hooks/action/action.py"}
    for script in scripts:
        assert os.access(repo_root / script, os.X_OK), script


def test_heatmaps_are_uploaded_as_an_artifact_and_linked_from_the_summary(repo_root, action_script):
    steps = {step.get("id") or step["name"]: step for step in load(repo_root)["runs"]["steps"]}
    upload = steps["heatmaps"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert "!cancelled()" in upload["if"]  # also after the scan step failed the check
    # the folder the script has the CLI write heatmaps to (RUNNER_TEMP/model-scanner-artifacts)
    folder = action_script.Inputs.from_env({"RUNNER_TEMP": "/runner/temp"}).artifacts
    assert upload["with"]["path"].replace("${{ runner.temp }}", "/runner/temp") == f"{folder}/*.png"
    (link,) = [step for step in steps.values() if "steps.heatmaps.outputs.artifact-url" in str(step)]
    assert "GITHUB_STEP_SUMMARY" in link["run"] and "$URL" in link["run"]
