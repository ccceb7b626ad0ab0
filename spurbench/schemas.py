"""Reading the JSON files spurbench writes back into their pydantic models, one way: strict JSON (no
duplicate keys, no NaN, no nesting past the decoder's limit), then the model, and any failure as one
line naming the file, where in it, and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from spurbench.errors import SpurbenchError
from spurbench.files import strict_json

Model = TypeVar("Model", bound=BaseModel)


def read_model(path: Path, model: type[Model], what: str) -> Model:
    """``path`` parsed as ``model``; a one-line SpurbenchError ``PATH: not a valid WHAT[ at LOC]: MESSAGE``
    (or ``cannot read the WHAT``)."""
    try:
        return model.model_validate(strict_json(Path(path).read_text(encoding="utf-8")))
    # ValidationError is a ValueError; RecursionError: JSON nested deeper than the decoder's recursion limit
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        message = " ".join(str(first["msg"] if first else exc).split())[:200]
        raise SpurbenchError(f"{path}: not a valid {what}{' at ' + where if where else ''}: {message}") from None
    except OSError as exc:  # unreadable: permissions, a folder in its place
        raise SpurbenchError(f"{path}: cannot read the {what} ({exc.strerror})") from None


__all__ = ["read_model"]
