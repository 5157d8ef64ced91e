"""The transfer bench end to end on two tiny second zoos (real training, real ONNX Runtime, the detector's features)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_transfer_bench_reports_every_setting_with_its_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.transfer import main
    from scanner.zoo.second.build import build_second_zoo

    monkeypatch.setenv("MODEL_SCANNER_CACHE", str(tmp_path / "cache"))
    build_second_zoo(3, 3, tmp_path / "a", seed=0, tiny=True)
    build_second_zoo(3, 3, tmp_path / "b", seed=1, tiny=True)
    build_second_zoo(2, 0, tmp_path / "gate", seed=3, tiny=True)
    out = tmp_path / "transfer.md"
    zoos = ["--zoo-a", str(tmp_path / "a"), "--zoo-b", str(tmp_path / "b"), "--gate-zoo", str(tmp_path / "gate")]
    assert main([*zoos, "--ban", "--output", str(out)]) == 0
    text = out.read_text()
    assert f"and of the 2 clean models of the gate zoo(s) {tmp_path / 'gate'}, whichever is higher." in text
    shipped = ("one-pixel, no clean data (default scan)", "one-pixel with clean data", "BAN with clean data",
               "fused with clean data")  # fmt: skip
    for configuration in shipped:
        assert f"| {configuration} | 3 / 3 |" in text, configuration  # as shipped, on zoo B
        assert f"| {configuration}: family " in text, configuration
        assert f"| {configuration}: recipe " in text, configuration  # the second zoo draws optimiser and schedule
        assert f"| {configuration}: inputs normalised |" in text, configuration  # and mean/std normalisation
        # The shipped recipe refitted per setting, with its counts, the worst row, and per-group rows.
        for setting in ("fit A, test B", "fit B, test A", "leave one family out (A+B)"):
            counts = "6 / 6" if setting.startswith("leave") else "3 / 3"
            assert f"| {configuration} | {setting} | {counts} |" in text, (configuration, setting)
        assert f"| **{configuration}** | **worst** |" in text, configuration
        assert f"| {configuration}, fit A, test B: family " in text, configuration


@pytest.mark.slow
def test_without_zoo_a_only_the_shipped_detectors_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.transfer import main
    from scanner.zoo.second.build import build_second_zoo

    monkeypatch.setenv("MODEL_SCANNER_CACHE", str(tmp_path / "cache"))
    build_second_zoo(2, 2, tmp_path / "b", seed=2, tiny=True)
    out = tmp_path / "transfer.md"
    assert main(["--zoo-b", str(tmp_path / "b"), "--output", str(out)]) == 0
    text = out.read_text()
    assert "| one-pixel with clean data | 2 / 2 |" in text
    assert "BAN" not in text and "fit A, test B" not in text
