import json

import jsonschema
import pytest

from scanner.reports import render
from scanner.reports.rules import RULES
from tests.reports.sample import sample_report


@pytest.fixture(scope="module")
def sarif_schema(repo_root):
    return json.loads((repo_root / "tests" / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sarif():
    return json.loads(render(sample_report(), "sarif"))


def test_sarif_validates_against_the_official_oasis_schema(sarif, sarif_schema):
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)


def test_rules_carry_title_help_and_security_severity(sarif):
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == [rule.id for rule in RULES]
    assert len({rule.id for rule in RULES}) == len(RULES)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
        assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0


def test_one_result_per_finding_with_level_location_and_fingerprint(sarif):
    results = sarif["runs"][0]["results"]
    by_rule = [
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["level"]) for r in results
    ]
    assert by_rule == [
        ("MS001", "models/sub%20dir/trojan%7C1.onnx", "error"),
        ("MS002", "file:///abs/broken.onnx", "error"),
        ("MS003", "models/tabular.onnx", "warning"),
        ("MS004", "models/half.onnx", "note"),
    ]
    for result in results:
        location = result["locations"][0]["physicalLocation"]
        assert location["region"] == {"startLine": 1}
        assert len(result["partialFingerprints"]["modelScannerFinding/v1"]) == 64
        assert result["message"]["text"]
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    assert "score 0.950, target class 3" in results[0]["message"]["text"]
    assert results[0]["message"]["text"].endswith(
        ". one_pixel: the signature of class 3 peaks at row 4, column 5; a <b> square moves 90% of images"
    )


def test_fingerprints_follow_the_model_digest_not_its_path():
    report = sample_report()
    moved = report.__class__(
        tuple(r.__class__(**{**r.__dict__, "target": "elsewhere/" + r.target.lstrip("/")}) for r in report.results),
        report.policy,
        report.scanner_version,
    )
    prints = [r["partialFingerprints"] for r in json.loads(render(report, "sarif"))["runs"][0]["results"]]
    moved_prints = [r["partialFingerprints"] for r in json.loads(render(moved, "sarif"))["runs"][0]["results"]]
    assert prints[0] == moved_prints[0]  # same model digest, same rule: same alert
    assert prints[1] != moved_prints[1]  # an unreadable file has no digest: its path stands in
    assert len({json.dumps(p) for p in prints}) == len(prints)
