"""The test plugin's distribution (tests/plugin_dist: a dist-info folder with entry points, and the
modules they name), installed into this process for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from spurbench.adapters import ADAPTERS
from spurbench.benchmarks import BENCHMARKS
from spurbench.results import TASKS

PLUGIN_DIST = Path(__file__).resolve().parents[1] / "plugin_dist"


@contextlib.contextmanager
def plugin_installed() -> Iterator[None]:
    """The distribution as if installed: the registries read the entry points again with its folder on
    the path (and nothing registered in code); the path and every registry as before afterwards."""
    registries = (BENCHMARKS, ADAPTERS, TASKS)
    with pytest.MonkeyPatch.context() as patch:
        for registry in registries:
            registry.names()  # spurbench's own entries first, without the distribution
            patch.setattr(registry, "_entries", dict(registry._entries))
        patch.syspath_prepend(str(PLUGIN_DIST))
        for registry in registries:
            patch.setattr(registry, "_entry_points_loaded", False)
        yield
