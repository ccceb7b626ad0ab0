"""What the board shows, declared once for the Markdown board and the page: the columns, how a cell is
formatted, the legend that says in words what each metric is, and Markdown escaping."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

# What each column holds, in words, under every board (Markdown and page).
METRIC_LEGEND = (
    "**mAUC** is the mean over classes of the ROC-AUC separating a class's own images from its "
    "spurious-only images, ranked by the softmax probability of the class: the paper's definition of "
    "the spurious score. **mean AP** is the mean over classes of the average precision of the same "
    "ranking: the number the authors' code computes and the paper's Table 2 prints under the name "
    '"mAUC". Paper figures (*paper*) are therefore compared with the measured mean AP, never with '
    "the ROC-AUC; the *AP − paper* cells exist only for results produced under the paper's protocol "
    "(`--protocol paper`). **gain** is mAUC after SpuFix minus mAUC plain; **acc.** is top-1 accuracy "
    "on the benchmark's class images."
)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _fmt(value: float | None, digits: int = 3, signed: bool = False) -> str:
    return "–" if missing(value) else f"{value:{'+' if signed else ''}.{digits}f}"


def _ci(row: Mapping) -> str:
    """mAUC with its bootstrap interval, when the result has one."""
    return _fmt(row["mauc"]) if missing(row["mauc_ci_low"]) else f"{row['mauc']:.3f} [{row['mauc_ci_low']:.3f}, {row['mauc_ci_high']:.3f}]"


@dataclass(frozen=True)
class Column:
    """One column of a rendered table, declared once for the Markdown board and the page alike."""

    key: str  # the row's field the cell shows (and the page sorts by)
    header: str
    kind: Literal["number", "text", "model"] = "number"  # model: the display name, linked to its section
    digits: int = 3
    signed: bool = False
    paper: bool = False  # reported by the paper, not measured: italic on the page, "*paper*" in Markdown
    show: Callable[[Mapping], str] | None = None  # the cell's text from its row, when not just the value

    def cell(self, row: Mapping) -> str:
        if self.show is not None:
            return self.show(row)
        if self.kind == "number":
            return _fmt(row[self.key], self.digits, self.signed)
        return "–" if missing(row[self.key]) else str(row[self.key])

    @property
    def css(self) -> str:
        return " ".join(([] if self.kind == "number" else ["text"]) + (["paper"] if self.paper else []))

    @property
    def md_header(self) -> str:
        return self.header.replace("paper", "*paper*") if self.paper else self.header


BOARD_COLUMNS = (
    Column("rank", "rank", digits=0),
    Column("display_name", "model", "model"),
    Column("data_group", "data", "text"),
    Column("accuracy", "acc."),
    Column("mauc", "mAUC (ROC-AUC) [95% CI]", show=_ci),
    Column("mauc_spufix", "mAUC SpuFix"),
    Column("spufix_gain", "gain", signed=True),
    Column("mean_ap", "mean AP"),
    Column("mean_ap_spufix", "mean AP SpuFix"),
    Column("paper_mean_ap", "mean AP paper", paper=True),
    Column("mean_ap_minus_paper", "AP − paper", signed=True, paper=True),
    Column("paper_mean_ap_spufix", "AP SpuFix paper", paper=True),
    Column("mean_ap_spufix_minus_paper", "AP SpuFix − paper", signed=True, paper=True),
)
PAPER_ONLY_COLUMNS = (
    Column("display_name", "model", "model"),
    Column("data", "data", "text"),
    Column("benchmark", "benchmark", "text"),
    Column("accuracy", "acc. % paper", digits=1, paper=True),
    Column("mean_ap", "mean AP paper", paper=True),
    Column("mean_ap_spufix", "mean AP SpuFix paper", paper=True),
)
# A model's worst classes (page only); the group column only where the benchmark groups its classes.
WORST_COLUMNS = (
    Column("class_index", "class", digits=0),
    Column("class_name", "name", "text"),
    Column("auc", "AUC"),
    Column("feature", "spurious feature", "text"),
    Column("spurious_pred_rate", "spurious images classified as the class", show=lambda row: f"{row['spurious_pred_rate']:.0%}"),
)
GROUP_COLUMN = Column("group", "group", "text")  # shown after the class name


def md_text(text: str) -> str:
    """Literal text in a Markdown table cell: Markdown and HTML characters backslash-escaped, one line."""
    return re.sub(r"([\\`*_\[\]<>|#~!])", r"\\\1", " ".join(str(text).split()))


def md_code(text: str) -> str:
    r"""Literal text as a code span in a Markdown table cell (GitHub keeps ``\|`` there as a pipe)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"
