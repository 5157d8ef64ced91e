import json

import jsonschema

from scanner.findings import DetectorResult, ScanResult, Status, Verdict
from scanner.reports import Report, render
from scanner.reports.json_report import report_schema
from tests.reports.sample import sample_report


def test_json_report_validates_against_its_schema_and_has_designs_keys():
    document = json.loads(render(sample_report(), "json"))
    jsonschema.Draft202012Validator(report_schema()).validate(document)
    assert document["schema"] == "model-scanner/report/v1"
    assert document["policy"] == "default@0123456789ab" and document["scanner_version"] == "0.1.0"
    first = document["results"][0]
    assert set(first) >= {"target", "sha256", "status", "error", "score", "verdict", "detectors", "decision"}
    assert first["detectors"]["one_pixel"] == {
        "status": "scanned",
        "score": 0.05,
        "target_class": 2,
        "forward_passes": 4097,
        "seconds": 1.5,
        "reason": None,
    }
    assert first["decision"] == {"action": "allow", "reasons": ["no rule fired: allowed"], "rule": None}
    broken = document["results"][2]
    assert broken["status"] == "error" and broken["error"] == {
        "kind": "truncated",
        "message": "broken.onnx was cut short",
    }
    assert broken["score"] is None and broken["verdict"] == "unknown" and broken["sha256"] is None


def test_the_schema_rejects_a_report_that_breaks_it():
    document = json.loads(render(sample_report(), "json"))
    document["results"][0]["verdict"] = "probably fine"
    errors = list(jsonschema.Draft202012Validator(report_schema()).iter_errors(document))
    assert [list(e.absolute_path) for e in errors] == [["results", 0, "verdict"]]


def test_numpy_scalars_from_detectors_are_written_as_plain_numbers():
    import numpy as np

    detector = DetectorResult("one_pixel", Status.SCANNED, score=np.float32(0.5), target_class=np.int64(4))
    result = ScanResult(
        "m.onnx", "55" * 32, Status.SCANNED, Verdict.BACKDOORED, np.float64(0.5), detectors={"one_pixel": detector}
    )
    document = json.loads(render(Report((result,), "p@x", "0.1.0"), "json"))
    assert document["results"][0]["detectors"]["one_pixel"]["target_class"] == 4
    jsonschema.Draft202012Validator(report_schema()).validate(document)
