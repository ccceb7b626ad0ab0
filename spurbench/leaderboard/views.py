"""The board's parts beyond the spurious-AUC tables: one section per views benchmark with the columns its
plugin declares, the cross-benchmark table (each benchmark's headline per model, "–" where a model has
no result, never 0), and the example pictures each plugin offers (only what its data's licence allows)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from markupsafe import Markup

from spurbench.benchmarks import BENCHMARKS, get_benchmark
from spurbench.files import slug
from spurbench.heads import PLAIN, SPUFIX
from spurbench.leaderboard.columns import Column, missing
from spurbench.results import AnyResult, Result, ViewResult

EXAMPLES_PER_BENCHMARK = 3
THUMBNAIL = 200  # px, the longer side of a picture on the board


def _plugin(name: str):
    return get_benchmark(name) if name in BENCHMARKS.names() else None


def view_sections(results: list[ViewResult], info: dict[str, dict]) -> list[dict]:
    """Per views benchmark: its columns (the plugin's declared metrics) and its rows, best headline first."""
    sections = []
    for name in sorted({r.benchmark.name for r in results}):
        plugin = _plugin(name)
        specs = plugin.view_metric_specs if plugin is not None else ()
        headline = plugin.headline[0] if plugin is not None else None
        rows = []
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
        rows.sort(key=lambda row: (missing(row.get(headline)), -(row.get(headline) or 0.0)))
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
        sections.append(
            {
                "name": name,
                "id": f"board-{slug(name)}",
                "revision": first.benchmark.revision,
                "protocol": first.protocol.name,
                "columns": columns,
                "rows": rows,
                "legend": legend,
            }
        )
    return sections


def _input_words(result: ViewResult) -> str:
    """The views' geometry, e.g. "256 px, crop 0.95, bicubic"."""
    p = result.protocol
    height, width = p.input_size[1:]
    size = f"{height} px" if height == width else f"{height}x{width} px"
    return f"{size}, crop {p.crop_pct:g}" + (f", {p.interpolation}" if p.interpolation else "")


def _headline(result: AnyResult) -> tuple[float | None, float | None, float | None]:
    if isinstance(result, Result):
        a = result.heads[PLAIN].aggregate
        return a.mauc, a.mauc_ci_low, a.mauc_ci_high
    plugin = _plugin(result.benchmark.name)
    if plugin is None:
        return None, None, None
    key, low, high = plugin.headline
    metrics = result.heads[PLAIN].metrics
    return metrics.get(key), metrics.get(low) if low else None, metrics.get(high) if high else None


def _headline_header(name: str) -> str:
    plugin = _plugin(name)
    if plugin is None or plugin.task != "views":
        return f"{name}: mAUC [95% CI]"
    key = plugin.headline[0]
    return f"{name}: " + next((m.header for m in plugin.view_metric_specs if m.key == key), key)


def _with_ci(key: str, signed: bool):
    def show(row) -> str:
        value, low, high = row[key], row[f"{key}__low"], row[f"{key}__high"]
        if missing(value):
            return "–"
        text = f"{value:{'+' if signed else ''}.3f}"
        return text if missing(low) else f"{text} [{low:.3f}, {high:.3f}]"

    return show


def cross_benchmark(results: list[AnyResult], info: dict[str, dict]) -> tuple[tuple[Column, ...], list[dict]]:
    """One row per model, one column per benchmark: its headline (with CI where it has one), "–" where
    the model has no result on that benchmark."""
    names = sorted({r.benchmark.name for r in results})
    by_model: dict[str, dict] = {}
    for r in results:
        reg = info.get(r.model.name, {})
        row = by_model.setdefault(
            r.model.name,
            {
                "model": r.model.name,
                "benchmark": r.benchmark.name,
                "display_name": reg.get("display_name") or r.model.name,
                "data_group": reg.get("data") or "unknown",
            },
        )
        value, low, high = _headline(r)
        key = f"b_{slug(r.benchmark.name)}"
        row[key], row[f"{key}__low"], row[f"{key}__high"] = value, low, high
    rows = sorted(by_model.values(), key=lambda row: row["display_name"])
    for row in rows:
        for name in names:
            key = f"b_{slug(name)}"
            for suffix in ("", "__low", "__high"):
                row.setdefault(key + suffix, None)
    columns = (
        Column("display_name", "model", "model"),
        Column("data_group", "data", "text"),
        *(
            Column(
                f"b_{slug(n)}", _headline_header(n), show=_with_ci(f"b_{slug(n)}", _plugin(n) is not None and _plugin(n).task == "views")
            )
            for n in names
        ),
    )
    return columns, rows


@dataclass(frozen=True)
class Picture:
    file: str  # PNG file name, beside the Markdown board
    caption: str
    attribution: str | None
    data_uri: Markup  # the same PNG inlined for the self-contained page


def example_pictures(results: list[AnyResult]) -> dict[str, list[tuple[bytes, Picture]]]:
    """Per benchmark, its plugin's pictures (PNG bytes and how to show them) for the classes the first
    result of that benchmark does worst on."""
    out: dict[str, list[tuple[bytes, Picture]]] = {}
    for name in sorted({r.benchmark.name for r in results}):
        plugin = _plugin(name)
        if plugin is None:
            continue
        first = next(r for r in results if r.benchmark.name == name)
        pictures = []
        for i, example in enumerate(plugin.example_images(name, first.benchmark.revision, _worst_classes(first))[:EXAMPLES_PER_BENCHMARK]):
            image = example.image.convert("RGB")
            image.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            data = buffer.getvalue()
            uri = Markup(f"data:image/png;base64,{base64.b64encode(data).decode()}")  # our own PNG bytes, base64: nothing to escape
            pictures.append((data, Picture(f"examples-{slug(name)}-{i}.png", example.caption, example.attribution, uri)))
        if pictures:
            out[name] = pictures
    return out


def _worst_classes(result: AnyResult) -> list[int]:
    if isinstance(result, Result):
        return [c.class_index for c in sorted(result.heads[PLAIN].classes, key=lambda c: c.auc)]
    plugin = _plugin(result.benchmark.name)
    key = plugin.headline[0] if plugin is not None else ""
    return [
        c.class_index for c in sorted(result.heads[PLAIN].classes, key=lambda c: (c.metrics.get(key) is None, c.metrics.get(key) or 0.0))
    ]


__all__ = ["Picture", "cross_benchmark", "example_pictures", "view_sections"]
