"""``spurbench label DIR`` (serve the label pages) and ``spurbench label export DIR --out F``."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

from spurbench.cli.common import console, default_command_group, err_console
from spurbench.errors import SpurbenchError

app = typer.Typer(
    cls=default_command_group("serve"),
    add_completion=False,
    help="Label discovered components in the browser: `spurbench label DIR` serves the pages of a `spurbench discover` folder on 127.0.0.1; `spurbench label export DIR --out F` writes the components labelled spurious for `spufix fit --components`.",
)


@app.command("serve")
def label_serve(
    folder: Path = typer.Argument(
        ...,
        help="Discovery folder (written by `spurbench discover`); the labels go to FOLDER/labels.jsonl (a folder labelled before keeps its labels.json, moved into it at the first new label).",
    ),
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (only this machine can reach the pages)."),
    labeler: str | None = typer.Option(
        None, "--labeler", help="Name stored with each of your labels (default: your OS user name, from getpass.getuser())."
    ),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="'label': label a discovery's components (FOLDER from `spurbench discover`); 'verify': say whether the class's object is absent from each mined candidate (FOLDER from `spurbench mine`). Default: what FOLDER holds.",
    ),
) -> None:
    """Serve the label pages of FOLDER on http://127.0.0.1:PORT until Ctrl-C (the default command)."""
    # lazy: keeps spurbench --help fast (fastapi, uvicorn)
    from spurbench.labelpage.server import HOST, bind, serve
    from spurbench.ledger import check_labeler

    if mode is None:
        mode = "verify" if (folder / "candidates.json").is_file() and not (folder / "discovery.json").is_file() else "label"
    if mode not in ("label", "verify"):
        raise SpurbenchError(f"--mode {mode!r}: expected label or verify")
    name = check_labeler(labeler if labeler is not None else getpass.getuser())
    # the folder, its labels and the port first: the pages' app imports the pipeline (torch, 8-60 s)
    if mode == "verify":
        # lazy: the store alone, without the pipeline
        from spurbench.mining.verdicts import check_folder
    else:
        # lazy: the store alone, without the pipeline
        from spurbench.discovery.labels import check_folder
    check_folder(folder)
    sock = bind(port)
    try:
        if mode == "verify":
            # lazy: the app imports the pipeline (torch), only after the cheap checks
            from spurbench.labelpage.verdict_pages import create_verdict_app as create
        else:
            # lazy: the app imports the pipeline (torch), only after the cheap checks
            from spurbench.labelpage.app import create_app as create
        application = create(folder, name)  # every check again, with the schemas; links out of the folder refused
    except BaseException:
        sock.close()
        raise
    console.print(
        f"{'verifying' if mode == 'verify' else 'labelling'} {folder} as {name}: http://{HOST}:{port}/  (Ctrl-C to stop)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    serve(application, sock)


@app.command("export")
def label_export(
    folder: Path = typer.Argument(..., help="Discovery folder with its labels (labels.jsonl, or labels.json from before)."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help='Components file to write, JSON {"components": {class: \\[ranks]}, ...}; `spufix fit --components` reads it.',
    ),
    min_votes: int = typer.Option(
        1,
        "--min-votes",
        help="Export a component when at least this many labelers' latest label is 'spurious' (other labels do not count against it).",
    ),
) -> None:
    """Write the components labelled spurious (for the neurons basis: their neuron indices)."""
    # lazy: keeps spurbench --help fast (pydantic and the discovery's torch)
    from spurbench.discovery.label_export import check_out, export_components
    from spurbench.discovery.labels import check_folder

    if min_votes < 1:
        raise SpurbenchError(f"--min-votes {min_votes}: must be at least 1")
    check_folder(folder)  # the folder, its labels and --out before the discovery's schema imports torch
    check_out(folder, out)
    payload = export_components(
        folder, min_votes, out, warn=lambda message: err_console.print("warning: " + message, markup=False, highlight=False, soft_wrap=True)
    )
    count = sum(len(v) for v in payload["components"].values())
    who = ", ".join(payload["labelers"]) or "nobody"
    console.print(
        f"exported {count} components in {len(payload['components'])} classes (at least {min_votes} spurious vote(s); labelers: {who}): {out}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
