import datetime as dt
import time
from pathlib import Path

import pytest

from scanner.detectors import DETECTORS
from scanner.errors import PolicyError
from scanner.findings import Action, Layout, Normalization
from scanner.policy import load_policy, validate_policy_file, validate_policy_text
from scanner.policy.loader import glob_problem, known_detectors

VALID = """\
version: 1
name: team
rules:
  - id: block-backdoored
    match: {models: ["fraud-*"], stages: [Production], aliases: [champion]}
    when: {verdict: [backdoored]}
    action: block
  - id: ban-high
    match: {detector: ban, plain_scan: true}
    when: {score_at_least: 0.8}
    action: warn
inputs:
  - models: ["fraud-*"]
    value_range: [-1, 1]
    layout: NHWC
    clean_data: data/clean.npz
waivers:
  - models: ["fraud-legacy"]
    sha256: "abababababababababababababababababababababababababababababababab"
    rules: [block-backdoored]
    reason: reviewed false positive
    approved_by: alice
    expires: 2030-01-31
"""


def errors_of(text: str) -> tuple[str, ...]:
    return validate_policy_text(text, source="p.yaml", base_dir=None).errors


def test_a_valid_policy_loads_into_typed_values(policy_file, tmp_path):
    policy = load_policy(policy_file(VALID))
    assert policy.name == "team" and policy.version == 1 and policy.fail_closed is True
    assert [rule.id for rule in policy.rules] == ["block-backdoored", "ban-high"]
    assert policy.rules[0].action is Action.BLOCK and policy.rules[1].match.detector == "ban"
    defaults = policy.input_defaults_for("fraud-cnn")
    assert defaults is not None
    assert defaults.value_range == (-1.0, 1.0) and defaults.layout is Layout.NHWC
    assert defaults.clean_data == tmp_path / "data" / "clean.npz"
    assert defaults.normalization is None
    assert policy.input_defaults_for("digits") is None
    assert policy.waivers[0].expires == dt.date(2030, 1, 31)
    assert len(policy.digest) == 64 and policy.label == f"team@{policy.digest[:12]}"


def test_inputs_take_a_per_channel_mean_and_std(policy_file):
    text = VALID.replace(
        "layout: NHWC", "layout: NHWC\n    mean: [0.485, 0.456, 0.406]\n    std: [0.229, 0.224, 0.225]"
    )
    defaults = load_policy(policy_file(text)).input_defaults_for("fraud-cnn")
    assert defaults is not None
    assert defaults.normalization == Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_digest_follows_meaning_not_comments(policy_file):
    plain = load_policy(policy_file(VALID, "a.yaml"))
    commented = load_policy(policy_file("# a comment\n" + VALID, "b.yaml"))
    changed = load_policy(policy_file(VALID.replace("0.8", "0.7"), "c.yaml"))
    assert plain.digest == commented.digest != changed.digest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\n", "version: missing"),
        ("version: 2\n", "version: unsupported policy version 2"),
        ("- 1\n", "must be a YAML mapping"),
        ("version: 1\nrules: [\n", "line"),
    ],
)
def test_the_version_is_checked_first_and_bad_yaml_is_named(text, expected):
    (error,) = errors_of(text)
    assert expected in error


def test_unknown_key_is_reported_with_its_path():
    errors = errors_of(VALID.replace("    when: {verdict: [backdoored]}", "    wehn: {verdict: [backdoored]}"))
    assert any(e.startswith("rules[0].wehn: unknown key") for e in errors), errors


def test_wrong_type_is_reported_with_its_path():
    errors = errors_of(VALID.replace("score_at_least: 0.8", "score_at_least: high"))
    assert errors == ("rules[1].when.score_at_least: expected a number, got a string 'high'",)


def test_bad_glob_is_reported_with_its_path():
    errors = errors_of(VALID.replace('models: ["fraud-legacy"]', 'models: ["fraud-[legacy"]'))
    assert errors == ("waivers[0].models[0]: glob 'fraud-[legacy' has an unclosed '['",)


