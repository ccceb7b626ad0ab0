"""Rich tables for the terminal, built from a Result (what ``spurbench run`` prints at the end)."""

from __future__ import annotations

from rich.table import Table

from spurbench.benchmarks import BENCHMARKS, get_benchmark
from spurbench.benchmarks.base import ViewMetric
from spurbench.heads import PLAIN
from spurbench.results import AnyResult, Result, ViewResult


def _input_sizes(result: Result) -> str:
    sizes = {role: "x".join(map(str, g.input_size[1:])) for role, g in result.protocol.images.items()}
    return sizes["positive"] if len(set(sizes.values())) == 1 else f"class images {sizes['positive']}, spurious {sizes['negative']}"


def _view_specs(result: ViewResult) -> dict[str, ViewMetric]:
    name = result.benchmark.name
    return {m.key: m for m in get_benchmark(name).view_metric_specs} if name in BENCHMARKS.names() else {}


def _view_spec(key: str, specs: dict[str, ViewMetric]) -> tuple[ViewMetric | None, str, str]:
    """The declared metric a key shows, its class group (``<metric>_<group>``) and its ``@<level>`` suffix."""
    base, _, level = key.partition("@")
    for spec_key in sorted(specs, key=len, reverse=True):  # longest first: "core_prob_drop" before "core_drop"... before "core"
        if base == spec_key or base.startswith(spec_key + "_"):
            return specs[spec_key], base[len(spec_key) + 1 :], level
    return None, "", level


def _view_label(key: str, specs: dict[str, ViewMetric]) -> str:
    spec, group, level = _view_spec(key, specs)
    if spec is None:
        return key
    return spec.header + (f", {group} classes" if group else "") + (f" (σ={level})" if level else "")


def view_summary_table(result: ViewResult) -> Table:
    """A views result: one column per head, one row per metric of the benchmark's plugin."""
    specs = _view_specs(result)
    size = "x".join(map(str, result.protocol.input_size[1:]))
    table = Table(
        title=f"{result.model.name} on {result.benchmark.name} (protocol {result.protocol.name}, {size} px)", title_justify="left"
    )
    table.add_column("metric")
    for name in result.heads:
        table.add_column(name, justify="right", no_wrap=True)
    keys = list(next(iter(result.heads.values())).metrics)
    for key in keys:
        spec = _view_spec(key, specs)[0]
        signed = spec is not None and spec.signed
        table.add_row(
            _view_label(key, specs),
            *("-" if (v := head.metrics.get(key)) is None else f"{v:{'+' if signed else ''}.3f}" for head in result.heads.values()),
        )
    return table


def view_classes_table(result: ViewResult, n: int = 10, head: str = PLAIN) -> Table:
    """The ``n`` classes lowest on the benchmark's headline metric, with its per-class metrics."""
    specs = _view_specs(result)
    key = get_benchmark(result.benchmark.name).headline[0] if result.benchmark.name in BENCHMARKS.names() else next(iter(specs), "")
    rows = sorted(result.heads[head].classes, key=lambda c: (c.metrics.get(key) is None, c.metrics.get(key) or 0.0))[:n]
    shown = [k for k in list(specs)[:4] if any(k in c.metrics for c in rows)]  # the board's columns: the table must fit a terminal
    table = Table(title=f"{n} classes lowest on {specs[key].header if key in specs else key} ({head})", title_justify="left")
    for col in ("class", "name", *(specs[k].header for k in shown), *(("group",) if any(c.group for c in rows) else ())):
        table.add_column(col, no_wrap=True)
    for c in rows:
        cells = ["-" if c.metrics.get(k) is None else f"{c.metrics[k]:{'+' if specs[k].signed else ''}.3f}" for k in shown]
        table.add_row(str(c.class_index), c.class_name, *cells, *((c.group or "",) if any(r.group for r in rows) else ()))
    return table


