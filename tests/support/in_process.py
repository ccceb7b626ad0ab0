"""The CLI's entry point (``spurbench.cli.main``) run in the test process, outside a test function's
fixtures (a module fixture's set-up): a command that need not be its own process saves an interpreter's
start and torch's import."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import pytest


def run_in_process(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``spurbench ARGS`` from ``cwd`` with ``env`` set (offline), as the ``cli`` fixture runs it."""
    from spurbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.chdir(cwd)
        for key, value in {"HF_HUB_OFFLINE": "1", **env}.items():
            patch.setenv(key, value)
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["spurbench", *args], code, out.getvalue(), err.getvalue())
