from PIL import Image

from scanner.reports import render
from scanner.reports.markdown import render_markdown
from tests.reports.sample import sample_report


def test_summary_table_lists_every_target_with_its_decision():
    text = render(sample_report(), "markdown")
    assert text.startswith("## model-scanner: 5 targets, 2 blocked, 1 warned, 1 could not be scanned\n")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == "| Decision | Model | Status | Verdict | Score | ban | one_pixel |"
    assert len(table) == 1 + 5
    assert "| ✅ allow | `models/clean.onnx` | scanned | clean | 0.04 | 0.03 (class 7) | 0.05 (class 2) |" in table
    assert "`models/sub dir/trojan\\|1.onnx`" in text  # a pipe in a path does not break the table


def test_flagged_models_get_reasons_and_their_heatmap_by_name_only(tmp_path):
    heatmap = tmp_path / "trojan-1a2b3c4d-one-pixel.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(heatmap)
    text = render_markdown(sample_report(heatmap))
    flagged = text.split("### Flagged models", 1)[1]
    assert "#### `models/sub dir/trojan\\|1.onnx`: ⛔ block" in flagged
    assert "- rule block-backdoored: verdict backdoored -&gt; block" in flagged
    assert "- ban: not_applicable: no clean sample data (--clean-data)" in flagged
    assert "- signature heatmap: `trojan-1a2b3c4d-one-pixel.png`" in flagged
    # what the detector saw, in words (escaped like every message)
    assert (
        "- one_pixel 0.95 (class 3): the signature of class 3 peaks at row 4, column 5; a &lt;b&gt; square moves 90% "
        "of images" in flagged
    )
    # GitHub strips data: images, and a path on the machine that scanned means nothing to the reader
    assert "data:" not in text and str(tmp_path) not in text and "](/" not in text
    assert "#### `models/clean.onnx`" not in flagged


def test_a_flagged_model_lists_what_each_detector_saw_the_highest_score_first():
    from scanner.findings import Action, Decision, DetectorResult, ScanResult, Status, Verdict
    from scanner.reports import Report

    warned = ScanResult(
        "models/both.onnx",
        "55" * 32,
        Status.SCANNED,
        verdict=Verdict.CLEAN,
        score=0.4,
        detectors={
            "one_pixel": DetectorResult("one_pixel", Status.SCANNED, score=0.2, target_class=1, evidence=("low",)),
            "ban": DetectorResult("ban", Status.SCANNED, score=0.4, target_class=5, evidence=("high", "higher")),
        },
        decision=Decision(Action.WARN, ("rule warn-suspicious: score 0.4 -> warn",), rule="warn-suspicious"),
    )
    flagged = render_markdown(Report((warned,), "default@0123456789ab", "0.1.0")).split("### Flagged models", 1)[1]
    saw = [line for line in flagged.splitlines() if line.startswith(("- ban", "- one_pixel"))]
    assert saw == ["- ban 0.40 (class 5): high; higher", "- one_pixel 0.20 (class 1): low"]
