"""Render the leaderboard from verified result files: Markdown, CSV, PNG plots and one offline HTML page.

A pure render: no model runs, every number comes from a result file that passed ``verify``, except
the columns labelled *paper-reported*, which come from ``model-lists/*.yaml`` (``paper:`` of an entry).
The markup lives in ``templates/`` (Jinja2: ``board.md.j2`` for the Markdown board, ``page.html.j2``
for the page, autoescaped). Each task puts its own sections on the board (``Task.board``); nothing
here knows which tasks or benchmarks exist: names of classes, groups and components come from results.
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
from spurbench.leaderboard.columns import PAPER_ONLY_COLUMNS, md_code, md_text
from spurbench.leaderboard.sections import cross_benchmark, example_pictures, paper_only
from spurbench.leaderboard.verify import verify_all
from spurbench.model_lists import load_model_list, load_unmapped, model_list_files
from spurbench.results import TaskResult
from spurbench.tasks import TaskBoard, get_task, task_names, task_of_result
from spurbench.tasks.board import missing


@dataclass(frozen=True)
class BoardFiles:
    markdown: Path
    csv: Path
    html: Path
    pngs: list[Path]
    notes: list[str] = field(default_factory=list)  # which result is shown where a model has several for one benchmark


def model_list_info(model_lists_dir: Path) -> dict[str, dict]:
    """model name (or, for models without an adapter name, ``unmapped:<display name>``) -> its model-list facts."""

    def facts(entry) -> dict:
        return {
            "display_name": entry.display_name,
            "data": entry.data,
            "paper": entry.paper.model_dump() if entry.paper is not None else None,
        }

    info: dict[str, dict] = {}
    for path in model_list_files(model_lists_dir):
        for entry in load_model_list(path):
            info.setdefault(entry.model, facts(entry))
        for unmapped in load_unmapped(path):
            info.setdefault(f"unmapped:{unmapped.display_name}", facts(unmapped))
    return info


def _anchor(benchmark: str, model: str) -> str:
    """The id of a model's section on the page; the board's model links point at it."""
    return f"model-{slug(benchmark)}-{slug(model)}"


def _legend_html(legend: str) -> Markup:
    """A legend's Markdown emphasis and code as HTML (the text itself escaped)."""
    text = html.escape(legend)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", text))


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
    env.filters.update(md_text=md_text, md_code=md_code, legend_html=_legend_html, data_value=lambda v: "" if missing(v) else str(v))
    env.globals["anchor"] = _anchor
    return env


def choose_results(paths: list[Path], results: list[TaskResult]) -> tuple[list[TaskResult], list[str]]:
    """One result per (benchmark, model): where there are several, the newest (its features' date,
    ``provenance.date``), and among equally new ones the last path in sorted order. Returns the chosen
    results (in the order given) and one note per choice naming the file shown and the files not shown."""
    groups: dict[tuple[str, str], list[tuple[Path, TaskResult]]] = {}
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


def _check_one_board_per_benchmark(results: list[TaskResult]) -> None:
    """Rank like with like: one revision and protocol per benchmark (and what else its task says, e.g. the views)."""
    seen: dict[str, tuple[str | None, ...]] = {}
    for r in results:
        like = task_of_result(r).like_with_like(r)
        key = (r.benchmark.revision, r.protocol.name, r.protocol.description, *like)  # the description: what the protocol did
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


def task_boards(results: list[TaskResult], info: dict[str, dict]) -> dict[str, TaskBoard]:
    """Each task's part of the board from its results, in the table of tasks' order (tasks without results: none)."""
    kinds = {r.kind for r in results}
    return {name: get_task(name).board([r for r in results if r.kind == name], info) for name in task_names() if name in kinds}


def build_board(
    result_paths: list[Path], out: Path, board_dir: Path | None = None, model_lists_dir: Path = Path("model-lists")
) -> BoardFiles:
    """Verify every result, then write ``board_dir/README.md``, ``board_dir/leaderboard.csv``,
    PNG plots in ``board_dir`` and ``out/index.html`` (self-contained: inline SVG, CSS and JS). Display
    names, data groups and paper-reported numbers come from the model lists in ``model_lists_dir``."""
    everything, notes = choose_results(result_paths, verify_all(result_paths))
    _check_one_board_per_benchmark(everything)
    out = Path(out)
    board_dir = Path(board_dir) if board_dir is not None else out.parent
    source = source_label(result_paths, board_dir)
    info = model_list_info(model_lists_dir)
    boards = task_boards(everything, info)
    tables = [board.table for board in boards.values() if board.table is not None]
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0] if tables else pd.DataFrame()
    tasks = [get_task(name) for name in task_names()]
    legends = [task.legend for task in tasks if task.legend]  # what every registered task's columns mean, opening the board
    cross_columns, cross_rows = cross_benchmark(everything, info)
    pictures = example_pictures(everything)
    # Render everything into a staging folder first: a failure leaves the previous board untouched.
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        for board in boards.values():
            for name, data in board.files.items():
                (stage / name).write_bytes(data)
        for shown in pictures.values():
            for data, picture in shown:
                (stage / picture.file).write_bytes(data)
        common = {
            "sections": [section for board in boards.values() for section in board.sections],
            "paper_only": paper_only(everything, info),
            "paper_columns": PAPER_ONLY_COLUMNS,
            "cross_columns": cross_columns,
            "cross_rows": cross_rows,
            "pictures": {name: [p for _, p in shown] for name, shown in pictures.items()},
        }
        latest = max(r.provenance.date for r in everything)
        (stage / "README.md").write_text(
            _templates().get_template("board.md.j2").render(common, legends=legends, latest=latest, source=source)
        )
        table.to_csv(stage / "leaderboard.csv", index=False, float_format="%.6f")
        built = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        revisions = "; ".join(sorted({f"{r.benchmark.name} {r.benchmark.revision}" for r in everything}))
        page = (
            _templates()
            .get_template("page.html.j2")
            .render(common, legends=legends, version=__version__, built=built, count=len(everything), revisions=revisions)
        )
        (stage / "index.html").write_text(page)
        (stage / "leaderboard.json").write_text(json.dumps(json.loads(table.to_json(orient="records")), indent=1) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        board_dir.mkdir(parents=True, exist_ok=True)
        stale_patterns = ["examples-*.png", *(pattern for task in tasks for pattern in task.board_files)]
        for stale in [path for pattern in stale_patterns for path in board_dir.glob(pattern)]:
            stale.unlink(missing_ok=True)  # files of benchmarks no longer on the board
        written = []
        for name in sorted(p.name for p in stage.iterdir()):
            target = (out if name in ("index.html", "leaderboard.json") else board_dir) / name
            shutil.move(str(stage / name), target)
            if name.endswith(".png"):
                written.append(target)
    markdown, csv, page_path = board_dir / "README.md", board_dir / "leaderboard.csv", out / "index.html"
    return BoardFiles(markdown, csv, page_path, written, notes)


__all__ = ["BoardFiles", "build_board", "choose_results", "model_list_info", "source_label", "task_boards"]
