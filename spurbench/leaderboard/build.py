"""Render the leaderboard from verified result files: Markdown, CSV, PNG plots and one offline HTML page.

A pure render: no model runs, every number comes from a result file that passed ``verify``, except
the columns labelled *paper-reported*, which come from ``registry/*.yaml`` (``paper:`` of an entry).
"""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from spurbench import __version__
from spurbench.errors import SpurbenchError
from spurbench.leaderboard.verify import verify_all
from spurbench.model_lists import load_model_list, load_unmapped, registry_files
from spurbench.results import Result, model_slug

SPUFIX_HEAD = "spufix"
TOP_MODELS_IN_HEATMAP = 10
WORST_CLASSES = 10


@dataclass(frozen=True)
class BoardFiles:
    markdown: Path
    csv: Path
    html: Path
    pngs: list[Path]


def registry_info(registry_dir: Path) -> dict[str, dict]:
    """model name (or, for models without an adapter name, ``unmapped:<display name>``) -> registry facts."""

    def facts(entry) -> dict:
        return {"display_name": entry.display_name, "data": entry.data, "paper": entry.paper.model_dump() if entry.paper is not None else None}

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
        out["mean_ap_minus_paper"] = result.heads["plain"].aggregate.mean_ap - out["paper_mean_ap"]
    if out["paper_mean_ap_spufix"] is not None and SPUFIX_HEAD in result.heads:
        out["mean_ap_spufix_minus_paper"] = result.heads[SPUFIX_HEAD].aggregate.mean_ap - out["paper_mean_ap_spufix"]
    return out


def board_table(results: list[Result], info: dict[str, dict]) -> pd.DataFrame:
    """One row per (benchmark, model), ranked by mAUC within each benchmark; ``info`` from :func:`registry_info`."""
    rows = []
    for r in results:
        plain = r.heads["plain"].aggregate
        fixed = r.heads[SPUFIX_HEAD].aggregate if SPUFIX_HEAD in r.heads else None
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
                "temperature": r.heads["plain"].temperature,
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


# What each column holds, in words, under every board (Markdown and page).
METRIC_LEGEND = (
    "**mAUC** is the mean over classes of the ROC-AUC separating a class's own images from its "
    "spurious-only images, ranked by the softmax probability of the class: the paper's definition of "
    "the spurious score. **mean AP** is the mean over classes of the average precision of the same "
    "ranking: the number the authors' code computes and the paper's Table 2 prints under the name "
    "\"mAUC\". Paper figures (*paper*) are therefore compared with the measured mean AP, never with "
    "the ROC-AUC; the *AP − paper* cells exist only for results produced under the paper's protocol "
    "(`--protocol paper`). **gain** is mAUC after SpuFix minus mAUC plain; **acc.** is top-1 accuracy "
    "on the benchmark's class images."
)


