from importlib.metadata import EntryPoint

import pytest

from spurbench import registry as registry_mod
from spurbench.adapters import ADAPTERS, ModelAdapter, load_model
from spurbench.errors import UnknownNameError
from spurbench.registry import Registry


def test_lazy_entries_base_check_and_suggestions():
    reg: Registry = Registry("widget", base=ModelAdapter)
    reg.register("tiny", "spurbench.testing:TinyAdapter")
    reg.register("bad", "spurbench.testing:tiny_benchmark")
    assert reg.get("tiny").__name__ == "TinyAdapter"
    with pytest.raises(TypeError, match="widget 'bad' -> <function tiny_benchmark .*> is not a subclass of ModelAdapter"):
        reg.get("bad")
    with pytest.raises(UnknownNameError, match="Did you mean: tiny"):
        reg.get("tiyn")
    with pytest.raises(ValueError, match="widget 'tiny' is already registered"):
        reg.register("tiny", object())
    assert reg.get("tiny").__name__ == "TinyAdapter"  # the refused registration changed nothing


def test_third_party_adapter_through_entry_points(monkeypatch):
    plugin = EntryPoint(name="tinyplugin", value="spurbench.testing:TinyAdapter", group="spurbench.adapters")

    def fake_entry_points(group=None):
        return [plugin] if group == "spurbench.adapters" else []

    monkeypatch.setattr(registry_mod, "entry_points", fake_entry_points)
    monkeypatch.setattr(ADAPTERS, "_entry_points_loaded", False)
    monkeypatch.setattr(ADAPTERS, "_entries", dict(ADAPTERS._entries))
    assert "tinyplugin" in ADAPTERS.names()
    adapter = load_model("tinyplugin:net")
    assert adapter.name == "tiny:net" and adapter.num_classes == 4


def test_third_party_task_through_entry_points(monkeypatch):
    from spurbench.results import TASKS
    from spurbench.tasks import get_task

    task = EntryPoint(name="views-again", value="spurbench.tasks.views:Views", group="spurbench.tasks")
    monkeypatch.setattr(registry_mod, "entry_points", lambda group=None: [task] if group == "spurbench.tasks" else [])
    monkeypatch.setattr(TASKS, "_entry_points_loaded", False)
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    assert "views-again" in TASKS.names() and "spurious-auc" in TASKS.names()  # beside the built-ins
    assert type(get_task("views-again")).__name__ == "Views"
