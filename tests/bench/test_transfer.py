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
    out = tmp_path / "transfer.md"
    zoos = ["--zoo-a", str(tmp_path / "a"), "--zoo-b", str(tmp_path / "b")]
    assert main([*zoos, "--ban", "--output", str(out)]) == 0
    text = out.read_text()
    shipped = ("one-pixel, no clean data (default scan)", "one-pixel with clean data", "BAN with clean data",
               "fused with clean data")  # fmt: skip
    for configuration in shipped:
        assert f"| {configuration} | " in text, configuration
        assert f"| {configuration}: family " in text, configuration
    for head in ("synthetic", "clean+synthetic+composite"):
        assert f"head `{head}`" in text
    for setting in ("shipped on B", "shipped on A", "fit A, test B", "fit B, test A", "leave one family out (A+B)"):
        assert f"| {setting} | 3 / 3 |" in text or f"| {setting} | 6 / 6 |" in text, setting
    assert "| fit A, test B: family " in text and "| shipped on B: attack " in text


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
