"""Command line: argument parsing only, one module per sub-app; the work is done by library functions.

Library imports inside the command functions are deferred on purpose (each marked ``# lazy``): they
keep ``spurbench --help`` from importing torch.
"""

from __future__ import annotations

import sys
import traceback

import typer

from spurbench.cli import (  # run, sweep, ls, discover register their commands on app
    dataset,
    discover,
    label,
    leaderboard,
    ls,
    mine,
    run,
    spufix,
    sweep,
    train,  # noqa: F401 (registers `spurbench train` on app)
)
from spurbench.cli.common import DEBUG, app, debugging, err_console, tidy_help
from spurbench.errors import SpurbenchError

app.add_typer(dataset.app, name="dataset")
app.add_typer(label.app, name="label")
app.add_typer(leaderboard.app, name="leaderboard")
app.add_typer(mine.app, name="mine")
app.add_typer(spufix.app, name="spufix")

__all__ = ["app", "discover", "ls", "main", "run", "sweep"]


INTERRUPTED = "interrupted; run the same command to resume (finished feature shards are cached)"
TRAINING_INTERRUPTED = "interrupted; run the same command to train again from scratch (an unfinished training keeps nothing)"


def interrupted_line(args: list[str]) -> str:
    """What to do after Ctrl-C, for the command given: a training starts again, everything else resumes."""
    command = next((arg for arg in args if not arg.startswith("-")), "")
    return TRAINING_INTERRUPTED if command == "train" else INTERRUPTED


def one_line(text: str) -> str:
    """User-supplied text (names, paths) as one literal line: newlines and control characters escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in str(text))


def print_error(message: str) -> None:
    """One line on stderr, printed literally: no rich markup, so ``[...]`` in a name or path survives."""
    err_console.print("error: " + one_line(message), markup=False, highlight=False, soft_wrap=True, emoji=False)


def _click_class(exc: BaseException, name: str) -> bool:
    # typer >= 0.29 ships its own copy of click (typer._click), older typer uses the click package: their
    # exception classes are unrelated, so match on the class name in the hierarchy, not on one module's class.
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def usage_exit(exc: BaseException) -> int:
    """Exit status of a click/typer usage error after printing it as one line (2 for bad usage)."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    context = getattr(exc, "ctx", None)
    command = getattr(context, "command_path", None) if context is not None else None
    print_error(f"{message} (see '{command} --help')" if command else message)
    return int(getattr(exc, "exit_code", 2) or 2)


def plugin_error(exc: BaseException) -> int | None:
    """An exception raised inside a third-party plugin (see ``registry.plugin_in_traceback``): one line
    naming the plugin and the error, exit 1; the traceback too under ``--debug`` / SPURBENCH_DEBUG=1.
    None when the exception is not a plugin's (a spurbench bug keeps its traceback)."""
    # lazy: keeps spurbench --help fast (the CLI imports no library stage until it needs one)
    from spurbench.registry import plugin_in_traceback

    found = plugin_in_traceback(exc.__traceback__)
    if found is None:
        return None
    plugin, where = found
    if debugging():
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debugging() else "; spurbench --debug COMMAND ... (or SPURBENCH_DEBUG=1) shows the traceback"
    print_error(
        f"plugin {plugin} failed in {where}: {type(exc).__name__}: {exc} (a bug in the plugin, or an input it does not check{hint})"
    )
    return 1


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit 2; Ctrl-C exits 130; a
    plugin's own exception is one line, exit 1. A bare ``spurbench`` shows the help."""
    args = list(sys.argv[1:] if argv is None else argv)
    DEBUG["flag"] = False
    try:
        status = tidy_help(typer.main.get_command(app))(args=args or ["--help"], standalone_mode=False, prog_name="spurbench")
    except SpurbenchError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print(interrupted_line(args), markup=False, soft_wrap=True)  # one line, however narrow the terminal
        sys.exit(130)
    except Exception as exc:
        if _click_class(exc, "ClickException"):
            sys.exit(usage_exit(exc))
        if _click_class(exc, "Abort"):  # older click turns Ctrl-C (and EOF at a prompt) into Abort
            interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
            err_console.print(interrupted_line(args) if interrupted else "aborted", markup=False, soft_wrap=True)
            sys.exit(130 if interrupted else 1)
        code = plugin_error(exc)
        if code is not None:
            sys.exit(code)
        raise
    # In non-standalone mode typer returns the exit code instead of raising (Ctrl-C -> 130).
    if isinstance(status, int) and status != 0:
        if status == 130:
            err_console.print(interrupted_line(args), markup=False, soft_wrap=True)  # one line, however narrow the terminal
        sys.exit(status)
