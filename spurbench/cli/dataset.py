"""``spurbench dataset build | download``: a benchmark's Hub dataset (for benchmarks that have one)."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli.common import console

app = typer.Typer(help="Build, publish and download a benchmark's Hub dataset.", add_completion=False)

BENCHMARK_HELP = "Benchmark whose dataset this is (default: the one a benchmark folder names in its spurbench.json, else the one registered benchmark with a Hub dataset)."


def _plugin(benchmark: str | None, method: str, source: Path | None = None):
    # lazy: keeps spurbench --help fast
    from spurbench.benchmarks import dataset_benchmark, get_benchmark

    return get_benchmark(benchmark) if benchmark is not None else dataset_benchmark(method, source)


@app.command("build")
def dataset_build(
    from_upstream: Path = typer.Option(
        ...,
        "--from-upstream",
        help="The unzipped upstream data folder (e.g. an unpacked upstream zip), or a benchmark folder `spurbench mine export` wrote.",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where to write parquet shards and the dataset card (default: <benchmark>-hf)."
    ),
    push: str | None = typer.Option(None, "--push", help="Upload the built dataset to this Hub dataset repo."),
    benchmark: str | None = typer.Option(None, "--benchmark", "-b", help=BENCHMARK_HELP),
) -> None:
    """Turn the upstream folder layout into a Hub dataset (parquet shards, card, checksum)."""
    # lazy: keeps spurbench --help fast
    from spurbench.hub import check_repo_id

    if push is not None:
        check_repo_id(push, "--push")  # before the build, not after it
    # lazy: keeps spurbench --help fast
    from spurbench.benchmarks import PublishesDataset, require

    plugin = _plugin(benchmark, "build_dataset", from_upstream)
    out = out or Path(f"{plugin.name}-hf")
    console.print(f"built {out}: {require(plugin, PublishesDataset, 'build_dataset').build_dataset(from_upstream, out)}")
    if push:
        console.print(f"pushed to {require(plugin, PublishesDataset, 'push_dataset').push_dataset(out, push)}")


@app.command("download")
def dataset_download(
    dataset_repo: str | None = typer.Option(None, "--dataset-repo", help="Hub dataset repo (default: the one the benchmark names)."),
    revision: str | None = typer.Option(None, "--revision", help="Pinned revision."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Copy the verified snapshot here (default: stay in the Hub cache)."),
    benchmark: str | None = typer.Option(None, "--benchmark", "-b", help=BENCHMARK_HELP),
) -> None:
    """Download a benchmark's Hub dataset and verify its checksum."""
    # lazy: keeps spurbench --help fast
    from spurbench.hub import check_repo_id

    if dataset_repo is not None:
        check_repo_id(dataset_repo, "--dataset-repo")
    # lazy: keeps spurbench --help fast
    from spurbench.benchmarks import PublishesDataset, require

    plugin = require(_plugin(benchmark, "download_dataset"), PublishesDataset, "download_dataset")
    console.print(f"verified snapshot at {plugin.download_dataset(dataset_repo, revision, out)}")
