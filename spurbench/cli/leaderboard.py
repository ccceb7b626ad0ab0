"""``spurbench leaderboard verify | build | push | pull``."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli.common import board_folder, console, err_console, result_files
from spurbench.errors import SpurbenchError

app = typer.Typer(help="Verify result files, build the leaderboard, publish it to the Hub.", add_completion=False)


RESULTS_ARGUMENT = typer.Argument(
    None, help="Result files or folders (default: spurbench-results, where `spurbench run` writes).", show_default=False
)


@app.command("verify")
def leaderboard_verify(results: list[Path] | None = RESULTS_ARGUMENT) -> None:
    """Validate each result file and recompute every metric from its per-image probabilities (1e-6)."""
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.verify import verify_result

    files = result_files(results)
    for path in files:
        result = verify_result(path)
        console.print(
            f"[green]ok[/] {path} ({result.model.name} on {result.benchmark.name} {result.benchmark.revision}, heads: {', '.join(result.heads)})",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"{len(files)} result file(s) verified")


@app.command("build")
def leaderboard_build(
    results: list[Path] | None = RESULTS_ARGUMENT,
    results_option: list[Path] | None = typer.Option(
        None, "--results", hidden=True, help="Result files or folders (the same as the arguments; kept for older scripts)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder of the page (index.html, leaderboard.json). Default: RESULTS-board, next to the (first) results folder.",
        show_default=False,
    ),
    board_dir: Path | None = typer.Option(
        None,
        "--board-dir",
        help="Where README.md (the Markdown board), leaderboard.csv and the PNG plots go. Default: the --out folder.",
        show_default=False,
    ),
    model_lists_dir: Path = typer.Option(
        Path("model-lists"), "--model-lists-dir", help="Folder of model lists with display names, data groups and paper-reported numbers."
    ),
) -> None:
    """Render the verified results: Markdown table, CSV, PNG plots and a self-contained HTML page. No model runs.

    Reads where `spurbench run` writes (spurbench-results) unless given result files or folders, and
    writes next to them (spurbench-results-board); the repository's board (leaderboard/) is written only
    when named: `--out leaderboard/site --board-dir leaderboard`. Where a model has several results for one
    benchmark, the newest is shown (its features' date; then the last file name) and a line says which.
    """
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.build import build_board

    files = result_files([*(results or []), *(results_option or [])] or None)
    out = out if out is not None else board_folder(files)
    board_dir = board_dir if board_dir is not None else out
    read_from = {p.parent.resolve() for p in files}
    for folder in (out, board_dir):
        if folder.resolve() in read_from:  # its leaderboard.json would be read as a result next time
            raise SpurbenchError(
                f"{folder}: the board would be written among the results it is built from; choose another --out / --board-dir"
            )
    built = build_board(files, out, board_dir=board_dir, model_lists_dir=model_lists_dir)
    for note in built.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"built {built.markdown}, {built.csv}, {built.html} and {len(built.pngs)} plots from {len(files)} result file(s)",
        soft_wrap=True,
        highlight=False,
    )


@app.command("push")
def leaderboard_push(
    repo: str = typer.Option(..., "--repo", help="Hub dataset repo, ORG/NAME (needs HF_TOKEN or a login)."),
    results: Path = typer.Option(Path("leaderboard/results"), "--results"),
    site: Path = typer.Option(Path("leaderboard/site"), "--site", help="Built site to upload too (skipped if missing)."),
) -> None:
    """Verify, then upload the results and the built site with a dataset card."""
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.hub import push_leaderboard

    console.print(f"pushed: {push_leaderboard(repo, results, site)}")


@app.command("pull")
def leaderboard_pull(
    repo: str = typer.Option("spurbench/leaderboard", "--repo", help="Hub dataset repo the board is published in."),
    out: Path = typer.Option(Path("leaderboard/results"), "--out"),
    revision: str | None = typer.Option(None, "--revision", help="Pinned revision."),
) -> None:
    """Fetch the published result files (each verified before it is written)."""
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.hub import pull_leaderboard

    files = pull_leaderboard(repo, out, revision)
    console.print(f"{len(files)} verified result file(s) in {out}")
