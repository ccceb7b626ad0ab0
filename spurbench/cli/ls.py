"""``spurbench ls``: benchmarks, model families, loadable model names and the registry's model lists."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from spurbench.cli.common import app, console


@app.command("ls")
def list_models(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard filter, e.g. 'timm:*convnext*' or 'open_clip:ViT-B-32*'. Without one, only the families and benchmarks are listed."),
    registry_dir: Path = typer.Option(Path("registry"), "--registry-dir", help="Folder of YAML model lists."),
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most N names per family."),
) -> None:
    """List benchmarks and model families; with a PATTERN, the matching names that timm
    (`timm.list_models`), open_clip (`open_clip.list_pretrained`) and the other families list, and the
    matching models of registry/*.yaml."""
    # lazy: keeps spurbench --help fast (the families import torch)
    from spurbench.adapters import ADAPTERS, split_name
    from spurbench.benchmarks import BENCHMARKS, default_benchmark
    from spurbench.model_lists import load_model_list, registry_files

    benches = Table(title="benchmarks", title_justify="left")
    for col in ("name", "description", "default models"):
        benches.add_column(col)
    default = default_benchmark()
    for name in BENCHMARKS.names():
        plugin = BENCHMARKS.get(name)
        benches.add_row(name + (" (default)" if name == default else ""), plugin.description, ", ".join(plugin.default_models))
    console.print(benches)
    families = Table(title="model families" + (f" matching {pattern!r}" if pattern else ""), title_justify="left")
    families.add_column("family")
    families.add_column("names" if pattern else "name form")
    wanted = [split_name(pattern)[0]] if pattern and ":" in pattern and not any(ch in pattern.split(":")[0] for ch in "*?[") else ADAPTERS.names()
    for family in wanted:
        if pattern is None:
            families.add_row(family, f"{family}:SPEC")
            continue
        spec_pattern = pattern.split(":", 1)[1] if ":" in pattern else pattern
        names = ADAPTERS.get(family).list_names(spec_pattern)
        shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
        families.add_row(family, shown or "[dim]none listed (this family cannot enumerate its models offline, or nothing matches)[/]")
    console.print(families)
    for path in registry_files(registry_dir):
        rows = [e for e in load_model_list(path) if pattern is None or fnmatch.fnmatch(e.model, pattern)]
        if not rows:
            continue
        reg = Table(title=str(path), title_justify="left")
        for col in ("model", "display name", "data"):
            reg.add_column(col)
        for e in rows:
            reg.add_row(e.model, e.display_name or "", e.data or "")
        console.print(reg)