def summary_table(result: AnyResult) -> Table:
    """One column per head, one row per metric; each row label says what the number is."""
    if isinstance(result, ViewResult):
        return view_summary_table(result)
    temperatures = ", ".join(f"{name} T={head.temperature:g}" for name, head in result.heads.items() if head.temperature != 1.0)
    table = Table(
        title=f"{result.model.name} on {result.benchmark.name} (protocol {result.protocol.name}, {_input_sizes(result)} px"
        + (f", {temperatures}" if temperatures else "")
        + ")",
        title_justify="left",
        caption="mAUC: mean class-wise ROC-AUC, the paper's definition. AP: average precision, what the "
        "authors' code computes and Table 2 prints.",
        caption_justify="left",
    )
    table.add_column("metric")
    for name in result.heads:
        table.add_column(name, justify="right", no_wrap=True)
    aggregates = [head.aggregate for head in result.heads.values()]

    def ci(a) -> str:
        return f"{a.mauc:.3f}" + ("" if a.mauc_ci_low is None else f" [{a.mauc_ci_low:.3f}, {a.mauc_ci_high:.3f}]")

    rows = [
        ("mAUC (ROC-AUC) [95% CI]", ci),
        ('mean AP (Table 2\'s "mAUC")', lambda a: f"{a.mean_ap:.3f}"),
        ("pooled AUC (ROC)", lambda a: f"{a.pooled_auc:.3f}"),
        ("pooled AP (authors' joint)", lambda a: f"{a.pooled_ap:.3f}"),
        ("accuracy (class images)", lambda a: f"{a.accuracy:.3f}"),
        ("spurious → class rate", lambda a: f"{a.spurious_pred_rate:.3f}"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(a) for a in aggregates))
    extra = sorted({name for head in result.heads.values() for name in head.extra_metrics})
    for name in extra:  # the benchmark's own metrics, e.g. the mean AUC of each class group
        table.add_row(
            name.replace("mauc_", "mAUC, classes: ") if name.startswith("mauc_") else name,
            *(_opt(head.extra_metrics.get(name)) for head in result.heads.values()),
        )
    return table


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def worst_classes_table(result: AnyResult, n: int = 10, head: str = PLAIN) -> Table:
    if isinstance(result, ViewResult):
        return view_classes_table(result, n, head)
    rows = sorted(result.heads[head].classes, key=lambda c: c.auc)[:n]
    others = [name for name in result.heads if name != head]  # e.g. the SpuFix head, shown next to it
    other_auc = {name: {c.class_index: c.auc for c in result.heads[name].classes} for name in others}
    # "recall", not "val→k": a class's own images are ImageNet val on some benchmarks, a generated test split or a folder on others
    table = Table(
        title=f"{n} worst classes ({head})",
        title_justify="left",
        caption_justify="left",
        caption="spurious→k: spurious-only images predicted as the class k; recall: the class's own images predicted as k.",
    )
    grouped = any(c.group is not None for c in rows)
    for col in (
        "class",
        "name",
        "AUC",
        *(f"AUC {name}" for name in others),
        "AP",
        "spurious→k",
        "recall",
        *(("group",) if grouped else ()),
    ):
        table.add_column(col, no_wrap=True)  # numbers must never be cut; the feature text is in the result file
    for c in rows:
        table.add_row(
            str(c.class_index),
            c.class_name,
            f"{c.auc:.3f}",
            *(f"{other_auc[name][c.class_index]:.3f}" for name in others),
            f"{c.ap:.3f}",
            f"{c.spurious_pred_rate:.2f}",
            f"{c.val_pred_rate:.2f}",
            *((c.group or "",) if grouped else ()),
        )
    return table


def headline(result: AnyResult) -> tuple[str, float | None]:
    """The benchmark's headline metric of the plain head: (its name, its value)."""
    if isinstance(result, Result):
        return "mAUC", result.heads[PLAIN].aggregate.mauc
    key = get_benchmark(result.benchmark.name).headline[0] if result.benchmark.name in BENCHMARKS.names() else None
    return (key or "-"), (result.heads[PLAIN].metrics.get(key) if key else None)
