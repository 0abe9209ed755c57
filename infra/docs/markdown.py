"""Markdown text for the generated pages: table cells, code spans, tables.

Descriptions come from docstrings and comments written for code, not for Markdown: a pipe or a
``<name>`` in them would break a table or vanish as HTML, so every cell goes through :func:`cell`.
"""

from __future__ import annotations

import re


def cell(text: str) -> str:
    """Text for a Markdown table cell: one line; outside code spans pipes escaped and ``<name>`` shown, not
    taken for HTML (``<br>`` excepted: it breaks the cell's line)."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(part if part.startswith("`") else escape(part).replace("|", "\\|") for part in parts)


def escape(text: str) -> str:
    """Angle brackets as text, so that ``<home>`` is read, not dropped as an unknown tag; ``<br>`` stays."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("&lt;br&gt;", "<br>")


def code(text: str) -> str:
    """A code span that holds any text, backticks included (a double-backtick span then)."""
    return f"``{text}``" if "`" in text else f"`{text}`"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; each value is made a :func:`cell`, so a caller passes text as it has it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
