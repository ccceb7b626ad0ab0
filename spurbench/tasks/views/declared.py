"""What a views benchmark's plugin declares about its metrics, looked up by the benchmark's name (a
result names its benchmark; one of no registered views plugin declares nothing). Read with ``stated``:
a plugin with ``ScoresViews`` unnamed inherits none of its attributes."""

from __future__ import annotations

from spurbench.benchmarks.capabilities import ScoresViews, stated
from spurbench.benchmarks.view_scoring import ViewMetric
from spurbench.tasks.catalog import plugin_named


def views_plugin(benchmark: str) -> ScoresViews | None:
    plugin = plugin_named(benchmark)
    return plugin if isinstance(plugin, ScoresViews) else None


def metric_specs(benchmark: str) -> dict[str, ViewMetric]:
    """Its declared metrics by key, in the plugin's order."""
    plugin = views_plugin(benchmark)
    return {m.key: m for m in stated(plugin, ScoresViews, "view_metric_specs")} if plugin is not None else {}


def headline_keys(benchmark: str) -> tuple[str, str | None, str | None] | None:
    """Its headline metric's key and its CI's low and high keys (None: no registered views plugin, or one
    that states no headline)."""
    plugin = views_plugin(benchmark)
    return stated(plugin, ScoresViews, "headline") if plugin is not None else None


__all__ = ["headline_keys", "metric_specs", "views_plugin"]
