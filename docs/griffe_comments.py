"""A griffe extension (mkdocs.yml, mkdocstrings' ``extensions``): an attribute without a docstring is
documented by its comment, so that the API reference shows what the code says of each field.

spurbench documents the fields of its records (``BenchmarkImage``, ``Reference``, ``ModelCard``, the
result models) with a comment beside each (``image_id: str  # unique and stable ...``) or in the lines
right above it; griffe reads docstrings only. The docs' result-file reference (docs/hooks.py) reads the
same comments through :func:`attribute_comment`.
"""

from __future__ import annotations

import functools
import io
import tokenize
from pathlib import Path

import griffe

# Comments that talk to tools, not to readers.
TOOL_PREFIXES = ("type:", "noqa", "pragma", "fmt:", "lazy:")


@functools.cache
def comments_of(path: str) -> tuple[dict[int, str], dict[int, str]]:
    """The comments of a Python file: ({line: text} of comments after code, {line: text} of whole-line comments)."""
    trailing: dict[int, str] = {}
    whole_line: dict[int, str] = {}
    source = Path(path).read_text(encoding="utf-8")
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if text.startswith(TOOL_PREFIXES):
                continue
            line = token.start[0]
            (trailing if line in code_lines else whole_line)[line] = text
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    return trailing, whole_line


def attribute_comment(path: str, lineno: int, endlineno: int | None = None) -> str | None:
    """What the comments say of the statement on lines ``lineno..endlineno``: the comment after its code,
    else the whole-line comments right above it (joined), else None."""
    trailing, whole_line = comments_of(path)
    for line in range(lineno, (endlineno or lineno) + 1):
        if line in trailing:
            return trailing[line]
    above: list[str] = []
    line = lineno - 1
    while line in whole_line:
        above.insert(0, whole_line[line])
        line -= 1
    return " ".join(above) or None


class FieldComments(griffe.Extension):
    """Gives every attribute that has no docstring its comment (see the module's docstring)."""

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: object) -> None:
        if attr.docstring is not None or attr.lineno is None or not isinstance(attr.filepath, Path):
            return
        comment = attribute_comment(str(attr.filepath), attr.lineno, attr.endlineno)
        if comment:
            attr.docstring = griffe.Docstring(comment, lineno=attr.lineno, endlineno=attr.endlineno, parent=attr)
