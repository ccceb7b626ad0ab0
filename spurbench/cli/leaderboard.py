"""``spurbench leaderboard verify | build | push | pull``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from spurbench.cli.common import console, result_files

app = typer.Typer(help="Verify result files, build the leaderboard, publish it to the Hub.", add_completion=False)


@app.command("verify")
def leaderboard_verify(
    results: Optional[List[Path]] = typer.Argument(None, help="Result files or folders (default: leaderboard/results)."),
) -> None:
    """Validate each result file and recompute every metric from its per-image probabilities (1e-6)."""
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.verify import verify_result

    files = result_files(results, Path("leaderboard/results"))
    for path in files:
        result = verify_result(path)
        console.print(f"[green]ok[/] {path} ({result.model.name} on {result.benchmark.name} {result.benchmark.revision}, heads: {', '.join(result.heads)})")
    console.print(f"{len(files)} result file(s) verified")


@app.command("build")
def leaderboard_build(
    results: Path = typer.Option(Path("leaderboard/results"), "--results", help="Folder of result files."),
    out: Path = typer.Option(Path("leaderboard/site"), "--out", help="Site folder (index.html, leaderboard.json)."),
    board_dir: Path = typer.Option(Path("leaderboard"), "--board-dir", help="Where README.md (the Markdown board), leaderboard.csv and the PNG plots go."),
    registry_dir: Path = typer.Option(Path("registry"), "--registry-dir", help="Model lists with display names, data groups and paper-reported numbers."),
) -> None:
    """Render the verified results: Markdown table, CSV, PNG plots and a self-contained HTML page. No model runs."""
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.build import build_board

    files = build_board(result_files([results], results), out, board_dir=board_dir, registry_dir=registry_dir)
    console.print(f"built {files.markdown}, {files.csv}, {files.html} and {len(files.pngs)} plots")


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
    revision: Optional[str] = typer.Option(None, "--revision", help="Pinned revision."),
) -> None:
    """Fetch the published result files (each verified before it is written)."""
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.hub import pull_leaderboard

    files = pull_leaderboard(repo, out, revision)
    console.print(f"{len(files)} verified result file(s) in {out}")