def _fmt(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ci(row: pd.Series) -> str:
    if row["mauc_ci_low"] is None or pd.isna(row["mauc_ci_low"]):
        return _fmt(row["mauc"])
    return f"{row['mauc']:.3f} [{row['mauc_ci_low']:.3f}, {row['mauc_ci_high']:.3f}]"


# ------------------------------------------------------------------------------------------------ plots


def _figure_bytes(fig, fmt: str) -> bytes:
    buffer = io.BytesIO()
    # No creator/date metadata: the same results render to the same bytes (the board is committed).
    metadata = {"Creator": None, "Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buffer, format=fmt, bbox_inches="tight", dpi=120, metadata=metadata)
    return buffer.getvalue()


def scatter_figure(table: pd.DataFrame, benchmark: str):
    """Accuracy vs mAUC, coloured by data group, an arrow from plain to SpuFix (cf. paper Fig. 11)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = table[table["benchmark"] == benchmark]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    groups = sorted(part["data_group"].unique())
    colours = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    for group in groups:
        rows = part[part["data_group"] == group]
        ax.scatter(rows["accuracy"], rows["mauc"], color=colours[group], label=group, s=40, zorder=3, gid="plain-point")
    fixed = part[part["mauc_spufix"].notna()]
    if not fixed.empty:  # hollow markers at the SpuFix end of each arrow (they also set the axis limits)
        ax.scatter(fixed["accuracy_spufix"], fixed["mauc_spufix"], facecolors="none", edgecolors=[colours[g] for g in fixed["data_group"]], s=40, zorder=3, label="after SpuFix")
    for _, row in fixed.iterrows():
        ax.annotate("", xy=(row["accuracy_spufix"], row["mauc_spufix"]), xytext=(row["accuracy"], row["mauc"]), arrowprops={"arrowstyle": "->", "color": colours[row["data_group"]]})
    for _, row in part.iterrows():
        ax.annotate(row["display_name"], (row["accuracy"], row["mauc"]), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.margins(0.15)
    ax.ticklabel_format(useOffset=False)
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    ax.set_xlabel("clean accuracy (positives)")
    ax.set_ylabel("mAUC (plain; arrow: after SpuFix)")
    ax.set_title(f"{benchmark}: accuracy vs spurious-feature reliance")
    ax.grid(alpha=0.3)
    ax.legend(title="training data", fontsize=8)
    return fig


def heatmap_figure(results: list[Result], table: pd.DataFrame, benchmark: str):
    """Per-class AUC (plain head) of the top models, classes sorted by their mean AUC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = table[table["benchmark"] == benchmark].head(TOP_MODELS_IN_HEATMAP)
    by_model = {r.model.name: r for r in results if r.benchmark.name == benchmark}
    frame = pd.DataFrame({row["display_name"]: {c.class_name: c.auc for c in by_model[row["model"]].heads["plain"].classes} for _, row in top.iterrows()})
    frame = frame.loc[frame.mean(axis=1).sort_values().index]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * frame.shape[1], 1.0 + 0.22 * frame.shape[0]))
    image = ax.imshow(frame.values, aspect="auto", cmap="RdYlGn", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(frame.shape[1]), frame.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(frame.shape[0]), frame.index, fontsize=7)
    ax.set_title(f"{benchmark}: class-wise AUC, top {frame.shape[1]} models")
    fig.colorbar(image, ax=ax, label="AUC")
    return fig


# ------------------------------------------------------------------------------------------------ outputs


def md_text(text: str) -> str:
    """Literal text in a Markdown table cell: Markdown and HTML characters backslash-escaped, one line."""
    return re.sub(r"([\\`*_\[\]<>|#~!])", r"\\\1", " ".join(str(text).split()))


