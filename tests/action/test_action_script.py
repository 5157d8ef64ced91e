"""The Action's script, piece by piece: which models, what GitHub is told, when the step fails."""

import json

import pytest

ONNX = b"\x08\x07fake onnx bytes"  # only the diff logic reads these files


def test_changed_models_are_the_added_and_modified_model_files(action_script, git_repo):
    base = git_repo.commit("base", {"README.md": b"hi", "models/old.onnx": ONNX, "models/gone.onnx": ONNX})
    git_repo.commit(
        "pr",
        {
            "models/new.onnx": ONNX,
            "models/old.onnx": ONNX + b"changed",
            "models/gone.onnx": None,
            "weights/net.pt": b"\x80\x04pickle",
            "docs/notes.txt": b"not a model",
            "big/huge.onnx.data": b"external tensor data",
        },
    )
    (git_repo.root / "big").mkdir(exist_ok=True)
    found = action_script.changed_models(git_repo.root, base)
    assert sorted(found) == ["models/new.onnx", "models/old.onnx", "weights/net.pt"]
    git_repo.commit("with its graph", {"big/huge.onnx": ONNX, "big/huge.onnx.data": b"new data"})
    assert "big/huge.onnx" in action_script.changed_models(git_repo.root, base)


def test_base_commit_comes_from_the_input_the_event_or_the_branch(action_script):
    inputs = action_script.Inputs.from_env({})
    event = {"pull_request": {"base": {"sha": "abc123"}}}
    assert action_script.base_commit(inputs, {}, event) == "abc123"
    assert action_script.base_commit(inputs, {}, {"before": "def456"}) == "def456"
    assert action_script.base_commit(inputs, {}, {"before": "0" * 40}) == "HEAD^"
    assert action_script.base_commit(inputs, {"GITHUB_BASE_REF": "main"}, {}) == "origin/main"
    pinned = action_script.Inputs.from_env({"INPUT_BASE_REF": "v1.0"})
    assert action_script.base_commit(pinned, {}, event) == "v1.0"


def test_models_input_takes_paths_directories_and_globs(action_script, tmp_path):
    for name in ("a/x.onnx", "a/b/y.onnx", "c/z.onnx"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(ONNX)
    targets, unmatched = action_script.expand_models(tmp_path, ["a/**/*.onnx", "c", "missing/*.onnx", "c/z.onnx"])
    assert targets == ["a/b/y.onnx", "a/x.onnx", "c", "c/z.onnx"]
    assert unmatched == ["missing/*.onnx"]


def test_mean_std_and_budget_go_to_the_scan(action_script):
    inputs = action_script.Inputs.from_env({"INPUT_MEAN": "0.485,0.456,0.406", "INPUT_STD": " 0.229,0.224,0.225 "})
    command = action_script.scan_command("python", ["m.onnx"], inputs, None)
    assert command[-2:] == ["--mean=0.485,0.456,0.406", "--std=0.229,0.224,0.225"]
    assert not any(
        part.startswith("--mean")
        for part in action_script.scan_command("python", ["m.onnx"], action_script.Inputs.from_env({}), None)
    )
    budgeted = action_script.Inputs.from_env({"INPUT_BUDGET": "120"})
    assert action_script.scan_command("python", ["m.onnx"], budgeted, None)[-2:] == ["--budget", "120"]
    with pytest.raises(action_script.ActionMisuse, match="mean and std go together"):
        action_script.Inputs.from_env({"INPUT_MEAN": "0.5,0.5,0.5"})


def test_synthesize_clean_data_is_true_or_false(action_script):
    asked = action_script.Inputs.from_env({"INPUT_SYNTHESIZE_CLEAN_DATA": " True "})
    assert "--synthesize-clean-data" in action_script.scan_command("python", ["m.onnx"], asked, None)
    unasked = action_script.Inputs.from_env({"INPUT_SYNTHESIZE_CLEAN_DATA": "false"})
    assert "--synthesize-clean-data" not in action_script.scan_command("python", ["m.onnx"], unasked, None)
    with pytest.raises(action_script.ActionMisuse, match="synthesize-clean-data must be true or false"):
        action_script.Inputs.from_env({"INPUT_SYNTHESIZE_CLEAN_DATA": "yes"})


def test_fail_on_must_be_known(action_script):
    with pytest.raises(action_script.ActionMisuse, match="fail-on"):
        action_script.Inputs.from_env({"INPUT_FAIL_ON": "sometimes"})


def report(*results):
    return {
        "schema": "model-scanner/report/v1",
        "scanner_version": "0.1.0",
        "policy": "default@x",
        "results": list(results),
    }


def result(target, action, verdict="clean", status="scanned", score=0.1, error=None):
    return {
        "target": target,
        "sha256": "ab" * 32,
        "status": status,
        "error": error,
        "score": score,
        "verdict": verdict,
        "detectors": {},
        "decision": None if action is None else {"action": action, "reasons": [f"rule says {action}"]},
    }


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ((), ("none", "none")),
        ((result("a", "allow"),), ("clean", "allow")),
        ((result("a", "allow"), result("b", "warn", "unknown")), ("unknown", "warn")),
        ((result("a", "block", "backdoored"), result("b", "warn")), ("backdoored", "block")),
        (
            (result("a", "allow"), result("b", None, "unknown", "error", None, {"kind": "intake", "message": "x"})),
            ("unknown", "error"),
        ),
    ],
)
def test_overall_verdict_and_decision_are_the_worst(action_script, results, expected):
    assert action_script.overall(report(*results)) == expected


