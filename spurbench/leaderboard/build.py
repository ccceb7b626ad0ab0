"""Render the leaderboard from verified result files: Markdown, CSV, PNG plots and one offline HTML page.

A pure render: no model runs, every number comes from a result file that passed ``verify``, except
the columns labelled *paper-reported*, which come from ``registry/*.yaml`` (``paper:`` of an entry).
The markup lives in ``templates/`` (Jinja2: ``board.md.j2`` for the Markdown board, ``page.html.j2``
for the page, autoescaped); the columns of every table are declared once, below, for both.
Nothing here knows which benchmarks exist: names of classes, groups and components come from results.
"""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from spurbench._version import __version__
from spurbench.errors import SpurbenchError
from spurbench.files import slug
from spurbench.heads import PLAIN, SPUFIX
from spurbench.leaderboard.columns import (
    BOARD_COLUMNS,
    GROUP_COLUMN,
    METRIC_LEGEND,
    PAPER_ONLY_COLUMNS,
    WORST_COLUMNS,
    Column,
    md_code,
    md_text,
    missing,
)
from spurbench.leaderboard.figures import figure_bytes, heatmap_figure, scatter_figure
from spurbench.leaderboard.verify import verify_all
from spurbench.leaderboard.views import cross_benchmark, example_pictures, view_sections
from spurbench.model_lists import load_model_list, load_unmapped, registry_files
from spurbench.results import AnyResult, Result, ViewResult

WORST_CLASSES = 10


@dataclass(frozen=True)
class BoardFiles:
    markdown: Path
    csv: Path
    html: Path
    pngs: list[Path]
    notes: list[str] = field(default_factory=list)  # which result is shown where a model has several for one benchmark


def registry_info(registry_dir: Path) -> dict[str, dict]:
    """model name (or, for models without an adapter name, ``unmapped:<display name>``) -> registry facts."""

    def facts(entry) -> dict:
        return {
            "display_name": entry.display_name,
            "data": entry.data,
            "paper": entry.paper.model_dump() if entry.paper is not None else None,
        }

    info: dict[str, dict] = {}
    for path in registry_files(registry_dir):
        for entry in load_model_list(path):
            info.setdefault(entry.model, facts(entry))
        for unmapped in load_unmapped(path):
            info.setdefault(f"unmapped:{unmapped.display_name}", facts(unmapped))
    return info


def paper_comparison(result: Result, paper: dict | None) -> dict[str, float | None]:
    """The paper's figures for this result, compared like with like.

    The paper's Table 2 "mAUC" is, in the authors' code, mean average precision; so it is set against
    the measured ``mean_ap`` (plain and SpuFix), never against the ROC-AUC ``mauc``. Paper figures are
    shown only for the benchmark they are for, and a measured − paper difference only for results
    produced under the paper's protocol (``--protocol paper``).
    """
    empty = {"paper_mean_ap": None, "paper_mean_ap_spufix": None, "mean_ap_minus_paper": None, "mean_ap_spufix_minus_paper": None}
    if not paper or paper.get("benchmark") != result.benchmark.name:
        return empty
    out = {**empty, "paper_mean_ap": paper.get("mean_ap"), "paper_mean_ap_spufix": paper.get("mean_ap_spufix")}
    if result.protocol.name != "paper":
        return out
    if out["paper_mean_ap"] is not None:
        out["mean_ap_minus_paper"] = result.heads[PLAIN].aggregate.mean_ap - out["paper_mean_ap"]
    if out["paper_mean_ap_spufix"] is not None and SPUFIX in result.heads:
        out["mean_ap_spufix_minus_paper"] = result.heads[SPUFIX].aggregate.mean_ap - out["paper_mean_ap_spufix"]
    return out


