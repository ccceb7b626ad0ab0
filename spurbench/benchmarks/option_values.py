"""Option values given as text (the command line's ``-O KEY=VALUE``) read as their option's type.

A plugin's options model types its fields (``sigma: list[float]``, ``upstream_mask_zoom: bool``), while
text arrives as text. Each value is read against its field's annotation by pydantic; the options model
then checks the field's constraints (``min_length``, ``ge``), as it does for every caller. The readings,
first that fits:

* a field that takes text (``str``, ``str | None``) keeps the text exactly: ``data_dir=a,b`` is the
  folder ``a,b``, ``data_dir=none`` the folder ``none``;
* ``none`` or ``null`` (any case) is None, for an Optional field that takes no text (nothing else can
  mean it there);
* the text as JSON: ``[0.5,1.0]``, ``3``, ``0.5``, ``true``;
* the text as pydantic converts a string: ``True``, ``yes``, ``off``, ``1`` for a boolean (pydantic's
  spellings: true/false, yes/no, on/off, 1/0, t/f, y/n, any case), ``1e-3`` for a number;
* for a list, comma-separated items, with or without brackets: ``0.5,1.0``, ``[.5, 1]``, a single ``0.5``.

Keys the model does not have stay as they are, so the options model refuses them with a suggestion.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from pydantic import BaseModel, TypeAdapter, ValidationError

from spurbench.benchmarks.base import BenchmarkPlugin
from spurbench.errors import SpurbenchError

_NONE = ("none", "null")
# What a scalar type is called and two values of it as typed: the example of a refusal.
_SCALARS: dict[Any, tuple[str, str, str, str]] = {
    bool: ("true or false", "true or false values", "true", "false"),
    int: ("a whole number", "whole numbers", "1", "2"),
    float: ("a number", "numbers", "0.5", "1.0"),
    str: ("text", "texts", "a", "b"),
}
_LISTS = (list, tuple, set, frozenset)


def typed_values(options_model: type[BaseModel], raw: Mapping[str, str], benchmark: str) -> dict[str, Any]:
    """``raw`` with each value of a field of ``options_model`` read as that field's type; a one-line
    SpurbenchError (naming ``benchmark``, the key, the value and a valid spelling) for one that does not fit."""
    fields = options_model.model_fields
    return {key: typed_value(fields[key].annotation, text, key, benchmark) if key in fields else text for key, text in raw.items()}


def shared_option_values(plugins: Sequence[BenchmarkPlugin], raw: Mapping[str, str]) -> dict[str, Any]:
    """One set of typed values for benchmarks that share them (a sweep over several): each key read by
    every plugin that has it. A value two of them read differently is refused: it cannot be one value."""
    shared: dict[str, Any] = dict(raw)
    reader: dict[str, str] = {}
    for plugin in plugins:
        typed = typed_values(plugin.options_model, raw, plugin.name)
        for key in raw:
            if key not in plugin.options_model.model_fields:
                continue
            if key in reader and repr(typed[key]) != repr(shared[key]):
                raise SpurbenchError(
                    f"option {key}={raw[key]} reads as {shared[key]!r} for benchmark {reader[key]!r} but as {typed[key]!r} for {plugin.name!r}: run them separately"
                )
            reader.setdefault(key, plugin.name)
            shared[key] = typed[key]
    return shared


def typed_value(annotation: Any, text: str, key: str, benchmark: str) -> Any:
    """``text`` read as ``annotation`` (see the module's docstring for the readings, in order)."""
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    stripped = text.strip()
    readings: list[Callable[[], Any]] = [lambda: adapter.validate_python(text, strict=True)]  # text the field takes as it is
    if stripped.lower() in _NONE:
        readings.append(lambda: adapter.validate_python(None))
    readings += [
        lambda: adapter.validate_json(stripped),
        lambda: adapter.validate_python(stripped),
        lambda: adapter.validate_python(_items(stripped)),
    ]
    for reading in readings:
        try:
            return reading()
        except ValidationError:
            continue
    raise SpurbenchError(_refusal(annotation, text, key, benchmark))


def _items(text: str) -> list[str]:
    """``0.5,1.0``, ``[0.5, 1.0]`` or ``0.5`` as its items' texts (``[]``: no items)."""
    bracketed = text.startswith("[") and text.endswith("]")
    inner = text[1:-1] if bracketed else text
    if bracketed and not inner.strip():
        return []
    return [item.strip() for item in inner.split(",")]  # an empty text is one empty item, refused: not a list


def _refusal(annotation: Any, text: str, key: str, benchmark: str) -> str:
    what, examples = _spelling(annotation)
    hint = f"; write it as {' or '.join(f'{key}={e}' for e in examples)}" if examples else ""
    return f"benchmark {benchmark!r}, option {key!r}: {text!r} is not {what}{hint}"


def _spelling(annotation: Any) -> tuple[str, list[str]]:
    """What a field of this type takes, in words, and spellings of it that are read as valid."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _spelling(args[0])
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        spelled = [_spelling(a) for a in members]
        what = " or ".join(w for w, _ in spelled) + (" or none" if len(members) < len(args) else "")
        return what, [e for _, examples in spelled for e in examples]
    if origin is typing.Literal:
        return f"one of {', '.join(str(a) for a in args)}", [str(args[0])]
    if origin in _LISTS or annotation in _LISTS:
        item = _SCALARS.get(args[0]) if args else None
        if item is None:
            return "a list", []
        return f"a list of {item[1]}", [f"[{item[2]},{item[3]}]", f"{item[2]},{item[3]}"]
    if annotation in _SCALARS:
        return _SCALARS[annotation][0], [_SCALARS[annotation][2]]
    return f"a valid {getattr(annotation, '__name__', annotation)}", []
