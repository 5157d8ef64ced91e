"""Report formats, registered explicitly by their --format name: json, sarif, markdown, table."""

from __future__ import annotations

import enum

from scanner.reports.interface import Renderer, Report
from scanner.reports.json_report import render_json
from scanner.reports.markdown import render_markdown
from scanner.reports.sarif import render_sarif
from scanner.reports.table import render_table


class ReportFormat(str, enum.Enum):
    JSON = "json"
    SARIF = "sarif"
    MARKDOWN = "markdown"
    TABLE = "table"  # for people at a terminal


RENDERERS: dict[ReportFormat, Renderer] = {
    ReportFormat.JSON: render_json,
    ReportFormat.SARIF: render_sarif,
    ReportFormat.MARKDOWN: render_markdown,
    ReportFormat.TABLE: render_table,
}


def render(report: Report, report_format: ReportFormat | str) -> str:
    return RENDERERS[ReportFormat(report_format)](report)


__all__ = ["RENDERERS", "Renderer", "Report", "ReportFormat", "render"]
