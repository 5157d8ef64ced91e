"""A Markdown summary for a GitHub job summary or a pull-request comment: a table, then each flagged model's reasons
and signature heatmap.

Heatmaps: each PNG among a result's artifacts is linked by its path (upload the --artifacts folder to make the link
useful) and, when small, also embedded as a `data:` URI image. Job summaries and most Markdown viewers show the
embedded image; GitHub strips `data:` images from pull-request comments, where the path link remains. Pass
`embed_images=False` to leave them out (smaller comments).
"""

from __future__ import annotations

import base64
from pathlib import Path

from scanner.findings import Action, DetectorResult, ScanResult, Status
from scanner.reports.interface import Report

# Bigger images are linked, not embedded: a job summary is limited to 1 MiB, a PR comment to 65536 characters.
MAX_EMBEDDED_BYTES = 48 * 1024
ICON = {Action.BLOCK: "⛔ block", Action.WARN: "⚠️ warn", Action.ALLOW: "✅ allow"}


def render_markdown(report: Report, *, embed_images: bool = True) -> str:
    lines = [
        f"## model-scanner: {_headline(report)}",
        "",
        f"Policy `{report.policy}` · model-scanner {report.scanner_version}",
        "",
    ]
    lines += _table(report.results)
    flagged = [result for result in report.results if _is_flagged(result)]
    if flagged:
        lines += ["", "### Flagged models", ""]
        for result in flagged:
            lines += _details(result, embed_images=embed_images)
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
            _score(result.score),
            *(_detector_cell(result.detectors.get(name)) for name in names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _detector_cell(result: DetectorResult | None) -> str:
    if result is None:
        return "—"
    if result.status is not Status.SCANNED:
        return str(result.status.value).replace("_", " ")
    target = f" (class {result.target_class})" if result.target_class is not None else ""
    return f"{_score(result.score)}{target}"


def _is_flagged(result: ScanResult) -> bool:
    return result.status is Status.ERROR or (result.decision is not None and result.decision.action is not Action.ALLOW)


def _details(result: ScanResult, *, embed_images: bool) -> list[str]:
    action = ICON[result.decision.action] if result.decision is not None else "no decision"
    lines = [f"#### `{_escape(result.target)}`: {action}", ""]
    if result.error is not None:
        lines.append(f"- error ({result.error.kind}): {_escape(result.error.message)}")
    for reason in result.decision.reasons if result.decision is not None else ():
        lines.append(f"- {_escape(reason)}")
    for name, detector in result.detectors.items():
        if detector.reason and detector.status is not Status.SCANNED:
            lines.append(f"- {name}: {detector.status.value}: {_escape(detector.reason)}")
    if result.sha256:
        lines.append(f"- sha256 `{result.sha256}`")
    for artifact in result.artifacts:
        lines += _image(Path(artifact), embed=embed_images)
    lines.append("")
    return lines


def _image(path: Path, *, embed: bool) -> list[str]:
    if path.suffix.lower() != ".png":
        return [f"- artifact: `{path}`"]
    lines = [f"- signature heatmap: [`{path.name}`]({path.as_posix()})"]
    try:
        data = path.read_bytes() if embed and path.stat().st_size <= MAX_EMBEDDED_BYTES else None
    except OSError:
        data = None
    if data is not None:
        encoded = base64.b64encode(data).decode("ascii")
        lines += ["", f'<img alt="signature heatmap of {path.name}" src="data:image/png;base64,{encoded}">', ""]
    return lines


def _score(score: float | None) -> str:
    return "—" if score is None else f"{score:.2f}"


def _escape(text: str) -> str:
    """Keep paths and messages from breaking the table or injecting markup."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
