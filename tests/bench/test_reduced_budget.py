"""The reduced-budget bench end to end on two models of the test zoo (real scans, full and under a budget)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


@pytest.mark.slow
def test_reduced_budget_bench_scores_each_configuration_at_full_and_reduced_settings(zoo: Path, tmp_path: Path) -> None:
    from bench.reduced_budget import main

    out = tmp_path / "reduced.md"
    assert main(["--zoo", str(zoo), "--limit", "1", "--fractions", "1", "0.25", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("2 models (1 backdoored, 1 clean)")
    for configuration in ("one_pixel", "ban", "fused"):
        assert f"| full settings | 1.00 | {configuration} |" in text, configuration
    reduced = re.findall(r"^\| 0\.25 \| ([0-9.]+) \| (one_pixel|ban|fused) \|", text, flags=re.MULTILINE)
    assert len(reduced) == 3 and all(float(share) < 1 for share, _ in reduced), reduced
    assert "- budget 0.25: one_pixel max grid" in text and "ban probed classes" in text
