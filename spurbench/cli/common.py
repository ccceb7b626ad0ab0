"""The root typer app, the consoles and small argument helpers shared by the sub-app modules."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperGroup

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


def result_files(paths: list[Path] | None, default: Path) -> list[Path]:
    """Result JSON files named directly or found in folders; a one-line error when there are none."""
    files: list[Path] = []
    for path in paths or [default]:
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise SpurbenchError(f"{path}: no such result file or folder")
    if not files:
        raise SpurbenchError(f"no result files (*.json) in {', '.join(str(p) for p in paths or [default])}")
    return files
