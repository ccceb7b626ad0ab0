"""What a task puts on the board: its sections (one table per benchmark, with what goes with it), the
rows of the board's CSV, and files beside the Markdown board; and the columns of every table, each
declared once for the Markdown board and the page."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from markupsafe import Markup

from spurbench.files import slug


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def fmt(value: float | None, digits: int = 3, signed: bool = False) -> str:
    return "–" if value is None or missing(value) else f"{value:{'+' if signed else ''}.{digits}f}"


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
            return fmt(row[self.key], self.digits, self.signed)
        return "–" if missing(row[self.key]) else str(row[self.key])

    @property
    def css(self) -> str:
        return " ".join(([] if self.kind == "number" else ["text"]) + (["paper"] if self.paper else []))

    @property
    def md_header(self) -> str:
        return self.header.replace("paper", "*paper*") if self.paper else self.header


@dataclass(frozen=True)
class ModelPart:
    """A model's own table under a section (e.g. its worst classes), on the page."""

    row: Mapping[str, Any]  # the model's row of the section (``model``, ``display_name``)
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class BoardSection:
    """One benchmark's part of the board: its ranked table, and what goes with it."""

    name: str  # the benchmark
    revision: str | None
    protocol: str
    columns: tuple[Column, ...]
    rows: Sequence[Mapping[str, Any]]  # each with ``model`` and ``display_name`` (``model`` columns show them)
    legend: str = ""  # Markdown under the table: what its columns mean
    filterable: bool = False  # a filter box above the table on the page
    figures: dict[str, Markup] = field(default_factory=dict)  # name -> inline SVG (the task's own plots)
    pngs: list[str] = field(default_factory=list)  # the same plots as PNG files beside the Markdown board
    models: list[ModelPart] = field(default_factory=list)  # per model, linked from its name in the table

    @property
    def id(self) -> str:
        return f"board-{slug(self.name)}"


@dataclass(frozen=True)
class TaskBoard:
    """A task's whole contribution to the board."""

    sections: list[BoardSection] = field(default_factory=list)
    table: pd.DataFrame | None = None  # its rows of leaderboard.csv / leaderboard.json
    files: dict[str, bytes] = field(default_factory=dict)  # written beside the Markdown board (e.g. PNG plots)


__all__ = ["BoardSection", "Column", "ModelPart", "TaskBoard", "fmt", "missing"]
