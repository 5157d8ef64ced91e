import pytest

from scanner.policy import BUILTIN_POLICIES, builtin_policy_text

GOOD = """\
version: 1
rules:
  - id: block-backdoored
    match: {stages: [Production]}
    when: {verdict: [backdoored]}
    action: block
waivers:
  - models: ["legacy-*"]
    sha256: "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
    reason: manual review
    approved_by: alice
    expires: 2020-01-01
"""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    when:", "    wehn:"), "rules[0].wehn: unknown key (allowed here: action, description, id, match, when)"),
        (("stages: [Production]", "stages: Production"), "rules[0].match.stages: expected a list, got a string"),
        (
            ('models: ["legacy-*"]', 'models: ["legacy-[*"]'),
            "waivers[0].models[0]: glob 'legacy-[*' has an unclosed '['",
        ),
        (("match: {", "match: {detector: strip, "), "rules[0].match.detector: unknown detector 'strip'"),
    ],
)
def test_validate_reports_invalid_policies_with_the_key_path(cli, tmp_path, change, expected):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace(*change))
    run = cli("policy", "validate", str(path))
    assert run.code == 2
    assert f"{path}: error: {expected}" in run.stdout
    assert run.stdout.rstrip().endswith("invalid (1 problem)")


def test_validate_warns_about_an_expired_waiver(cli, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    run = cli("policy", "validate", str(path))
    assert run.code == 0
    assert f"{path}: warning: waivers[0]: expired on 2020-01-01, no longer applies" in run.stdout
    assert "valid: policy p@" in run.stdout
    assert cli("policy", "validate", str(path), "--strict").code == 1
    assert "warning" not in cli("policy", "validate", str(path), "--today", "2019-12-31").stdout


def test_validate_a_missing_file_is_a_one_line_error(cli, tmp_path):
    run = cli("policy", "validate", str(tmp_path / "nope.yaml"))
    assert run.code == 2 and run.stderr.count("\n") == 1 and "does not exist" in run.stderr
    assert "--policy" not in run.stderr  # validate takes the file as an argument


@pytest.mark.parametrize("name", BUILTIN_POLICIES)
def test_show_prints_a_builtin_policy_that_validates(cli, tmp_path, name):
    run = cli("policy", "show", name)
    assert run.code == 0 and run.stdout == builtin_policy_text(name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(run.stdout)
    assert cli("policy", "validate", str(path)).code == 0


def test_help_has_examples(cli):
    for argv in (("policy", "--help"), ("policy", "validate", "--help"), ("scan", "--help")):
        run = cli(*argv)
        assert run.code == 0 and "examples:" in run.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\n? [a, b]\n: c\n", "a mapping key must be a plain value"),
        ("version: 1\nrules: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 20 levels deep"),
        (
            "version: 1\nrules:\n  - id: a\n    action: block\n    when: {score_at_least: .nan}\n",
            "'.nan' is not a finite",
        ),
        ('version: 1\nname: "\\0\\n\\e[31mred"\n', "name: '\\x00\\n\\x1b[31mred' contains the control character"),
    ],
)
def test_validate_explains_hostile_policies_in_one_line_each(cli, tmp_path, text, expected):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    run = cli("policy", "validate", str(path))
    assert run.code == 2 and f"{path}: error: {expected}" in run.stdout and run.stderr == ""
    assert run.stdout.rstrip().endswith("invalid (1 problem)") and "\x1b" not in run.stdout


def test_validate_a_billion_laughs_is_one_short_problem(cli, tmp_path):
    lines = ["version: 1", "rules:", "  - &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 7)]
    path = tmp_path / "p.yaml"
    path.write_text("\n".join(lines) + "\n")
    run = cli("policy", "validate", str(path))
    assert run.code == 2 and "counting what each YAML alias repeats" in run.stdout and len(run.stdout) < 1000


def test_validate_lists_the_first_problems_and_counts_the_rest(cli, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nrules:\n" + "".join(f"  - {{id: r{n}, action: nope}}\n" for n in range(100)))
    run = cli("policy", "validate", str(path))
    assert run.code == 2 and run.stdout.count(": error: rules[") == 20
    assert f"{path}: error: ... and 80 more problems" in run.stdout
    assert run.stdout.rstrip().endswith("invalid (100 problems)")


def test_validate_refuses_a_file_over_the_size_limit_in_one_line(cli, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\n" + "# padding\n" * (2**20 // 10 + 1))
    run = cli("policy", "validate", str(path))
    assert run.code == 2 and run.stderr.count("\n") == 1 and "larger than 1 MiB" in run.stderr


def test_validate_takes_a_built_in_name_as_scan_does(cli):
    run = cli("policy", "validate", "strict")
    assert run.code == 0 and "strict: valid: policy strict" in run.stdout and "1 waiver" not in run.stdout
    bad_day = cli("policy", "validate", "strict", "--today", "yesterday")
    assert bad_day.code == 2 and "expected a date as YYYY-MM-DD, got 'yesterday'" in bad_day.stderr
