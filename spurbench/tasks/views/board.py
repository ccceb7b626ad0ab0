"""The views part of the board: one section per views benchmark, with the columns its plugin declares,
models ranked by its headline."""

from __future__ import annotations

from typing import Any

from spurbench.heads import PLAIN, SPUFIX
from spurbench.results import ViewResult
from spurbench.tasks.board import BoardSection, Column, TaskBoard, missing
from spurbench.tasks.views.declared import headline_keys, metric_specs


def _input_words(result: ViewResult) -> str:
    """The views' geometry, e.g. "256 px, crop 0.95, bicubic"."""
    p = result.protocol
    height, width = p.input_size[1:]
    size = f"{height} px" if height == width else f"{height}x{width} px"
    return f"{size}, crop {p.crop_pct:g}" + (f", {p.interpolation}" if p.interpolation else "")


def views_board(results: list[ViewResult], info: dict[str, dict]) -> TaskBoard:
    """Per views benchmark: its columns (the plugin's declared metrics) and its rows, best headline first."""
    sections = []
    for name in sorted({r.benchmark.name for r in results}):
        specs = tuple(metric_specs(name).values())
        keys = headline_keys(name)
        headline = keys[0] if keys is not None else None
        rows: list[dict[str, Any]] = []
        for r in (r for r in results if r.benchmark.name == name):
            reg = info.get(r.model.name, {})
            metrics = r.heads[PLAIN].metrics
            fixed = r.heads[SPUFIX].metrics if SPUFIX in r.heads else {}
            rows.append(
                {
                    "benchmark": name,
                    "model": r.model.name,
                    "display_name": reg.get("display_name") or r.model.name,
                    "data_group": reg.get("data") or "unknown",
                    **{m.key: metrics.get(m.key) for m in specs},
                    **({f"{headline}_spufix": fixed.get(headline)} if headline else {}),
                    "images": r.benchmark.num_positives,
                    "input": _input_words(r),
                }
            )
        rows.sort(key=lambda row: (missing(row.get(headline or "")), -(row.get(headline or "") or 0.0)))
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
        columns = (
            Column("rank", "rank", digits=0),
            Column("display_name", "model", "model"),
            Column("data_group", "data", "text"),
            *(Column(m.key, m.header, signed=m.signed) for m in specs),
            *(
                (Column(f"{headline}_spufix", f"{next(m.header for m in specs if m.key == headline)} SpuFix", signed=True),)
                if headline and any(not missing(r[f"{headline}_spufix"]) for r in rows)
                else ()
            ),
            Column("input", "input", "text"),  # each model's geometry under the protocol (e.g. its own train size)
            Column("images", "images", digits=0),  # a views benchmark may be scored on a user's partial copy of its data
        )
        first = next(r for r in results if r.benchmark.name == name)
        legend = " ".join(f"**{m.header}**: {m.description}." for m in specs)
        legend += f" **protocol** `{first.protocol.name}`: {first.protocol.description}."  # one protocol per board (build checks it)
        sections.append(BoardSection(name, first.benchmark.revision, first.protocol.name, columns, rows, legend=legend))
    return TaskBoard(sections)


__all__ = ["views_board"]
