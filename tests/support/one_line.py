"""The one assertion of how a user error reaches a user: one clean line, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from spurbench.errors import SpurbenchError


def one_line_error(
    failure: subprocess.CompletedProcess | pytest.ExceptionInfo | BaseException,
    *needles: str,
    out: Path | None = None,
    code: int = 2,
) -> str:
    """Assert that ``failure`` is a clean one-line user error containing every needle; return the line.

    A finished command (``CompletedProcess``, from the console script or the ``cli`` fixture): exit
    ``code`` (2, a user error, unless told), exactly one stderr line, starting ``error: ``, no
    traceback on stdout or stderr, and no result file (``*.json``) under ``out`` when it is given.

    A raised error (a ``pytest.raises`` record, or the exception): a ``SpurbenchError`` (the kind
    the CLI prints as one line with exit 2; any other would be a traceback) whose message is one
    non-empty line without surrounding whitespace.
    """
    if isinstance(failure, subprocess.CompletedProcess):
        assert failure.returncode == code, (failure.returncode, failure.stdout[-2000:], failure.stderr[-3000:])
        assert "Traceback" not in failure.stderr + failure.stdout, failure.stderr[-3000:]
        lines = failure.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), failure.stderr
        line = lines[0]
        if out is not None:
            assert not out.exists() or not list(out.rglob("*.json")), list(out.rglob("*"))
    else:
        if out is not None or code != 2:
            raise TypeError("out and code describe a finished command; a raised error writes nothing and exits nowhere")
        error = failure.value if isinstance(failure, pytest.ExceptionInfo) else failure
        assert isinstance(error, SpurbenchError), f"{type(error).__name__} is not a user error: the CLI would print a traceback: {error}"
        line = str(error)
        assert line and "\n" not in line and line.strip() == line, repr(line)
    for needle in needles:
        assert needle in line, line
    return line
