"""Options shared by scan, serve and rescan: --budget reads the same, with the same default, on each."""

from __future__ import annotations

import argparse

import pytest

from scanner.cli import build_parser
from scanner.commands.options import budget
from scanner.findings import Budget, BudgetUnit
from scanner.scan import DEFAULT_BUDGET

COMMANDS = {
    "scan": ["scan", "m.onnx"],
    "serve": ["serve", "--tracking-uri", "http://127.0.0.1:5000"],
    "rescan": ["rescan"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_scanning_command_takes_a_budget_with_one_default(command: str) -> None:
    parser = build_parser()
    assert parser.parse_args(COMMANDS[command]).budget == DEFAULT_BUDGET
    assert parser.parse_args([*COMMANDS[command], "--budget", "10m"]).budget == Budget(600)
    assert parser.parse_args([*COMMANDS[command], "--budget", "2Mpasses"]).budget == Budget(2e6, BudgetUnit.PASSES)
    assert parser.parse_args([*COMMANDS[command], "--budget", "0"]).budget is None


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_malformed_budget_is_refused_naming_the_forms(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*COMMANDS[command], "--budget", "10 minutes"])
    assert exit_.value.code == 2
    assert "argument --budget: expected seconds (600, 600s, 10m, 1h) or forward passes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("600", Budget(600)),
        ("600s", Budget(600)),
        ("1.5h", Budget(5400)),
        ("150000passes", Budget(150_000, BudgetUnit.PASSES)),
        ("150kpasses", Budget(150_000, BudgetUnit.PASSES)),
        ("0passes", None),
    ],
)
def test_budget_forms(text: str, expected: Budget | None) -> None:
    assert budget(text) == expected


@pytest.mark.parametrize("text", ["-5", "10M", "2mpasses", "passes", "1e9", "9" * 400, ""])
def test_budget_refusals(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="150kpasses"):
        budget(text)


def test_help_names_the_budget_forms(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert "150kpasses" in capsys.readouterr().out
