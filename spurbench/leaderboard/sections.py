"""The board's parts that are no task's: the cross-benchmark table (each benchmark's headline per
model, "–" where a model has no result, never 0), the example pictures each plugin offers (only what
its data's licence allows), and the paper-reported numbers of models without a result."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from markupsafe import Markup

from spurbench.benchmarks.capabilities import ShowsExamples
from spurbench.files import slug
from spurbench.results import TaskResult
from spurbench.tasks import Column, plugin_named, task_of_result
from spurbench.tasks.board import missing

EXAMPLES_PER_BENCHMARK = 3
THUMBNAIL = 200  # px, the longer side of a picture on the board


def _with_ci(key: str, signed: bool):
    def show(row: Mapping[str, Any]) -> str:
        value, low, high = row[key], row[f"{key}__low"], row[f"{key}__high"]
        if missing(value):
            return "–"
        text = f"{value:{'+' if signed else ''}.3f}"
        return text if missing(low) else f"{text} [{low:.3f}, {high:.3f}]"

    return show


def cross_benchmark(results: list[TaskResult], info: dict[str, dict]) -> tuple[tuple[Column, ...], list[dict]]:
    """One row per model, one column per benchmark: its headline (with CI where it has one), "–" where
    the model has no result on that benchmark."""
    names = sorted({r.benchmark.name for r in results})
    by_model: dict[str, dict] = {}
    headers: dict[str, tuple[str, bool]] = {}  # benchmark -> its headline's header, and whether it is signed
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
        headline = task_of_result(r).headline_of(r)
        headers.setdefault(r.benchmark.name, (headline.header, headline.signed))
        key = f"b_{slug(r.benchmark.name)}"
        row[key], row[f"{key}__low"], row[f"{key}__high"] = headline.value, headline.low, headline.high
    rows = sorted(by_model.values(), key=lambda row: row["display_name"])
    for row in rows:
        for name in names:
            key = f"b_{slug(name)}"
            for suffix in ("", "__low", "__high"):
                row.setdefault(key + suffix, None)
    columns = (
        Column("display_name", "model", "model"),
        Column("data_group", "data", "text"),
        *(Column(f"b_{slug(n)}", f"{n}: {headers[n][0]}", show=_with_ci(f"b_{slug(n)}", headers[n][1])) for n in names),
    )
    return columns, rows


@dataclass(frozen=True)
class Picture:
    file: str  # PNG file name, beside the Markdown board
    caption: str
    attribution: str | None
    data_uri: Markup  # the same PNG inlined for the self-contained page


def example_pictures(results: list[TaskResult]) -> dict[str, list[tuple[bytes, Picture]]]:
    """Per benchmark, its plugin's pictures (PNG bytes and how to show them) for the classes the first
    result of that benchmark does worst on (as its task ranks them)."""
    out: dict[str, list[tuple[bytes, Picture]]] = {}
    for name in sorted({r.benchmark.name for r in results}):
        plugin = plugin_named(name)
        if not isinstance(plugin, ShowsExamples):
            continue
        first = next(r for r in results if r.benchmark.name == name)
        worst = task_of_result(first).worst_classes(first)
        pictures = []
        for i, example in enumerate(plugin.example_images(name, first.benchmark.revision, worst)[:EXAMPLES_PER_BENCHMARK]):
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


def paper_only(results: list[TaskResult], info: dict[str, dict]) -> list[pd.Series]:
    """The model lists' paper-reported numbers of every (benchmark, model) without a verified result here
    (as table rows: a column's numbers share one type)."""
    measured = {(r.benchmark.name, r.model.name) for r in results}
    rows = [
        {
            "model": "no adapter name" if model.startswith("unmapped:") else model,
            "display_name": reg["display_name"] or model,
            "data": reg["data"] or "unknown",
            "benchmark": reg["paper"]["benchmark"],
            **{k: reg["paper"].get(k) for k in ("accuracy", "mean_ap", "mean_ap_spufix")},
        }
        for model, reg in info.items()
        if reg.get("paper") and (reg["paper"]["benchmark"], model) not in measured
    ]
    return [row for _, row in pd.DataFrame(rows).iterrows()]


__all__ = ["Picture", "cross_benchmark", "example_pictures", "paper_only"]
