"""actionlint on the project's workflows and on the Action's own steps."""

import json
import subprocess

import yaml


def lint(actionlint, files):
    completed = subprocess.run([*actionlint, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_actionlint_finds_real_mistakes(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ steps.nope.outputs.x }}\n"
        "      - uses: actions/setup-python@v4\n        with:\n          pythn-version: '3.11'\n"
    )
    messages = [finding["message"] for finding in lint(actionlint, [broken])]
    assert any('property "nope" is not defined' in m for m in messages), messages
    assert any('input "pythn-version" is not defined' in m for m in messages), messages


def test_workflows_pass_actionlint(actionlint, repo_root):
    workflows = sorted((repo_root / ".github" / "workflows").glob("*.yml"))
    assert {w.name for w in workflows} >= {"ci.yml", "model-scan.yml", "model-rescan.yml"}
    assert lint(actionlint, workflows) == []


def test_the_actions_steps_pass_actionlint(actionlint, repo_root, tmp_path):
    """actionlint reads workflows, not action metadata: lint the composite steps as a reusable workflow's job, whose
    `inputs` are the Action's inputs, so every `inputs.*` and `steps.*` reference is checked."""
    action = yaml.safe_load((repo_root / "action.yml").read_text())
    inputs = {
        name: {"type": "string", "required": False, "default": str(spec.get("default", ""))}
        for name, spec in action["inputs"].items()
    }
    outputs = {name: spec["value"] for name, spec in action["outputs"].items()}
    workflow = {
        "name": "action-as-workflow",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "outputs": outputs, "steps": action["runs"]["steps"]}},
    }
    path = tmp_path / "action-as-workflow.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    assert lint(actionlint, [path]) == []
