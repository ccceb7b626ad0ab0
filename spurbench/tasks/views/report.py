"""What ``spurbench run`` prints of a views result: the plugin's metrics per head, and the classes
lowest on its headline."""

from __future__ import annotations

from rich.table import Table

from spurbench.benchmarks.view_scoring import ViewMetric
from spurbench.heads import PLAIN
from spurbench.results import ViewResult
from spurbench.tasks.views.declared import headline_keys, metric_specs


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
    """One column per head, one row per metric of the benchmark's plugin."""
    specs = metric_specs(result.benchmark.name)
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
    specs = metric_specs(result.benchmark.name)
    keys = headline_keys(result.benchmark.name)
    key = keys[0] if keys is not None else next(iter(specs), "")
    rows = sorted(result.heads[head].classes, key=lambda c: (c.metrics.get(key) is None, c.metrics.get(key) or 0.0))[:n]
    shown = [k for k in list(specs)[:4] if any(k in c.metrics for c in rows)]  # the board's columns: the table must fit a terminal
    table = Table(title=f"{n} classes lowest on {specs[key].header if key in specs else key} ({head})", title_justify="left")
    for col in ("class", "name", *(specs[k].header for k in shown), *(("group",) if any(c.group for c in rows) else ())):
        table.add_column(col, no_wrap=True)
    for c in rows:
        cells = ["-" if c.metrics.get(k) is None else f"{c.metrics[k]:{'+' if specs[k].signed else ''}.3f}" for k in shown]
        table.add_row(str(c.class_index), c.class_name, *cells, *((c.group or "",) if any(r.group for r in rows) else ()))
    return table


__all__ = ["view_classes_table", "view_summary_table"]
