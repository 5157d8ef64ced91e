"""A Markdown summary for a GitHub job summary or a pull-request comment: a table, then each flagged model's reasons
and signature heatmap.

Heatmaps: each picture among a result's artifacts is named by its file name only. GitHub strips `data:` images from
job summaries and comments, and a local path means nothing to a reader elsewhere: the pictures travel as files (the
--artifacts folder; the GitHub Action uploads it as a workflow artifact and links it under the summary).
"""

from __future__ import annotations

from pathlib import PurePath

from scanner.findings import Action, ScanResult, Status
from scanner.reports.interface import Report, detector_cell, reduced_note, score_text

ICON = {Action.BLOCK: "⛔ block", Action.WARN: "⚠️ warn", Action.ALLOW: "✅ allow"}


def render_markdown(report: Report) -> str:
    lines = [
        f"## model-scanner: {_headline(report)}",
        "",
        f"Policy `{report.policy}` · model-scanner {report.scanner_version}",
        "",
    ]
    lines += _table(report.results)
    reduced = [
        f"- `{_escape(result.target)}` {name}: {_escape(note)}"
        for result in report.results
        for name, detector in result.detectors.items()
        if (note := reduced_note(detector))
    ]
    if reduced:
        lines += ["", "Detectors that reduced their settings to fit the budget (`--budget`):", "", *reduced]
    flagged = [result for result in report.results if _is_flagged(result)]
    if flagged:
        lines += ["", "### Flagged models", ""]
        for result in flagged:
            lines += _details(result)
        if any(result.artifacts for result in flagged):
            lines += ["Heatmaps are PNG files named after their model, in the scan's artifacts (`--artifacts` folder)."]
    return "\n".join(lines).rstrip() + "\n"


def _headline(report: Report) -> str:
    parts = [f"{len(report.results)} target{'s' if len(report.results) != 1 else ''}"]
    parts += [
        f"{report.count(action)} {label}" for action, label in ((Action.BLOCK, "blocked"), (Action.WARN, "warned"))
    ]
    parts.append(f"{report.errors} could not be scanned")
    return ", ".join(parts)


def _table(results: tuple[ScanResult, ...]) -> list[str]:
    names = sorted({name for result in results for name in result.detectors})
    header = ["Decision", "Model", "Status", "Verdict", "Score", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        cells = [
            ICON[result.decision.action] if result.decision is not None else "—",
            f"`{_escape(result.target)}`",
            result.status.value,
            result.verdict.value,
            score_text(result.score, missing="—"),
            *(detector_cell(result.detectors.get(name), missing="—") for name in names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _is_flagged(result: ScanResult) -> bool:
    return result.status is Status.ERROR or (result.decision is not None and result.decision.action is not Action.ALLOW)


def _details(result: ScanResult) -> list[str]:
    action = ICON[result.decision.action] if result.decision is not None else "no decision"
    lines = [f"#### `{_escape(result.target)}`: {action}", ""]
    if result.error is not None:
        lines.append(f"- error ({result.error.kind}): {_escape(result.error.message)}")
    for reason in result.decision.reasons if result.decision is not None else ():
        lines.append(f"- {_escape(reason)}")
    for name, detector in result.detectors.items():
        if detector.reason and detector.status is not Status.SCANNED:
            lines.append(f"- {name}: {detector.status.value}: {_escape(detector.reason)}")
    # What each detector saw, the highest score (the one the fused score follows) first.
    scanned = [(name, d) for name, d in result.detectors.items() if d.status is Status.SCANNED and d.evidence]
    for name, detector in sorted(scanned, key=lambda item: -(item[1].score or 0.0)):
        said = "; ".join(_escape(line) for line in detector.evidence)
        lines.append(f"- {name} {detector_cell(detector, missing='—')}: {said}")
    if result.sha256:
        lines.append(f"- sha256 `{result.sha256}`")
    for artifact in result.artifacts:
        name = _escape(PurePath(artifact).name).replace("`", "'")
        kind = "signature heatmap" if name.lower().endswith(".png") else "artifact"
        lines.append(f"- {kind}: `{name}`")
    lines.append("")
    return lines


def _escape(text: str) -> str:
    """Keep paths and messages from breaking the table or injecting markup."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