def test_unknown_detector_is_reported_with_the_known_ones():
    errors = errors_of(VALID.replace("detector: ban", "detector: neural-cleanse"))
    assert errors == ("rules[1].match.detector: unknown detector 'neural-cleanse' (known detectors: one-pixel, ban)",)


def test_the_schema_knows_exactly_the_registered_detectors():
    assert set(known_detectors()) == set(DETECTORS)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("  - id: ban-high", "  - id: block-backdoored"), "rules[1].id: duplicate rule id 'block-backdoored'"),
        (("rules: [block-backdoored]", "rules: [no-such-rule]"), "waivers[0].rules[0]: unknown rule id 'no-such-rule'"),
        (("expires: 2030-01-31", "expires: 2030-02-30"), "waivers[0].expires: '2030-02-30' is not a real date"),
        (("expires: 2030-01-31", "expires: soon"), "waivers[0].expires: expected a date written YYYY-MM-DD"),
        (("value_range: [-1, 1]", "value_range: [1, -1]"), "inputs[0].value_range: low 1 must be below high -1"),
        (("layout: NHWC", "layout: CHW"), "inputs[0].layout: 'CHW' is not allowed (expected one of: NCHW, NHWC)"),
        (("layout: NHWC", "layout: NHWC\n    mean: [0.5, 0.5]\n    std: [0.2]"), "inputs[0].std: 1 values, but mean"),
        (("layout: NHWC", "layout: NHWC\n    mean: [0.5]\n    std: [0]"), "inputs[0].std[0]: 0 is less than or equal"),
        (("layout: NHWC", "layout: NHWC\n    mean: [0.5]"), "inputs[0]"),
        (("    reason: reviewed false positive\n", ""), "waivers[0].reason: missing (required)"),
        (
            ('    sha256: "' + "ab" * 32 + '"\n', ""),
            "waivers[0].sha256: missing (required: a waiver names the exact model file it waives",
        ),
        (("action: warn", "action: deny"), "rules[1].action: 'deny' is not allowed"),
        (
            ("stages: [Production]", "stages: [Producton]"),
            "rules[0].match.stages[0]: unknown stage 'Producton' (MLflow's stages: None, Staging, Production,"
            " Archived); did you mean Production?",
        ),
        (("stages: [Production]", "stages: [Production, qa]"), "rules[0].match.stages[1]: unknown stage 'qa'"),
    ],
)
def test_semantic_and_schema_problems_name_their_path(change, expected):
    errors = errors_of(VALID.replace(*change))
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize("stage", ["None", "staging", "PRODUCTION", "Archived"])
def test_every_mlflow_stage_is_accepted_in_any_case(stage):
    assert errors_of(VALID.replace("stages: [Production]", f"stages: [{stage}]")) == ()


def test_a_duplicate_key_is_refused_with_its_line():
    (error,) = errors_of(VALID.replace("    action: block", "    action: block\n    action: allow"))
    assert error == "duplicate key 'action' at line 8"


def test_a_verdict_condition_on_a_detector_is_refused():
    text = VALID.replace("when: {score_at_least: 0.8}", "when: {verdict: [backdoored]}")
    assert errors_of(text) == (
        "rules[1].when.verdict: a verdict belongs to the fused result; drop match.detector or use a score",
    )


def test_expired_waivers_and_missing_clean_data_are_warnings(policy_file):
    path = policy_file(VALID)
    validation = validate_policy_file(path, today=dt.date(2031, 1, 1))
    assert validation.policy is not None and not validation.errors
    assert any(w.startswith("waivers[0]: expired on 2030-01-31") for w in validation.warnings)
    assert any(w.startswith("inputs[0].clean_data:") for w in validation.warnings)
    (path.parent / "data").mkdir()
    (path.parent / "data" / "clean.npz").write_bytes(b"")
    assert validate_policy_file(path, today=dt.date(2030, 1, 31)).warnings == ()


