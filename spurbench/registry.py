"""One generic registry: names -> objects, lazy ``module:attr`` entries, entry points.

Modelled on lm-evaluation-harness's registry: lazy entries keep heavy optional
dependencies (open_clip, transformers) out of import time, and a miss gives
did-you-mean suggestions instead of a bare KeyError.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from spurbench.errors import UnknownNameError

T = TypeVar("T")


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for close matches, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


class Registry(Generic[T]):
    """A named table of objects of type ``base``; values may be ``"module:attr"`` strings."""

    def __init__(self, kind: str, base: type | None = None, entry_point_group: str | None = None):
        self.kind = kind
        self.base = base
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Any] = {}
        self._entry_points_loaded = False

    def register(self, name: str, target: T | str | None = None):
        """Register ``target`` under ``name``; usable as a decorator when target is omitted."""

        def add(obj: Any) -> Any:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return add if target is None else add(target)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin's tests undo their registration with it)."""
        self._entries.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self.entry_point_group is None:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            # Built-ins win over third-party plugins of the same name.
            self._entries.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{suggest(name, self._entries)} Known: {', '.join(sorted(self._entries))}."
            )
        obj = self._entries[name]
        if isinstance(obj, str):
            module_name, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module_name), attr)
            if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
                raise TypeError(f"{self.kind} {name!r} -> {obj!r} is not a subclass of {self.base.__name__}")
            self._entries[name] = obj
        return obj


PLUGIN_GROUPS = ("spurbench.benchmarks", "spurbench.adapters", "spurbench.tasks")  # the entry-point groups a third-party plugin declares


def plugin_packages() -> dict[str, str]:
    """Top-level module or package name -> the plugin it belongs to (its distribution's name), for every
    third-party entry point of ``PLUGIN_GROUPS``: the entry point's own top-level module, and every
    top-level module its distribution's file list (RECORD) holds. spurbench's own entry points are not plugins."""
    found: dict[str, str] = {}
    for group in PLUGIN_GROUPS:
        for ep in entry_points(group=group):
            top = ep.value.partition(":")[0].split(".")[0].strip()
            if top == "spurbench":
                continue
            dist = getattr(ep, "dist", None)
            name = (dist.metadata.get("Name") if dist is not None else None) or ep.name
            found.setdefault(top, name)
            for file in (dist.files or []) if dist is not None else []:
                first = file.parts[0] if file.parts else ""
                module = first[:-3] if first.endswith(".py") and len(file.parts) == 1 else first if len(file.parts) > 1 else ""
                if module.isidentifier() and module != "spurbench" and not module.startswith("_"):
                    found.setdefault(module, name)
    return found


def plugin_in_traceback(tb: Any, packages: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(plugin, where) when a traceback's innermost frame that is spurbench's or a plugin's own code is a
    plugin's: the plugin raised (or called a library that raised). None when it is spurbench's (a bug in
    spurbench keeps its traceback). Frames of other libraries (numpy, torch, PIL) decide nothing."""
    packages = plugin_packages() if packages is None else packages
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        module = str(frame.f_globals.get("__name__", ""))
        top = module.split(".")[0]
        if top == "spurbench":
            return None
        if top in packages:
            return packages[top], f"{module}.{frame.f_code.co_name}"
    return None