@pytest.mark.parametrize(
    ("fail_on", "decision", "fails"),
    [
        ("block", "allow", False),
        ("block", "warn", False),
        ("block", "block", True),
        ("block", "error", True),
        ("warn", "allow", False),
        ("warn", "warn", True),
        ("warn", "block", True),
        ("never", "block", False),
        ("never", "error", False),
        ("block", "none", False),
    ],
)
def test_fail_on(action_script, fail_on, decision, fails):
    assert action_script.fails(fail_on, decision) is fails


def test_annotations_point_at_the_flagged_model_files(action_script, tmp_path):
    document = report(
        result("models/ok.onnx", "allow"),
        result(str(tmp_path / "models/bad,1.onnx"), "block", "backdoored", score=0.97),
        result("models/meh.onnx", "warn", "unknown", score=0.55),
        result(
            "w.pt", "block", "unknown", "error", None, {"kind": "pickle_refused", "message": "a pickle\nnot loaded"}
        ),
    )
    lines = action_script.annotations(document, tmp_path)
    assert lines == [
        "::error file=models/bad%2C1.onnx,line=1,title=model-scanner%3A backdoored (score 0.97)::rule says block",
        "::warning file=models/meh.onnx,line=1,title=model-scanner%3A unknown (score 0.55)::rule says warn",
        "::error file=w.pt,line=1,title=model-scanner%3A unknown::"
        "could not be scanned (pickle_refused): a pickle%0Anot loaded; rule says block",
    ]


def test_outputs_use_githubs_file_format(action_script, tmp_path):
    path = tmp_path / "out"
    action_script.write_outputs(str(path), {"verdict": "clean", "note": "two\nlines"})
    text = path.read_text()
    assert text.startswith("verdict=clean\nnote<<ghadelimiter_")
    assert "\ntwo\nlines\nghadelimiter_" in text


def test_the_json_report_loads_back_for_the_other_formats():
    from scanner.reports.json_report import read_report

    document = report(result("m.onnx", "block", "backdoored", score=0.9))
    document["results"][0]["detectors"] = {
        "one_pixel": {
            "status": "scanned",
            "score": 0.8,
            "target_class": 3,
            "forward_passes": 100,
            "seconds": 0.5,
            "reason": None,
        }
    }
    loaded = read_report(json.dumps(document))
    (only,) = loaded.results
    assert (only.target, only.verdict.value, only.decision.action.value, only.score) == (
        "m.onnx",
        "backdoored",
        "block",
        0.9,
    )
    assert only.detectors["one_pixel"].target_class == 3
    assert loaded.policy == "default@x"
