"""The board's own columns (the paper-reported-only table; each task declares its sections' columns,
``spurbench.tasks.board.Column``), and Markdown escaping for its cells."""

from __future__ import annotations

import re

from spurbench.tasks.board import Column

PAPER_ONLY_COLUMNS = (
    Column("display_name", "model", "model"),
    Column("data", "data", "text"),
    Column("benchmark", "benchmark", "text"),
    Column("accuracy", "acc. % paper", digits=1, paper=True),
    Column("mean_ap", "mean AP paper", paper=True),
    Column("mean_ap_spufix", "mean AP SpuFix paper", paper=True),
)


def md_text(text: str) -> str:
    """Literal text in a Markdown table cell: Markdown and HTML characters backslash-escaped, one line."""
    return re.sub(r"([\\`*_\[\]<>|#~!])", r"\\\1", " ".join(str(text).split()))


def md_code(text: str) -> str:
    r"""Literal text as a code span in a Markdown table cell (GitHub keeps ``\|`` there as a pipe)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


__all__ = ["PAPER_ONLY_COLUMNS", "md_code", "md_text"]
