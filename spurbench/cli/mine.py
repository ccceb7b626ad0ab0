"""``spurbench mine`` (rank an unlabelled pool by labelled spurious components) and ``mine export``."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli.common import console, default_command_group

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
    from spurbench.mining.pipeline import mine
    from spurbench.settings import FeatureSettings, MiningSettings

    features = FeatureSettings(batch_size=batch_size, device=device, progress=not quiet)
    features.check_machine()
    settings = MiningSettings.from_command(
        model=model,
        checkpoint=checkpoint,
        discovery=discovery,
        spufix=spufix,
        components=components,
        pool=pool,
        out=out,
        per_component=per_component,
        require_predicted=require_predicted,
        dedup_cosine=dedup_cosine,
        features=features,
    )
    mined = mine(settings)
    total = sum(len(c.candidates) for c in mined.components)
    unreadable = mined.pool.unreadable
    if unreadable:
        shown = ", ".join(unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
        console.print(f"skipped {len(unreadable)} unreadable pool files: {shown}", markup=False, highlight=False, soft_wrap=True)
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