def test_load_policy_raises_one_line_with_the_first_problem_and_a_hint(policy_file):
    with pytest.raises(PolicyError) as raised:
        load_policy(policy_file(VALID.replace("action: warn", "action: deny").replace("wehn", "when")))
    assert "rules[1].action: 'deny' is not allowed" in str(raised.value)
    assert "policy validate" in raised.value.hint
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(policy_file(VALID).parent / "missing.yaml")


@pytest.mark.parametrize(
    ("glob", "bad"),
    [("fraud-*", False), ("[!a]x", False), ("[]]", False), ("a[bc]?", False), ("a[", True), ("[!", True), (" a", True)],
)
def test_glob_problems(glob, bad):
    assert (glob_problem(glob) is not None) is bad


def bomb(levels: int) -> str:
    """A billion laughs: each line names the one before it nine times."""
    lines = ["version: 1", "rules:", "  - &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("key", ["[a, b]", "{a: 1}"])
def test_a_complex_mapping_key_is_refused_with_its_line(key):
    (error,) = errors_of(f"version: 1\n? {key}\n: c\n")
    assert error.startswith("a mapping key must be a plain value") and error.endswith("at line 2")


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nrules: " + "[" * 5000 + "]" * 5000 + "\n",
        "version: 1\nrules: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(text):
    (error,) = errors_of(text)
    assert error.startswith("nested more than 20 levels deep") and error.endswith("at line 2")


def test_aliases_that_expand_beyond_the_bound_are_refused_in_one_line():
    (error,) = errors_of(bomb(7))
    assert "more than 100000 values, counting what each YAML alias repeats" in error and len(error) < 300
    errors = errors_of(bomb(4))  # 9**4 values: within the bound, the problems are listed, each cut short
    assert len(errors) == 4 and all(len(e) < 300 for e in errors)


def test_an_alias_inside_what_it_names_is_refused():
    (error,) = errors_of("version: 1\nrules: &a [*a]\n")
    assert error == "alias *a is used inside what it names at line 2"


def test_aliases_within_the_bound_still_work():
    text = VALID.replace('models: ["fraud-*"], stages', 'models: &fraud ["fraud-*"], stages')
    policy = validate_policy_text(text.replace('models: ["fraud-*"]\n', "models: *fraud\n"), source="p", base_dir=None)
    assert policy.policy is not None and policy.policy.inputs[0].models == ("fraud-*",)


def test_only_the_first_problems_are_listed_with_a_count_of_the_rest(policy_file):
    rules = "".join(f"  - {{id: r{n}, action: block, wehn: 1}}\n" for n in range(100))
    validation = validate_policy_text(f"version: 1\nrules:\n{rules}", source="p.yaml", base_dir=None)
    assert len(validation.errors) == 20 and validation.more_errors == 80
    with pytest.raises(PolicyError, match=r"\(and 99 more problems\)"):
        load_policy(policy_file(f"version: 1\nrules:\n{rules}"))


def test_a_policy_file_over_the_size_limit_is_refused_before_parsing(policy_file):
    path = policy_file("version: 1\n" + ("#" * 79 + "\n") * (2**20 // 80 + 1))
    with pytest.raises(PolicyError, match="larger than 1 MiB"):
        validate_policy_file(path)


def test_rule_ids_are_checked_in_linear_time():
    from scanner.policy.loader import _semantic_problems

    rules = [{"id": f"r{n}", "action": "allow"} for n in range(50_000)] + [{"id": "r7", "action": "allow"}]
    waiver = {"models": ["*"], "rules": [f"r{n}" for n in range(0, 50_000, 10)], "expires": "2030-01-01"}
    started = time.perf_counter()
    problems = list(_semantic_problems({"version": 1, "rules": rules, "waivers": [waiver]}))
    assert problems == ["rules[50000].id: duplicate rule id 'r7'"]
    assert time.perf_counter() - started < 2  # quadratic (list.index, `in` a tuple): over 20 s


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        (("score_at_least: 0.8", "score_at_least: .nan"), "'.nan'"),
        (("score_at_least: 0.8", "score_below: .inf"), "'.inf'"),
        (("score_at_least: 0.8", "score_below: 1.0e+999"), "'1.0e+999'"),
        (("value_range: [-1, 1]", "value_range: [0, .inf]"), "'.inf'"),
        (("value_range: [-1, 1]", "value_range: [-.Inf, 0]"), "'-.Inf'"),
        (("value_range: [-1, 1]", f"value_range: [0, 1{'0' * 400}]"), "'1000"),
    ],
)
def test_numbers_that_are_not_finite_are_refused(change, shown):
    (error,) = errors_of(VALID.replace(*change))
    assert error.startswith(f"{shown}") and "is not a finite number" in error and "at line" in error
    assert len(error) < 200


@pytest.mark.parametrize(
    "value", ["!!int abc", "!!bool maybe", "!!float x", "!!timestamp 2020-13-45", "!!timestamp soon", "1" * 5000]
)
def test_a_value_yaml_cannot_read_is_a_problem_with_its_line(value):
    (error,) = errors_of(f"version: 1\nname: {value}\n")
    assert error.startswith("cannot read") and error.endswith("at line 2") and len(error) < 200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("name: team", 'name: "\\0\\n\\e[31mred"'),
            "name: '\\x00\\n\\x1b[31mred' contains the control character '\\x00'",
        ),
        (("  - id: ban-high", '  - id: "ban-high\\n"'), "rules[1].id: 'ban-high\\n' contains the control character"),
        (
            ("reason: reviewed false positive", 'reason: "\\e[2Jreviewed false positive"'),
            "waivers[0].reason: '\\x1b[2Jreviewed false positive' contains the control character '\\x1b'",
        ),
        (('models: ["fraud-*"]\n', 'models: ["fraud-*"]\n    "\\e[31m": 1\n'), "inputs[0]['\\x1b[31m']: unknown key"),
    ],
)
def test_control_characters_are_refused_and_shown_escaped(change, expected):
    errors = errors_of(VALID.replace(*change))
    assert any(e.startswith(expected) for e in errors), errors
    assert not any("\x1b" in e or "\x00" in e or "\n" in e for e in errors)


