"""`flask logs report`'s table: the quality report (handlers/store/quality.py) as a terminal
reads it, one row per customer language with the rates beside the counts they come from."""

from __future__ import annotations

from typing import Any

INCOMPLETE = ("escalated", "stuck", "new_action", "abandoned")


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def language_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = [["language", "conversations", "containment", "recognition", "requests",
             "completion", "actions", *INCOMPLETE, "translation failed", "unsupported"]]
    for code, figures in [*report["languages"].items(), ("all", report["all"])]:
        rows.append([code, str(figures["conversations"]), rate(figures["containment"]),
                     rate(figures["recognition"]), str(figures["requests"]),
                     rate(figures["completion"]), str(figures["actions_started"]),
                     *(str(figures["incomplete"][reason]) for reason in INCOMPLETE),
                     str(figures["translation_failed"]), str(figures["unsupported"])])
    return rows


def action_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = [["started", "completed", *INCOMPLETE, "language", "action"]]
    for entry in report["actions"]:
        rows.append([str(entry["started"]), str(entry["completed"]),
                     *(str(entry["incomplete"][reason]) for reason in INCOMPLETE),
                     entry["language"], f"{entry['title']} ({entry['action']})"])
    return rows


def columns(rows: list[list[str]]) -> list[str]:
    """The rows as aligned columns: text to the left, figures to the right."""
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) if not cell[:1].isdigit() and cell not in ("-",)
                 and not cell.endswith("%") else cell.rjust(width)
                 for cell, width in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
    return lines


def table(report: dict[str, Any]) -> str:
    """The whole report as text."""
    lines = [f"quality by language, {report['since']} to {report['until']}", ""]
    lines += columns(language_rows(report))
    lines += ["", "actions, most started first:"]
    lines += columns(action_rows(report)) if report["actions"] else ["  (none)"]
    return "\n".join(lines)
