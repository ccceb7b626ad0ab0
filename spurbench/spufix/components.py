"""Components files: the spurious components per class that ``spufix fit --components`` clips and ``mine``
ranks by, as the paper's authors list them (``{class: [ranks]}``) or as ``spurbench label export`` writes
them (with the discovery's model, basis and the names people gave the features), read and checked strictly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from spurbench.errors import SpurbenchError
from spurbench.files import strict_json
from spurbench.schemas import FEATURE_NAME_LENGTH, feature_name


@dataclass(frozen=True)
class ComponentsFile:
    """A components file as read: the table, and what an export of ``spurbench label export`` says about it."""

    table: dict[int, list[int]]
    named_basis: str | None  # "npca" or "neurons" as the file names it; None: it names none (the paper's file)
    model: str | None = None  # the discovery's model (None: not an export)
    weights_revision: str | None = None
    names: dict[int, dict[int, str]] = field(default_factory=dict)  # class -> listed component -> the feature's name, where named

    @property
    def basis(self) -> str:
        """What the numbers are: a file that names no basis lists neural PCA ranks."""
        return self.named_basis or "npca"


def _index(value: Any) -> int | None:
    """A JSON value as a class index or component rank: a non-negative integer and nothing else
    (``true`` or ``1.9`` are not 1: Python's ``int()`` would make them one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    # at most 18 digits: int() refuses strings over 4300 digits with a ValueError of its own
    if (
        isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18 and str(int(value)) == value
    ):  # a JSON key: "2", not "02" or " 2"
        return int(value)
    return None


def read_components(path: str | Path | None = None) -> ComponentsFile:
    """Spurious components per class: a JSON ``{class: [ranks]}`` (or ``{"components": {...}, "basis": ...}``
    as ``label export`` writes it), checked strictly: integer ranks, no duplicates, at least one.

    Default: the 322 components in 233 classes the paper's authors labelled for their robust ResNet-50.
    A file that names no basis lists neural PCA ranks (the paper's file, and what SpuFix clips)."""
    try:
        text = (
            Path(path).read_text(encoding="utf-8")
            if path
            else resources.files("spurbench").joinpath("data/spurious_components.json").read_text()
        )
        raw = strict_json(text)
    except OSError as exc:
        raise SpurbenchError(f"{path}: cannot read components file ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SpurbenchError(
            f"{path}: components file is not valid JSON ({' '.join(str(exc).split())[:120] or type(exc).__name__})"
        ) from None
    meta = raw if isinstance(raw, dict) and "components" in raw else {}
    table = raw.get("components", raw) if isinstance(raw, dict) else None
    if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
        raise SpurbenchError(f"{path}: components must map class indices to lists of component ranks")
    basis = meta.get("basis")
    if basis not in (None, "npca", "neurons"):
        raise SpurbenchError(f"{path}: basis {basis!r}: expected npca or neurons")
    out: dict[int, list[int]] = {}
    for key, listed in table.items():
        k = _index(key)
        if k is None:
            raise SpurbenchError(f"{path}: class {key!r} is not a class index (a non-negative integer)")
        ranks = [None if isinstance(c, str) else _index(c) for c in listed]  # a string is a key's form, not a rank's
        if None in ranks:
            bad = listed[ranks.index(None)]
            raise SpurbenchError(f"{path}: class {k}: component {json.dumps(bad)} is not a component rank (a non-negative integer)")
        if not ranks:
            raise SpurbenchError(f"{path}: class {k} lists no components (leave the class out instead)")
        twice = next((r for i, r in enumerate(ranks) if r in ranks[:i]), None)
        if twice is not None:
            raise SpurbenchError(f"{path}: class {k} lists component {twice} twice")
        out[k] = ranks  # type: ignore[assignment]
    if not out:
        # `label export` with no labels writes such a file: fitting or mining it would do nothing
        raise SpurbenchError(f"{path}: lists no components; label some as spurious (`spurbench label`) and export them again")
    return ComponentsFile(out, basis, meta.get("model"), meta.get("weights_revision"), _names(path, meta.get("names", {}), out))


def _names(path: str | Path | None, raw: Any, table: dict[int, list[int]]) -> dict[int, dict[int, str]]:
    """The export's ``names`` ({class: {component: name}}), checked: each names a listed component."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise SpurbenchError(f"{path}: names must map class indices to {{component: name}} tables")
    names: dict[int, dict[int, str]] = {}
    for key, named in raw.items():
        k = _index(key)
        for listed, value in named.items():
            c = _index(listed)
            if k is None or c is None or c not in table.get(k, []):
                raise SpurbenchError(f"{path}: names: class {key} component {listed} is not among the listed components")
            name = feature_name(value)
            if name is None:
                raise SpurbenchError(
                    f"{path}: names: class {k} component {c}: {json.dumps(value)[:40]} is not a feature name (one line, 1 to {FEATURE_NAME_LENGTH} characters)"
                )
            names.setdefault(k, {})[c] = name
    return names


def load_components(path: str | Path | None = None, basis_check: bool = True) -> dict[int, list[int]]:
    """The table of ``read_components``. ``basis_check``: refuse a file that lists neurons (SpuFix needs
    neural PCA components; mining takes both, checked against its discovery)."""
    found = read_components(path)
    if basis_check and found.basis != "npca":
        # `label export` of a --basis neurons discovery lists units, which SpuFix (it clips neural PCA components) cannot use
        raise SpurbenchError(
            f"{path}: lists {found.basis} (basis {found.basis!r}), not neural PCA components; SpuFix needs a discovery made with --basis npca"
        )
    return found.table


__all__ = ["ComponentsFile", "load_components", "read_components"]
