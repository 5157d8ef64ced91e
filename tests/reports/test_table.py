import re

from scanner.reports import render
from tests.reports.sample import sample_report


def test_a_row_per_target_with_decision_verdict_and_detector_scores():
    lines = render(sample_report(), "table").splitlines()
    assert lines[0].split() == ["DECISION", "MODEL", "STATUS", "VERDICT", "SCORE", "BAN", "ONE_PIXEL"]
    assert re.split(r"\s{2,}", lines[1]) == [
        "allow",
        "models/clean.onnx",
        "scanned",
        "clean",
        "0.04",
        "0.03 (class 7)",
        "0.05 (class 2)",
    ]
    assert lines[2].startswith("block") and "models/sub dir/trojan|1.onnx" in lines[2]
    columns = {line.index("scanned") for line in lines[1:4] if "scanned" in line}
    assert len(columns) == 1  # aligned


def test_flagged_targets_get_their_reasons_and_a_footer_points_tools_at_json():
    text = render(sample_report(), "table")
    assert "models/sub dir/trojan|1.onnx:\n  - rule block-backdoored: verdict backdoored -> block" in text
    assert "/abs/broken.onnx:\n  - error (truncated): broken.onnx was cut short" in text
    assert "models/clean.onnx:" not in text
    assert "5 targets: 2 blocked, 1 warned, 1 could not be scanned · policy default@0123456789ab" in text
    assert "--format json" in text


def test_control_characters_in_a_target_cannot_move_the_cursor():
    import dataclasses

    report = sample_report()
    evil = dataclasses.replace(report.results[1], target="models/\x1b[2Jevil\nforged.onnx")
    text = render(dataclasses.replace(report, results=(evil,)), "table")
    assert "\x1b" not in text and "evil forged.onnx" in text
