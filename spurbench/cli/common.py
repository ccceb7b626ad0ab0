"""The root typer app, the consoles and small argument helpers shared by the sub-app modules."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from spurbench._version import __version__
from spurbench.errors import SpurbenchError

app = typer.Typer(
    help="Measure how much image classifiers rely on harmful spurious features, and repair it without retraining (SpuFix).",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class DefaultCommandGroup(TyperGroup):
    """A group whose arguments, when the first names no subcommand, go to its ``default_command``:
    ``spurbench label DIR`` is ``spurbench label serve DIR``, ``spurbench mine --model M ...`` is
    ``spurbench mine run --model M ...``. (Typer cannot give a group with subcommands arguments of its own.)"""

    default_command = ""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def default_command_group(name: str) -> type[DefaultCommandGroup]:
    return type(f"Default{name.title()}Group", (DefaultCommandGroup,), {"default_command": name})


def _print_version(value: bool) -> None:
    if value:
        console.print(f"spurbench {__version__}", markup=False, highlight=False)
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version, help="Print spurbench's version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error raised inside a plugin (also SPURBENCH_DEBUG=1)."),
) -> None:
    DEBUG["flag"] = debug


DEBUG = {"flag": False}  # --debug of this invocation (main resets it)


def debugging() -> bool:
    """``--debug`` was given, or SPURBENCH_DEBUG is set to anything but 0 / empty."""
    return DEBUG["flag"] or os.environ.get("SPURBENCH_DEBUG", "").strip() not in ("", "0")


_LIST_ITEM = re.compile(r"\s|[-*•] |\d+[.)] ")


def unwrap(text: str) -> str:
    """Help text with each paragraph on one line, for the terminal to wrap: typer's rich help keeps the
    source's line breaks. Paragraphs are separated by blank lines; list items, indented lines and click's
    ``\\b`` (no re-wrap) paragraphs keep their breaks."""
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines = paragraph.split("\n")
        if paragraph.startswith("\b"):
            paragraphs.append(paragraph)
            continue
        merged = [lines[0]]
        for line in lines[1:]:
            if _LIST_ITEM.match(line):
                merged.append(line)
            else:
                merged[-1] = f"{merged[-1].rstrip()} {line.strip()}"
        paragraphs.append("\n".join(merged))
    return "\n\n".join(paragraphs)


def tidy_help(command: Any) -> Any:
    """Every (sub)command's help re-flowed (``unwrap``), and flags shown without a type: typer >= 0.29
    prints ``<bool>`` beside an on/off flag, which takes no value."""
    if getattr(command, "help", None):
        command.help = unwrap(command.help)
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""
    made = command.get_help_option  # --help is made per context, outside ``params``

    def help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


console = Console()
err_console = Console(stderr=True)


def key_values(pairs: list[str] | None, flag: str = "--option") -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict; a one-line error for one without ``=``."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpurbenchError(f"{flag} {pair!r}: expected KEY=VALUE")
        out[key.strip().replace("-", "_")] = value
    return out


RESULTS = Path("spurbench-results")  # where ``run`` writes by default (cli.options.OUTPUT); verify and build read it by default


def result_files(paths: list[Path] | None, default: Path = RESULTS) -> list[Path]:
    """Result JSON files named directly or found in folders (default: where ``run`` writes); a one-line
    error when there are none."""
    files: list[Path] = []
    for path in paths or [default]:
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.is_file():
            files.append(path)
        elif not paths:
            raise SpurbenchError(f"no results in {path}/ (where `spurbench run` writes by default): name result files or folders")
        else:
            raise SpurbenchError(f"{path}: no such result file or folder")
    if not files:
        raise SpurbenchError(f"no result files (*.json) in {', '.join(str(p) for p in paths or [default])}")
    return files


def board_folder(results: list[Path]) -> Path:
    """Where ``leaderboard build`` writes by default: a folder next to the first results folder, named
    after it (``spurbench-results`` -> ``spurbench-results-board``), never the repository's board."""
    first = results[0] if results[0].is_dir() else results[0].parent
    if not first.name:  # ".", or a path ending in ".."
        first = first.resolve()
    return first.with_name(first.name + "-board")