def md_code(text: str) -> str:
    """Literal text as a code span in a Markdown table cell (GitHub keeps ``\|`` there as a pipe)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


MARKDOWN_HEADER = (
    "| rank | model | data | acc. | mAUC (ROC-AUC) [95 % CI] | mAUC SpuFix | gain | mean AP | mean AP SpuFix "
    "| mean AP *paper* | AP − *paper* | AP SpuFix *paper* | AP SpuFix − *paper* |"
)


def _markdown(table: pd.DataFrame, pngs: dict[str, list[str]], paper_only: pd.DataFrame, latest: str) -> str:
    lines = [
        "# spurbench leaderboard",
        "",
        "Generated by `spurbench leaderboard build` from the verified result files in `results/` "
        f"(latest result: {latest}). Every measured number is recomputed from per-image probabilities; "
        "columns marked *paper* are reported by Neuhaus et al. (ICCV 2023, Table 2), not measured here.",
        "",
        METRIC_LEGEND,
        "",
    ]
    for benchmark, part in table.groupby("benchmark", sort=True):
        first = part.iloc[0]
        lines += [f"## {md_text(benchmark)} (revision {md_code(first['benchmark_revision'])}, protocol {md_code(first['protocol'])})", ""]
        lines += [MARKDOWN_HEADER, "|" + "---|" * MARKDOWN_HEADER.count(" | ") + "---|"]
        for _, row in part.iterrows():
            lines.append(
                f"| {row['rank']} | {md_text(row['display_name'])} ({md_code(row['model'])}) | {md_text(row['data_group'])} | {_fmt(row['accuracy'])} | {_ci(row)} | "
                f"{_fmt(row['mauc_spufix'])} | {_fmt(row['spufix_gain'], signed=True)} | {_fmt(row['mean_ap'])} | {_fmt(row['mean_ap_spufix'])} | "
                f"{_fmt(row['paper_mean_ap'])} | {_fmt(row['mean_ap_minus_paper'], signed=True)} | "
                f"{_fmt(row['paper_mean_ap_spufix'])} | {_fmt(row['mean_ap_spufix_minus_paper'], signed=True)} |"
            )
        lines.append("")
        lines += [f"![{name}]({name})" for name in pngs.get(benchmark, [])]
        lines.append("")
    if not paper_only.empty:
        lines += [
            "## Paper-reported only (not measured by spurbench)",
            "",
            "Numbers from the paper's Table 2 for models without a verified result here. The paper prints the "
            "mean AP columns as \"mAUC\" (see above).",
            "",
            "| model | data | benchmark | acc. % *paper* | mean AP *paper* | mean AP SpuFix *paper* |",
            "|---|---|---|---|---|---|",
        ]
        for _, row in paper_only.iterrows():
            lines.append(
                f"| {md_text(row['display_name'])} ({md_code(row['model'])}) | {md_text(row['data'])} | {md_text(row['benchmark'])} | {_fmt(row['accuracy'], 1)} | "
                f"{_fmt(row['mean_ap'])} | {_fmt(row['mean_ap_spufix'])} |"
            )
        lines.append("")
    return "\n".join(lines)


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


PAGE_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.getAttribute("data-order") !== "asc";
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("data-order"); });
      th.setAttribute("data-order", ascending ? "asc" : "desc");
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-value"), y = b.cells[column].getAttribute("data-value");
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return ascending ? cmp : -cmp;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.querySelectorAll("input.filter").forEach(function (input) {
  input.addEventListener("input", function () {
    var needle = input.value.toLowerCase();
    var table = document.getElementById(input.getAttribute("data-table"));
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      row.style.display = row.textContent.toLowerCase().indexOf(needle) >= 0 ? "" : "none";
    });
  });
});
"""

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th[data-order=asc]::after { content: " \\25B2"; } th[data-order=desc]::after { content: " \\25BC"; }
td.text, th.text { text-align: left; }
.paper { color: #7a4b00; font-style: italic; }
.figure svg { max-width: 100%; height: auto; }
footer { margin-top: 3em; font-size: 12px; color: #666; }
"""


def _legend_html() -> str:
    """METRIC_LEGEND with its Markdown emphasis and code as HTML."""
    text = html.escape(METRIC_LEGEND)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _cell(value, text: str | None = None, css: str = "") -> str:
    data = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    shown = html.escape(text if text is not None else data)
    return f'<td class="{css}" data-value="{html.escape(data)}">{shown}</td>'


def _anchor(benchmark: str, model: str) -> str:
    """The id of a model's section on the page; the board's model links point at it."""
    return f"model-{model_slug(benchmark)}-{model_slug(model)}"


def _html(results: list[Result], table: pd.DataFrame, svgs: dict[str, dict[str, str]], paper_only: pd.DataFrame) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>spurbench leaderboard</title><style>{PAGE_STYLE}</style></head><body>"]
    parts.append("<h1>spurbench leaderboard</h1><p>Every measured number is recomputed from per-image probabilities of a verified result file. "
                 "<span class='paper'>Italic columns</span> are reported by the paper (Neuhaus et al., ICCV 2023, Table 2), not measured.</p>")  # fmt: skip
    parts.append(f"<p class='legend'>{_legend_html()}</p>")
    by_key = {(r.benchmark.name, r.model.name): r for r in results}
    for benchmark, part in table.groupby("benchmark", sort=True):
        table_id = f"board-{model_slug(benchmark)}"
        first = part.iloc[0]
        parts.append(f"<h2 id='{table_id}-title'>{html.escape(benchmark)}</h2>")
        parts.append(f"<p>revision <code>{html.escape(str(first['benchmark_revision']))}</code>, protocol <code>{html.escape(first['protocol'])}</code></p>")
        parts.append(f"<input class='filter' data-table='{table_id}' placeholder='filter models, data groups…' aria-label='filter'>")
        header = ["rank", "model", "data", "acc.", "mAUC (ROC-AUC) [95% CI]", "mAUC SpuFix", "gain", "mean AP", "mean AP SpuFix",
                  "mean AP paper", "AP − paper", "AP SpuFix paper", "AP SpuFix − paper"]  # fmt: skip
        classes = ["", "text", "text", "", "", "", "", "", "", "paper", "paper", "paper", "paper"]
        parts.append(f"<table class='sortable' id='{table_id}'><thead><tr>" + "".join(f"<th class='{c}'>{html.escape(h)}</th>" for h, c in zip(header, classes)) + "</tr></thead><tbody>")
        for _, row in part.iterrows():
            anchor = _anchor(benchmark, row["model"])
            parts.append(
                "<tr>" + _cell(row["rank"]) + f"<td class='text' data-value='{html.escape(row['display_name'])}'><a href='#{anchor}'>{html.escape(row['display_name'])}</a></td>"
                + _cell(row["data_group"], css="text") + _cell(row["accuracy"], _fmt(row["accuracy"])) + _cell(row["mauc"], _ci(row))
                + _cell(row["mauc_spufix"], _fmt(row["mauc_spufix"])) + _cell(row["spufix_gain"], _fmt(row["spufix_gain"], signed=True))
                + _cell(row["mean_ap"], _fmt(row["mean_ap"])) + _cell(row["mean_ap_spufix"], _fmt(row["mean_ap_spufix"]))
                + _cell(row["paper_mean_ap"], _fmt(row["paper_mean_ap"]), "paper")
                + _cell(row["mean_ap_minus_paper"], _fmt(row["mean_ap_minus_paper"], signed=True), "paper")
                + _cell(row["paper_mean_ap_spufix"], _fmt(row["paper_mean_ap_spufix"]), "paper")
                + _cell(row["mean_ap_spufix_minus_paper"], _fmt(row["mean_ap_spufix_minus_paper"], signed=True), "paper") + "</tr>"
            )  # fmt: skip
        parts.append("</tbody></table>")
        for name, svg in svgs.get(benchmark, {}).items():
            parts.append(f"<div class='figure' id='{name}'>{svg}</div>")
        parts.append("<h3>Models</h3>")
        for _, row in part.iterrows():
            result = by_key[(benchmark, row["model"])]
            anchor = _anchor(benchmark, row["model"])
            worst = sorted(result.heads["plain"].classes, key=lambda c: c.auc)[:WORST_CLASSES]
            parts.append(f"<section id='{anchor}'><h4>{html.escape(row['display_name'])} <code>{html.escape(row['model'])}</code></h4>")
            parts.append("<table class='sortable worst'><thead><tr><th>class</th><th class='text'>name</th><th>AUC</th><th class='text'>spurious feature</th><th>spurious images classified as the class</th></tr></thead><tbody>")
            # Benchmarks whose components are named features (planted) say which; others give ids.
            names = {v["id"]: k for k, v in result.benchmark.extra.get("ground_truth", {}).get("features", {}).items()}
            for c in worst:
                shown = [names.get(k, f"component {k}") for k in c.components]
                feature = c.feature or (("other classes' features: " if names else "") + ", ".join(shown) if shown else "–")
                parts.append("<tr>" + _cell(c.class_index) + _cell(c.class_name, css="text") + _cell(c.auc, _fmt(c.auc)) + _cell(feature, css="text") + _cell(c.spurious_pred_rate, f"{c.spurious_pred_rate:.0%}") + "</tr>")
            parts.append("</tbody></table></section>")
    if not paper_only.empty:
        parts.append("<h2>Paper-reported only</h2><p class='paper'>Numbers from the paper's Table 2 for models without a verified result here; not measured by spurbench. "
                     "The paper prints the mean AP columns as \"mAUC\".</p>")  # fmt: skip
        parts.append("<table class='sortable' id='paper-only'><thead><tr><th class='text'>model</th><th class='text'>data</th><th class='text'>benchmark</th><th>acc. paper</th><th>mean AP paper</th><th>mean AP SpuFix paper</th></tr></thead><tbody>")
        for _, row in paper_only.iterrows():
            parts.append("<tr>" + _cell(row["display_name"], css="text") + _cell(row["data"], css="text") + _cell(row["benchmark"], css="text")
                         + "".join(_cell(row[k], _fmt(row[k], 1 if k == "accuracy" else 3), "paper") for k in ("accuracy", "mean_ap", "mean_ap_spufix")) + "</tr>")  # fmt: skip
        parts.append("</tbody></table>")
    revisions = sorted({f"{r.benchmark.name} {r.benchmark.revision}" for r in results})
    built = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    parts.append(f"<footer>Built by spurbench {__version__} on {built} from {len(results)} result files. Benchmark revisions: {html.escape('; '.join(revisions))}.</footer>")
    parts.append(f"<script>{PAGE_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _check_one_board_per_benchmark(results: list[Result]) -> None:
    """Rank like with like: one revision and protocol per benchmark, one result per model."""
    seen: dict[str, tuple[str | None, str]] = {}
    models: set[tuple[str, str]] = set()
    for r in results:
        key = (r.benchmark.revision, r.protocol.name)
        if seen.setdefault(r.benchmark.name, key) != key:
            raise SpurbenchError(
                f"results of {r.benchmark.name} mix revision/protocol {seen[r.benchmark.name]} and {key} ({r.model.name}); build one board per revision and protocol"
            )
        if (r.benchmark.name, r.model.name) in models:
            raise SpurbenchError(f"two results for {r.model.name} on {r.benchmark.name}; keep one")
        models.add((r.benchmark.name, r.model.name))


def build_board(result_paths: list[Path], out: Path, board_dir: Path | None = None, registry_dir: Path = Path("registry")) -> BoardFiles:
    """Verify every result, then write ``board_dir/README.md``, ``board_dir/leaderboard.csv``,
    PNG plots in ``board_dir`` and ``out/index.html`` (self-contained: inline SVG, CSS and JS)."""
    import matplotlib.pyplot as plt

    results = verify_all(result_paths)
    _check_one_board_per_benchmark(results)
    board_dir = Path(board_dir) if board_dir is not None else Path(out).parent
    out = Path(out)
    info = registry_info(registry_dir)
    table = board_table(results, info)
    # Render everything into a staging folder first: a failure leaves the previous board untouched.
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        pngs: dict[str, list[str]] = {}
        svgs: dict[str, dict[str, str]] = {}
        for benchmark in sorted(table["benchmark"].unique()):
            for kind, fig in (("scatter", scatter_figure(table, benchmark)), ("heatmap", heatmap_figure(results, table, benchmark))):
                name = f"{kind}-{model_slug(benchmark)}"
                (stage / f"{name}.png").write_bytes(_figure_bytes(fig, "png"))
                svg = _figure_bytes(fig, "svg").decode()
                svgs.setdefault(benchmark, {})[name] = svg[svg.index("<svg") :]
                pngs.setdefault(benchmark, []).append(f"{name}.png")
                plt.close(fig)
        paper_only = _paper_only(table, info)
        latest = max(r.provenance.date for r in results)
        (stage / "README.md").write_text(_markdown(table, pngs, paper_only, latest) + "\n")
        table.to_csv(stage / "leaderboard.csv", index=False, float_format="%.6f")
        (stage / "index.html").write_text(_html(results, table, svgs, paper_only))
        (stage / "leaderboard.json").write_text(json.dumps(json.loads(table.to_json(orient="records")), indent=1) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        board_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*board_dir.glob("scatter-*.png"), *board_dir.glob("heatmap-*.png")]:
            stale.unlink()  # plots of benchmarks no longer on the board
        written = []
        for name in sorted(p.name for p in stage.iterdir()):
            target = (out if name in ("index.html", "leaderboard.json") else board_dir) / name
            shutil.move(str(stage / name), target)
            if name.endswith(".png"):
                written.append(target)
    markdown, csv, page = board_dir / "README.md", board_dir / "leaderboard.csv", out / "index.html"
    return BoardFiles(markdown, csv, page, written)


__all__ = ["BoardFiles", "board_table", "build_board", "heatmap_figure", "registry_info", "scatter_figure"]
