"""A plain-text table for people at a terminal: one row per target, then the reasons of each flagged one.

`scan` writes it when stdout is a terminal and no --format is given; pipes and files get JSON, which tools read.
"""

from __future__ import annotations

from scanner.findings import Action, ScanResult
from scanner.reports.interface import Report, detector_cell, score_text

MAX_TARGET_WIDTH = 60


def render_table(report: Report) -> str:
    names = sorted({name for result in report.results for name in result.detectors})
    header = ["DECISION", "MODEL", "STATUS", "VERDICT", "SCORE", *(name.upper() for name in names)]
    rows = [header] + [_row(result, names) for result in report.results]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    for result in report.results:
        reasons = _reasons(result)
        if reasons:
            lines += ["", f"{_shown(result.target)}:"] + [f"  - {reason}" for reason in reasons]
    blocked, warned = report.count(Action.BLOCK), report.count(Action.WARN)
    lines += [
        "",
        f"{len(report.results)} target{'s' if len(report.results) != 1 else ''}: {blocked} blocked, {warned} warned,"
        f" {report.errors} could not be scanned · policy {report.policy} · model-scanner {report.scanner_version}",
        "(for tools: --format json, which is also what a pipe or --output gets)",
    ]
    return "\n".join(lines) + "\n"


def _row(result: ScanResult, names: list[str]) -> list[str]:
    return [
        result.decision.action.value if result.decision is not None else "-",
        _shown(result.target),
        result.status.value,
        result.verdict.value,
        score_text(result.score, missing="-"),
        *(detector_cell(result.detectors.get(name), missing="-") for name in names),
    ]


def _reasons(result: ScanResult) -> list[str]:
    if result.decision is None or result.decision.action is Action.ALLOW:
        return [f"error ({result.error.kind}): {_line(result.error.message)}"] if result.error is not None else []
    reasons = [_line(reason) for reason in result.decision.reasons]
    if result.error is not None:
        reasons.insert(0, f"error ({result.error.kind}): {_line(result.error.message)}")
    reasons += [f"heatmap: {artifact}" for artifact in result.artifacts]
    return reasons


def _line(text: str) -> str:
    """One line, no control characters: a model's path or message must not move the cursor or forge a row."""
    return "".join(c if c.isprintable() else " " for c in text)


def _shown(target: str) -> str:
    target = _line(target)
    return target if len(target) <= MAX_TARGET_WIDTH else "..." + target[-(MAX_TARGET_WIDTH - 3) :]