def test_line_breaks_and_tabs_are_fine_in_free_text():
    text = VALID.replace("    reason: reviewed false positive", '    reason: "reviewed\\n\\tfalse positive"')
    assert errors_of(text.replace("name: team", "name: team\ndescription: |\n  two\n  lines")) == ()


def test_clean_data_under_an_unknown_users_home_is_a_warning_not_a_crash():
    text = VALID.replace("clean_data: data/clean.npz", "clean_data: ~no-such-user-here/clean.npz")
    validation = validate_policy_text(text, source="p.yaml", base_dir=None)
    assert validation.policy is not None
    assert validation.policy.inputs[0].clean_data == Path("~no-such-user-here/clean.npz")
    (warning,) = validation.warnings
    assert warning.startswith("inputs[0].clean_data: ~no-such-user-here/clean.npz does not exist")


def test_allow_files_are_globs_checked_on_load():
    text = "version: 1\nallow_files: ['LICENSE', 'assets/*.tflite']\n"
    validation = validate_policy_text(text, source="p", base_dir=None)
    assert validation.policy is not None and validation.policy.allow_files == ("LICENSE", "assets/*.tflite")
    unclosed = errors_of("version: 1\nallow_files: ['[a']\n")
    assert any("allow_files[0]" in error and "unclosed" in error for error in unclosed)
    assert any("allow_files" in error for error in errors_of("version: 1\nallow_files: []\n"))
