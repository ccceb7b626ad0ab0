"""The pydantic side every stage shares: ``Strict``, the base of every model spurbench reads back (an
unknown key is an error, not ignored); ``first_error``, a validation failure as one line; and
``read_model``, a JSON file read one way: strict JSON (no duplicate keys, no NaN, no nesting past the
decoder's limit), then the model, and any failure as one line naming the file, where in it, and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from spurbench.errors import SpurbenchError
from spurbench.files import strict_json

Model = TypeVar("Model", bound=BaseModel)


class Strict(BaseModel):
    """A key the model does not know is an error: a misspelt key must not be read as its default.
    (No protected namespaces: fields such as ``model_name`` are spurbench's, not pydantic's.)"""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class FirstError(NamedTuple):
    """The first error of a failed validation, ready for a one-line message."""

    where: str  # the dotted location (``spec.key``, ``inner.0.value``), or the ``root`` asked for where it is the whole input
    message: str  # pydantic's text (or the exception's) on one line
    kind: str = ""  # pydantic's error type (``extra_forbidden``, ...); "" for an exception that is not a ValidationError
    loc: tuple[Any, ...] = ()


def first_error(exc: Exception, root: str = "", limit: int | None = None) -> FirstError:
    """``exc``'s first error: where (``root`` when the location is empty) and the message, whitespace
    collapsed to one line and cut at ``limit`` characters. Any other exception: its own text."""
    if not isinstance(exc, ValidationError):
        return FirstError(root, " ".join(str(exc).split())[:limit])
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    return FirstError(".".join(str(p) for p in loc) or root, " ".join(str(first["msg"]).split())[:limit], first["type"], loc)


def first_error_line(exc: Exception, root: str = "", limit: int | None = None) -> str:
    """``WHERE: MESSAGE`` of ``exc``'s first error, or the message alone where there is no location."""
    where, message = first_error(exc, root, limit)[:2]
    return f"{where}: {message}" if where else message


def read_model(path: Path, model: type[Model], what: str) -> Model:
    """``path`` parsed as ``model``; a one-line SpurbenchError ``PATH: not a valid WHAT[ at LOC]: MESSAGE``
    (or ``cannot read the WHAT``)."""
    try:
        return model.model_validate(strict_json(Path(path).read_text(encoding="utf-8")))
    # ValidationError is a ValueError; RecursionError: JSON nested deeper than the decoder's recursion limit
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        where, message = first_error(exc, limit=200)[:2]
        raise SpurbenchError(f"{path}: not a valid {what}{' at ' + where if where else ''}: {message}") from None
    except OSError as exc:  # unreadable: permissions, a folder in its place
        raise SpurbenchError(f"{path}: cannot read the {what} ({exc.strerror})") from None


# A spurious feature's name as people give it on the label page ("bird feeder", "watermark"): a short
# phrase, shown in headings and tables, carried by label exports, SpuFix artifacts and mined benchmarks.
FEATURE_NAME_LENGTH = 60


def feature_name(value: object) -> str | None:
    """``value`` as a feature name: a string, spaces collapsed to one line, 1 to FEATURE_NAME_LENGTH
    characters; None when it is not one."""
    if not isinstance(value, str):
        return None
    cleaned = " ".join(value.split())
    return cleaned if 0 < len(cleaned) <= FEATURE_NAME_LENGTH and cleaned == value else None


__all__ = ["FEATURE_NAME_LENGTH", "FirstError", "Strict", "feature_name", "first_error", "first_error_line", "read_model"]
