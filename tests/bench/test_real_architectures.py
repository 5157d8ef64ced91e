"""The real-architectures bench end to end on one small model: both detectors scan it, under a budget that reduces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_real_architectures_bench_scans_with_both_detectors_and_says_what_the_budget_reduced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.real_architectures import main

    monkeypatch.setenv("MODEL_SCANNER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rows.json"
    argv = ["--sizes", "32", "--architectures", "resnet", "--exporters", "legacy", "--budget", "20kpasses"]
    assert main([*argv, "--clean", "64", "--threads", "1", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["parameters"] > 0 and row["torch_view_max_abs_diff"] < 1e-4
    for name in ("one_pixel", "ban"):
        assert row[name]["status"] == "scanned", row[name]
        assert 0 < row[name]["passes"] < row[name]["full_passes"], row[name]  # 10k passes each: reduced
        assert row[name]["settings"], row[name]
    assert "| resnet | 32 / 10 | legacy |" in capsys.readouterr().out
