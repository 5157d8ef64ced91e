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
