"""``spurbench mine`` (rank an unlabelled pool by labelled spurious components) and ``mine export``."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli.common import console, default_command_group
from spurbench.errors import SpurbenchError

PREDICTED = ("top1", "top5", "none")
app = typer.Typer(
    cls=default_command_group("run"),
    add_completion=False,
    help="Mine a new spurious benchmark from an unlabelled image pool: `spurbench mine --model M --discovery D --components C --pool P --out O` ranks the pool by each labelled component's contribution; verify the candidates with `spurbench label O --mode verify`; `spurbench mine export O --out BENCH` writes the verified images as a benchmark folder.",
)


@app.command("run")
def mine_run(
    model: str = typer.Option(..., "--model", "-m", help="FAMILY:SPEC of the model the discovery was made with."),
    discovery: Path | None = typer.Option(
        None, "--discovery", "-d", help="The `spurbench discover` folder: its saved per-class bases rank the pool (never refitted)."
    ),
    spufix: str | None = typer.Option(
        None,
        "--spufix",
        help="Or a SpuFix artifact fitted for the model (folder or hf://ORG/NAME\\[@REV]): its directions rank the pool; default components: all it clips.",
    ),
    components: Path | None = typer.Option(
        None,
        "--components",
        "-c",
        help="Components to mine, as `spurbench label export` writes them: JSON {class: \\[ranks]} (needed with --discovery).",
    ),
    pool: str = typer.Option(
        ...,
        "--pool",
        help="A folder of images (read recursively; unreadable files are skipped and named), a Hub dataset hf://ORG/NAME\\[@REVISION] (image files or parquet image rows), or the name of a benchmark that generates a pool.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Mining folder: candidates.json, thumbs/, reference/."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="Local .safetensors weights (as given to discover)."),
    per_component: int = typer.Option(
        75,
        "--per-component",
        min=1,
        help="Candidates kept per (class, component) (75: as many as the paper's benchmark has per component).",
    ),
    require_predicted: str = typer.Option(
        "top1", "--require-predicted", help="Keep pool images the model predicts as the class: 'top1' (the paper), 'top5', or 'none'."
    ),
    dedup_cosine: float = typer.Option(
        0.999,
        "--dedup-cosine",
        help="Within a component, drop a candidate whose features have at least this cosine with a higher-ranked one (near-duplicates; distinct generated images reach 0.995).",
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str = typer.Option("cpu", "--device"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Rank an unlabelled pool by each labelled spurious component's contribution (the default command).

    One cached, resumable backbone pass over the pool; mining it again with other components forwards nothing."""
    # lazy: keeps spurbench --help fast (the library imports torch)
    from spurbench.adapters import check_model_name, load_model
    from spurbench.discovery.index import read_index
    from spurbench.mining.checks import (
        artifact_columns,
        check_apart,
        check_components_file,
        check_made_with,
        discovery_bases,
        resolve_components,
    )
    from spurbench.mining.pipeline import mine
    from spurbench.mining.pool import resolve_pool
    from spurbench.mining.sources import from_artifact, from_discovery
    from spurbench.results import check_output_dir
    from spurbench.runtime import check_device
    from spurbench.settings import FeatureSettings
    from spurbench.spufix.artifact import load_artifact
    from spurbench.spufix.fit import read_components

    if require_predicted not in PREDICTED:
        raise SpurbenchError(f"--require-predicted {require_predicted!r}: expected one of {', '.join(PREDICTED)}")
    check_device(device)
    check_model_name(model)
    check_output_dir(out)
    if (discovery is None) == (spufix is None):
        raise SpurbenchError("give the bases to rank by: --discovery DIR (with --components) or --spufix ARTIFACT")
    if discovery is not None and components is None:
        raise SpurbenchError("--discovery needs --components (the file `spurbench label export` writes)")
    check_apart(out, pool)
    # Everything the files and names can tell is checked before the model loads: loading may download
    # its weights or, for a model trained on first use, train it
    listed = read_components(components) if components is not None else None
    table = listed.table if listed is not None else None
    artifact = None
    if discovery is not None:
        index = read_index(discovery)
        check_made_with(f"{discovery}: a discovery of", index.model.name, index.model.weights_revision, model, checkpoint)
        check_components_file(components, listed, index, discovery)  # type: ignore[arg-type]
        discovery_bases(discovery, index, resolve_components(index, table))  # type: ignore[arg-type]
    else:
        artifact = load_artifact(spufix)  # type: ignore[arg-type]
        check_made_with(f"{spufix}: a SpuFix artifact for", artifact.target_model, artifact.target_weights_revision, model, checkpoint)
        if listed is not None and listed.basis != "npca":
            raise SpurbenchError(f"{components}: lists {listed.basis}, but a SpuFix artifact's components are neural PCA ranks")
        if listed is not None and listed.model not in (None, artifact.source_model):  # the artifact's ranks are its source model's
            raise SpurbenchError(
                f"{components}: lists components of a discovery of {listed.model}, but {spufix} was fitted from {artifact.source_model}'s components"
            )
        artifact_columns(artifact, spufix, table)  # type: ignore[arg-type]
    pool_images = resolve_pool(pool)
    adapter = load_model(model, checkpoint=checkpoint)
    source = from_discovery(discovery, table, adapter) if discovery is not None else from_artifact(artifact, spufix, table, adapter)  # type: ignore[arg-type]
    settings = FeatureSettings(batch_size=batch_size, device=device, progress=not quiet)
    mined = mine(
        adapter,
        source,
        pool_images,
        out,
        settings,
        per_component=per_component,
        require_predicted=require_predicted,
        dedup_cosine=dedup_cosine,
    )
    total = sum(len(c.candidates) for c in mined.components)
    if pool_images.unreadable:
        shown = ", ".join(pool_images.unreadable[:3]) + (" ..." if len(pool_images.unreadable) > 3 else "")
        console.print(
            f"skipped {len(pool_images.unreadable)} unreadable pool files: {shown}", markup=False, highlight=False, soft_wrap=True
        )
    console.print(
        f"mined {total} candidates for {len(mined.components)} components from {mined.pool.num_images} pool images: {out / 'candidates.json'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command("export")
def mine_export(
    folder: Path = typer.Argument(..., help="Mining folder (from `spurbench mine`) with its verify.json."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Benchmark folder to write (must not exist or be empty): one folder of images per (class, component), README.md and spurbench.json.",
    ),
    min_per_class: int = typer.Option(
        1, "--min-per-class", min=1, help="Refuse (writing nothing) when a class has fewer verified object-absent images."
    ),
    min_votes: int = typer.Option(
        1, "--min-votes", min=1, help="An image goes in when at least this many labelers said 'object absent' and none said 'present'."
    ),
    name: str | None = typer.Option(None, "--name", help="The benchmark's name in its card (default: the --out folder's name)."),
) -> None:
    """Write the verified object-absent candidates as a benchmark folder: `spurbench run --benchmark
    spurious-folder --data-dir OUT` scores any model on it."""
    # lazy: keeps spurbench --help fast (pydantic and the library's torch)
    from spurbench.mining.verdicts import export_benchmark

    checksum, per_class = export_benchmark(folder, out, min_votes, min_per_class, name)
    total = sum(c["exported"] for c in per_class.values())
    console.print(
        f"exported {total} verified images in {len(per_class)} classes to {out} (content checksum {checksum})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
