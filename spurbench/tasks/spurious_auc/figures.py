"""The spurious-AUC board's figures, drawn with matplotlib's object-oriented API (no pyplot, no backend switch):
accuracy vs mAUC with SpuFix arrows, and the class-wise AUC heatmap of the top models."""

from __future__ import annotations

import io

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from spurbench.heads import PLAIN
from spurbench.results import Result

TOP_MODELS_IN_HEATMAP = 10


def figure_bytes(fig: Figure, fmt: str, name: str = "") -> bytes:
    buffer = io.BytesIO()
    # No creator/date metadata: the same results render to the same bytes (the board is committed). SVG ids
    # are salted with the figure's name: stable, and distinct between the figures inlined in one page.
    metadata = {"Creator": None, "Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": name or None}):
        fig.savefig(buffer, format=fmt, bbox_inches="tight", dpi=120, metadata=metadata)
    return buffer.getvalue()


def scatter_figure(table: pd.DataFrame, benchmark: str) -> Figure:
    """Accuracy vs mAUC, coloured by data group, an arrow from plain to SpuFix (cf. paper Fig. 11)."""
    part = table[table["benchmark"] == benchmark]
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    groups = sorted(part["data_group"].unique())
    cmap = matplotlib.colormaps["tab10"]
    colours = {g: cmap(i % 10) for i, g in enumerate(groups)}
    for group in groups:
        rows = part[part["data_group"] == group]
        ax.scatter(rows["accuracy"], rows["mauc"], color=colours[group], label=group, s=40, zorder=3, gid=f"{PLAIN}-point")
    fixed = part[part["mauc_spufix"].notna()]
    if not fixed.empty:  # hollow markers at the SpuFix end of each arrow (they also set the axis limits)
        ax.scatter(
            fixed["accuracy_spufix"],
            fixed["mauc_spufix"],
            facecolors="none",
            edgecolors=[colours[g] for g in fixed["data_group"]],
            s=40,
            zorder=3,
            label="after SpuFix",
        )
    for _, row in fixed.iterrows():
        ax.annotate(
            "",
            xy=(row["accuracy_spufix"], row["mauc_spufix"]),
            xytext=(row["accuracy"], row["mauc"]),
            arrowprops={"arrowstyle": "->", "color": colours[row["data_group"]]},
        )
    for _, row in part.iterrows():
        ax.annotate(row["display_name"], (row["accuracy"], row["mauc"]), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.margins(0.15)
    ax.ticklabel_format(useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set(
        xlabel="clean accuracy (positives)",
        ylabel="mAUC (plain; arrow: after SpuFix)",
        title=f"{benchmark}: accuracy vs spurious-feature reliance",
    )
    ax.grid(alpha=0.3)
    ax.legend(title="training data", fontsize=8)
    return fig


def heatmap_figure(results: list[Result], table: pd.DataFrame, benchmark: str) -> Figure:
    """Per-class AUC (plain head) of the top models, classes sorted by their mean AUC."""
    top = table[table["benchmark"] == benchmark].head(TOP_MODELS_IN_HEATMAP)
    by_model = {r.model.name: r for r in results if r.benchmark.name == benchmark}
    frame = pd.DataFrame(
        {row["display_name"]: {c.class_name: c.auc for c in by_model[row["model"]].heads[PLAIN].classes} for _, row in top.iterrows()}
    )
    frame = frame.loc[frame.mean(axis=1).sort_values().index]
    fig = Figure(figsize=(1.2 + 0.9 * frame.shape[1], 1.0 + 0.22 * frame.shape[0]))
    ax = fig.subplots()
    image = ax.imshow(frame.values, aspect="auto", cmap=matplotlib.colormaps["RdYlGn"], vmin=0.0, vmax=1.0)
    ax.set_xticks(range(frame.shape[1]), frame.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(frame.shape[0]), frame.index, fontsize=7)
    ax.set_title(f"{benchmark}: class-wise AUC, top {frame.shape[1]} models")
    fig.colorbar(image, ax=ax, label="AUC")
    return fig


# ------------------------------------------------------------------------------------------------ outputs
