"""The GitHub Action's entry point: maps the Action's inputs to one `model-scanner scan` run, then turns its JSON
report into what GitHub shows (job summary, `::error` annotations, step outputs, SARIF) and exits by `fail-on`.

Run by action.yml with the scanner's own Python. Reads only the Action's INPUT_* variables and GitHub's GITHUB_*
variables. The scan runs once: the CLI writes the JSON report and appends the Markdown summary
(with heatmaps); SARIF is rendered from the JSON report by the scanner's own SARIF format, so nothing is judged twice.

Exit status: 0 when `fail-on` lets the pull request pass, 1 when it does not, 2 when the Action itself is misused.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What counts as a model file in a diff: ONNX (scanned) and pickle-format weights (refused by the scanner, which the
# pull request must hear about). Changed external data (`x.onnx.data`) means its `x.onnx` changed.
MODEL_PATTERNS = ("*.onnx", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.joblib")
EXTERNAL_DATA_SUFFIX = ".data"
FAIL_ON = ("block", "warn", "never")
EXIT_PASS, EXIT_FAIL, EXIT_MISUSE = 0, 1, 2
# The scanner CLI's exit codes (docs/interface.md).
CLI_ALLOWED, CLI_BLOCKED, CLI_ERROR = 0, 1, 2


class ActionMisuse(Exception):
    """An input the Action cannot work with; reported as an ::error and exit status 2."""


@dataclass(frozen=True)
class Inputs:
    models: tuple[str, ...]
    base_ref: str
    policy: str
    clean_data: str
    synthesize_clean_data: bool
    detectors: str
    mean: str
    std: str
    budget: str
    fail_on: str
    sarif: str
    report: str
    artifacts: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Inputs:
        def read(name: str, default: str = "") -> str:
            return env.get(f"INPUT_{name}", "").strip() or default

        fail_on = read("FAIL_ON", "block").lower()
        if fail_on not in FAIL_ON:
            raise ActionMisuse(f"fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
        synthesize = read("SYNTHESIZE_CLEAN_DATA", "false").lower()
        if synthesize not in ("true", "false"):
            raise ActionMisuse(f"synthesize-clean-data must be true or false, not {synthesize!r}")
        mean, std = read("MEAN"), read("STD")
        if bool(mean) != bool(std):
            raise ActionMisuse("mean and std go together: give both (one value per channel) or neither")
        temp = env.get("RUNNER_TEMP") or "."
        return cls(
            models=tuple(read("MODELS").split()),
            base_ref=read("BASE_REF"),
            policy=read("POLICY"),
            clean_data=read("CLEAN_DATA"),
            synthesize_clean_data=synthesize == "true",
            detectors=read("DETECTORS"),
            mean=mean,
            std=std,
            budget=read("BUDGET"),
            fail_on=fail_on,
            sarif=read("SARIF"),
            report=read("REPORT", str(Path(temp) / "model-scanner-report.json")),
            artifacts=read("ARTIFACTS", str(Path(temp) / "model-scanner-artifacts")),
        )


# -- which models ------------------------------------------------------------------------------------------------------


def git(workspace: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True)
    if completed.returncode != 0:
        raise ActionMisuse(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


def base_commit(inputs: Inputs, env: Mapping[str, str], event: Mapping[str, Any]) -> str:
    """What the pull request (or push) is compared against: the input, the PR's base, the push's parent, HEAD^."""
    if inputs.base_ref:
        return inputs.base_ref
    pull_request = event.get("pull_request")
    if isinstance(pull_request, dict) and isinstance(pull_request.get("base"), dict):
        sha = pull_request["base"].get("sha")
        if isinstance(sha, str) and sha:
            return sha
    before = event.get("before")
    if isinstance(before, str) and before.strip("0"):
        return before
    if env.get("GITHUB_BASE_REF"):
        return f"origin/{env['GITHUB_BASE_REF']}"
    return "HEAD^"


def ensure_commit(workspace: Path, ref: str) -> None:
    """A shallow checkout may lack the base commit: fetch just that one."""
    probe = subprocess.run(["git", "cat-file", "-e", f"{ref}^{{commit}}"], cwd=workspace, capture_output=True)
    if probe.returncode != 0:
        fetch = subprocess.run(
            ["git", "fetch", "--no-tags", "--depth=1", "origin", ref], cwd=workspace, capture_output=True
        )
        if fetch.returncode != 0:
            raise ActionMisuse(
                f"base commit {ref} is not in the checkout and could not be fetched: use actions/checkout with "
                "fetch-depth: 0, or set the base-ref input"
            )


def is_model_file(path: str) -> bool:
    name = path.lower()
    return any(fnmatch.fnmatch(name, pattern) for pattern in MODEL_PATTERNS)


def changed_models(workspace: Path, base: str) -> list[str]:
    """Model files added, copied, modified or renamed between `base` and HEAD that still exist, in diff order."""
    ensure_commit(workspace, base)
    names = git(workspace, "diff", "--name-only", "--no-renames", "--diff-filter=ACMR", "-z", base, "HEAD").split("\0")
    found: list[str] = []
    for name in filter(None, names):
        if name.endswith(EXTERNAL_DATA_SUFFIX) and is_model_file(name[: -len(EXTERNAL_DATA_SUFFIX)]):
            name = name[: -len(EXTERNAL_DATA_SUFFIX)]
        if is_model_file(name) and (workspace / name).is_file() and name not in found:
            found.append(name)
    return found


def expand_models(workspace: Path, patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """The `models` input: paths, directories and globs (`**` too) under the workspace -> (targets, unmatched)."""
    targets: list[str] = []
    unmatched: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            hits = sorted(glob.glob(pattern, root_dir=workspace, recursive=True))
        else:
            hits = [pattern] if (workspace / pattern).exists() else []
        if not hits:
            unmatched.append(pattern)
        targets += [hit for hit in hits if hit not in targets]
    return targets, unmatched


# -- the scan ----------------------------------------------------------------------------------------------------------


def scan_command(python: str, targets: Sequence[str], inputs: Inputs, summary: str | None) -> list[str]:
    """One scan: the JSON report for this script, the Markdown summary (with heatmaps) straight from the CLI."""
    command = [python, "-m", "scanner", "scan", *targets, "--format", "json", "--output", inputs.report]
    command += ["--artifacts", inputs.artifacts]
    if summary:
        command += ["--summary", summary]
    if inputs.policy:
        command += ["--policy", inputs.policy]
    if inputs.clean_data:
        command += ["--clean-data", inputs.clean_data]
    if inputs.synthesize_clean_data:
        command += ["--synthesize-clean-data"]
    if inputs.detectors:
        command += ["--detectors", inputs.detectors]
    if inputs.mean:  # with '=': a normalised range may start with '-'; the CLI checks the values
        command += [f"--mean={inputs.mean}", f"--std={inputs.std}"]
    if inputs.budget:
        command += ["--budget", inputs.budget]
    return command


# -- what GitHub shows -------------------------------------------------------------------------------------------------


def overall(document: Mapping[str, Any]) -> tuple[str, str]:
    """(verdict, decision) over all results: the worst of each. "none" when nothing was scanned."""
    results = document.get("results") or []
    if not results:
        return "none", "none"
    verdicts = {r.get("verdict") for r in results}
    verdict = next((v for v in ("backdoored", "unknown") if v in verdicts), "clean")
    actions = {(r.get("decision") or {}).get("action") for r in results}
    if any(r.get("status") == "error" for r in results) and "block" not in actions:
        return verdict, "error"
    decision = next((a for a in ("block", "warn") if a in actions), "allow")
    return verdict, decision


def fails(fail_on: str, decision: str) -> bool:
    if fail_on == "never":
        return False
    if fail_on == "warn":
        return decision in {"block", "warn", "error"}
    return decision in {"block", "error"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(document: Mapping[str, Any], workspace: Path) -> list[str]:
    """`::error` / `::warning` workflow commands on each blocked, warned or unscannable model file."""
    lines = []
    for result in document.get("results") or []:
        action = (result.get("decision") or {}).get("action")
        status = result.get("status")
        if action not in {"block", "warn"} and status != "error":
            continue
        level = "warning" if action == "warn" else "error"
        reasons = list((result.get("decision") or {}).get("reasons") or [])
        if result.get("error"):
            reasons.insert(0, f"could not be scanned ({result['error']['kind']}): {result['error']['message']}")
        score = result.get("score")
        headline = f"model-scanner: {result.get('verdict', 'unknown')}" + (
            f" (score {score:.2f})" if score is not None else ""
        )
        message = "; ".join(reasons) or headline
        target = _relative(result.get("target", ""), workspace)
        properties = f"file={_escape_property(target)},line=1,title={_escape_property(headline)}"
        lines.append(f"::{level} {properties}::{_escape_data(message)}")
    return lines


def _relative(target: str, workspace: Path) -> str:
    path = Path(target)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(workspace.resolve()).as_posix()
        except ValueError:
            return target
    return path.as_posix()


def write_outputs(path: str | None, values: Mapping[str, str]) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as stream:
        for name, value in values.items():
            if "\n" in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
                stream.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                stream.write(f"{name}={value}\n")


def append_summary(path: str | None, markdown: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(markdown if markdown.endswith("\n") else markdown + "\n")


# -- the whole run -----------------------------------------------------------------------------------------------------


def run(env: Mapping[str, str], python: str) -> int:
    inputs = Inputs.from_env(env)
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
    event: Mapping[str, Any] = {}
    if env.get("GITHUB_EVENT_PATH") and Path(env["GITHUB_EVENT_PATH"]).is_file():
        event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))

    if inputs.models:
        targets, unmatched = expand_models(workspace, inputs.models)
        for pattern in unmatched:
            print(f"::warning title=model-scanner::no file matches {_escape_data(pattern)}")
    else:
        base = base_commit(inputs, env, event)
        targets = changed_models(workspace, base)
        print(f"model-scanner: {len(targets)} model file(s) changed since {base}", file=sys.stderr)

    outputs = {"report": inputs.report, "sarif": inputs.sarif, "models": str(len(targets))}
    if not targets:
        append_summary(env.get("GITHUB_STEP_SUMMARY"), "## model-scanner: no model files to scan\n")
        write_outputs(env.get("GITHUB_OUTPUT"), {**outputs, "verdict": "none", "decision": "none", "report": ""})
        return EXIT_PASS

    Path(inputs.report).parent.mkdir(parents=True, exist_ok=True)
    command = scan_command(python, targets, inputs, env.get("GITHUB_STEP_SUMMARY"))
    completed = subprocess.run(command, cwd=workspace)
    report_path = workspace / inputs.report
    if completed.returncode not in {CLI_ALLOWED, CLI_BLOCKED, CLI_ERROR} or not report_path.is_file():
        print(
            f"::error title=model-scanner::the scanner failed (exit status {completed.returncode}); see the log above"
        )
        write_outputs(env.get("GITHUB_OUTPUT"), {**outputs, "verdict": "unknown", "decision": "error"})
        return EXIT_PASS if inputs.fail_on == "never" else EXIT_FAIL

    text = report_path.read_text(encoding="utf-8")
    document = json.loads(text)
    if inputs.sarif:
        from scanner.reports import render
        from scanner.reports.json_report import read_report

        sarif_path = workspace / inputs.sarif
        sarif_path.parent.mkdir(parents=True, exist_ok=True)
        sarif_path.write_text(render(read_report(text), "sarif"), encoding="utf-8")
    for line in annotations(document, workspace):
        print(line)
    verdict, decision = overall(document)
    write_outputs(env.get("GITHUB_OUTPUT"), {**outputs, "verdict": verdict, "decision": decision})
    failed = fails(inputs.fail_on, decision)
    print(
        f"model-scanner: decision {decision}, verdict {verdict}, fail-on {inputs.fail_on}: "
        f"{'failing' if failed else 'passing'}",
        file=sys.stderr,
    )
    return EXIT_FAIL if failed else EXIT_PASS


def main() -> int:
    try:
        return run(os.environ, sys.executable)
    except ActionMisuse as error:
        print(f"::error title=model-scanner::{_escape_data(str(error))}")
        return EXIT_MISUSE


if __name__ == "__main__":
    sys.exit(main())