def board_table(results: list[Result], info: dict[str, dict]) -> pd.DataFrame:
    """One row per (benchmark, model), ranked by mAUC within each benchmark; ``info`` from :func:`registry_info`."""
    rows = []
    for r in results:
        plain = r.heads[PLAIN].aggregate
        fixed = r.heads[SPUFIX].aggregate if SPUFIX in r.heads else None
        reg = info.get(r.model.name, {})
        rows.append(
            {
                "benchmark": r.benchmark.name,
                "benchmark_revision": r.benchmark.revision,
                "model": r.model.name,
                "display_name": reg.get("display_name") or r.model.name,
                "data_group": reg.get("data") or "unknown",
                "accuracy": plain.accuracy,
                "mauc": plain.mauc,
                "mauc_ci_low": plain.mauc_ci_low,
                "mauc_ci_high": plain.mauc_ci_high,
                "mean_ap": plain.mean_ap,
                "pooled_auc": plain.pooled_auc,
                "pooled_ap": plain.pooled_ap,
                "mauc_spufix": fixed.mauc if fixed else None,
                "spufix_gain": (fixed.mauc - plain.mauc) if fixed else None,
                "mean_ap_spufix": fixed.mean_ap if fixed else None,
                "accuracy_spufix": fixed.accuracy if fixed else None,
                **paper_comparison(r, reg.get("paper")),
                "protocol": r.protocol.name,
                "input_size": "x".join(str(v) for v in r.protocol.images["positive"].input_size[1:]),
                "temperature": r.heads[PLAIN].temperature,
                "spurbench_version": r.provenance.spurbench_version,
                "date": r.provenance.date,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(["benchmark", "mauc"], ascending=[True, False], kind="stable")
    table.insert(0, "rank", table.groupby("benchmark").cumcount() + 1)
    return table.reset_index(drop=True)


def _anchor(benchmark: str, model: str) -> str:
    """The id of a model's section on the page; the board's model links point at it."""
    return f"model-{slug(benchmark)}-{slug(model)}"


@functools.cache
def _templates() -> Environment:
    """``*.html.j2`` autoescaped; ``*.md.j2`` not, so its templates pass user text through ``md_text`` / ``md_code``."""
    env = Environment(
        loader=PackageLoader("spurbench.leaderboard", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("md.j2",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md_text=md_text, md_code=md_code, data_value=lambda v: "" if missing(v) else str(v))
    env.globals["anchor"] = _anchor
    return env


def _legend_html(legend: str = METRIC_LEGEND) -> Markup:
    """A legend's Markdown emphasis and code as HTML (the text itself escaped)."""
    text = html.escape(legend)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", text))


def _worst_classes(result: Result) -> dict:
    """The columns and rows of a model's worst-classes table (plain head, lowest AUC first)."""
    names = result.benchmark.component_names  # when the benchmark knows what its components are
    classes = result.heads[PLAIN].classes
    rows = []
    for c in sorted(classes, key=lambda c: c.auc)[:WORST_CLASSES]:
        shown = [names.get(str(k), f"component {k}") for k in c.components]
        feature = c.feature or ((("other classes' features: " if names else "") + ", ".join(shown)) if shown else "–")
        rows.append(
            {
                "class_index": c.class_index,
                "class_name": c.class_name,
                "group": c.group,
                "auc": c.auc,
                "feature": feature,
                "spurious_pred_rate": c.spurious_pred_rate,
            }
        )
    grouped = any(c.group is not None for c in classes)
    return {"columns": WORST_COLUMNS[:2] + (GROUP_COLUMN,) + WORST_COLUMNS[2:] if grouped else WORST_COLUMNS, "worst": rows}


def _boards(results: list[Result], table: pd.DataFrame, figures: dict[str, dict[str, str]]) -> list[dict]:
    """One entry per benchmark, what both templates render: its ranked rows, figures and model sections."""
    by_key = {(r.benchmark.name, r.model.name): r for r in results}
    boards = []
    for benchmark, part in table.groupby("benchmark", sort=True):
        rows = [row for _, row in part.iterrows()]
        models = [{"row": row, **_worst_classes(by_key[(benchmark, row["model"])])} for row in rows]
        svgs = {name: Markup(svg) for name, svg in figures.get(benchmark, {}).items()}  # our own matplotlib output
        boards.append(
            {
                "name": benchmark,
                "id": f"board-{slug(benchmark)}",
                "revision": rows[0]["benchmark_revision"],
                "protocol": rows[0]["protocol"],
                "rows": rows,
                "svgs": svgs,
                "models": models,
            }
        )
    return boards


def _paper_only(table: pd.DataFrame, info: dict[str, dict]) -> pd.DataFrame:
    measured = set(zip(table["benchmark"], table["model"])) if not table.empty else set()
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
    return pd.DataFrame(rows)


def choose_results(paths: list[Path], results: list[AnyResult]) -> tuple[list[AnyResult], list[str]]:
    """One result per (benchmark, model): where there are several, the newest (its features' date,
    ``provenance.date``), and among equally new ones the last path in sorted order. Returns the chosen
    results (in the order given) and one note per choice naming the file shown and the files not shown."""
    groups: dict[tuple[str, str], list[tuple[Path, AnyResult]]] = {}
    for path, result in zip(paths, results):
        groups.setdefault((result.benchmark.name, result.model.name), []).append((Path(path), result))
    chosen: set[int] = set()
    notes = []
    for (benchmark, model), found in groups.items():
        path, result = max(found, key=lambda pr: (pr[1].provenance.date, str(pr[0])))
        chosen.add(id(result))
        if len(found) > 1:
            others = ", ".join(str(p) for p, _ in sorted(found, key=lambda pr: str(pr[0])) if p != path)
            notes.append(
                f"{model} on {benchmark}: {len(found)} results; showing {path} (the newest, computed {result.provenance.date}), not {others}"
            )
    return [r for r in results if id(r) in chosen], notes


def _check_one_board_per_benchmark(results: list[AnyResult]) -> None:
    """Rank like with like: one revision and protocol per benchmark."""
    seen: dict[str, tuple[str | None, ...]] = {}
    for r in results:
        # a views benchmark also ranks like with like in its views (e.g. the same noise levels)
        views = tuple(sorted({v for image in r.images.values() for v in image.views})) if isinstance(r, ViewResult) else ()
        key = (r.benchmark.revision, r.protocol.name, r.protocol.description, *views)  # the description: what the protocol did
        first = seen.setdefault(r.benchmark.name, key)
        if first != key:
            what = (
                "steps of protocol " + repr(key[1])
                if first[:2] == key[:2] and first[2] != key[2]
                else f"revision/protocol/views {(first[0], first[1], *first[3:4])} and {(key[0], key[1], *key[3:4])}"
            )
            raise SpurbenchError(
                f"results of {r.benchmark.name} mix the {what} ({r.model.name}); build one board per revision, protocol and set of views"
            )


def source_label(result_paths: list[Path], board_dir: Path) -> str:
    """The folders the results were read from, as the board names them: relative to the board's folder
    when inside it (the repository's board says ``results/``), else as given."""
    shown = []
    for folder in dict.fromkeys(Path(p).parent for p in result_paths):
        try:
            shown.append(folder.resolve().relative_to(Path(board_dir).resolve()).as_posix() + "/")
        except ValueError:
            shown.append(folder.as_posix().rstrip("/") + "/")
    return ", ".join(shown)


def build_board(result_paths: list[Path], out: Path, board_dir: Path | None = None, registry_dir: Path = Path("registry")) -> BoardFiles:
    """Verify every result, then write ``board_dir/README.md``, ``board_dir/leaderboard.csv``,
    PNG plots in ``board_dir`` and ``out/index.html`` (self-contained: inline SVG, CSS and JS)."""
    everything, notes = choose_results(result_paths, verify_all(result_paths))
    _check_one_board_per_benchmark(everything)
    results = [r for r in everything if isinstance(r, Result)]  # the spurious-AUC boards; views benchmarks get their own sections
    out = Path(out)
    board_dir = Path(board_dir) if board_dir is not None else out.parent
    source = source_label(result_paths, board_dir)
    info = registry_info(registry_dir)
    table = board_table(results, info)
    sections = [
        {**section, "legend_html": _legend_html(section["legend"])}
        for section in view_sections([r for r in everything if isinstance(r, ViewResult)], info)
    ]
    cross_columns, cross_rows = cross_benchmark(everything, info)
    pictures = example_pictures(everything)
    # Render everything into a staging folder first: a failure leaves the previous board untouched.
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        pngs: dict[str, list[str]] = {}
        svgs: dict[str, dict[str, str]] = {}
        for benchmark in sorted(table["benchmark"].unique()) if not table.empty else []:
            for kind, fig in (("scatter", scatter_figure(table, benchmark)), ("heatmap", heatmap_figure(results, table, benchmark))):
                name = f"{kind}-{slug(benchmark)}"
                (stage / f"{name}.png").write_bytes(figure_bytes(fig, "png"))
                svg = figure_bytes(fig, "svg", name).decode()
                svgs.setdefault(benchmark, {})[name] = svg[svg.index("<svg") :]
                pngs.setdefault(benchmark, []).append(f"{name}.png")
        boards = _boards(results, table, svgs) if not table.empty else []
        for shown in pictures.values():
            for data, picture in shown:
                (stage / picture.file).write_bytes(data)
        paper_only = [row for _, row in _paper_only(table, info).iterrows()]
        common = {
            "boards": boards,
            "paper_only": paper_only,
            "columns": BOARD_COLUMNS,
            "paper_columns": PAPER_ONLY_COLUMNS,
            "sections": sections,
            "cross_columns": cross_columns,
            "cross_rows": cross_rows,
            "pictures": {name: [p for _, p in shown] for name, shown in pictures.items()},
        }
        latest = max(r.provenance.date for r in everything)
        (stage / "README.md").write_text(
            _templates().get_template("board.md.j2").render(common, pngs=pngs, legend=METRIC_LEGEND, latest=latest, source=source)
        )
        table.to_csv(stage / "leaderboard.csv", index=False, float_format="%.6f")
        built = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        revisions = "; ".join(sorted({f"{r.benchmark.name} {r.benchmark.revision}" for r in everything}))
        page = (
            _templates()
            .get_template("page.html.j2")
            .render(common, legend=_legend_html(), version=__version__, built=built, count=len(everything), revisions=revisions)
        )
        (stage / "index.html").write_text(page)
        (stage / "leaderboard.json").write_text(json.dumps(json.loads(table.to_json(orient="records")), indent=1) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        board_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*board_dir.glob("scatter-*.png"), *board_dir.glob("heatmap-*.png"), *board_dir.glob("examples-*.png")]:
            stale.unlink()  # plots of benchmarks no longer on the board
        written = []
        for name in sorted(p.name for p in stage.iterdir()):
            target = (out if name in ("index.html", "leaderboard.json") else board_dir) / name
            shutil.move(str(stage / name), target)
            if name.endswith(".png"):
                written.append(target)
    markdown, csv, page_path = board_dir / "README.md", board_dir / "leaderboard.csv", out / "index.html"
    return BoardFiles(markdown, csv, page_path, written, notes)


__all__ = [
    "BOARD_COLUMNS",
    "METRIC_LEGEND",
    "BoardFiles",
    "Column",
    "board_table",
    "build_board",
    "choose_results",
    "heatmap_figure",
    "md_code",
    "md_text",
    "paper_comparison",
    "registry_info",
    "scatter_figure",
    "source_label",
]
