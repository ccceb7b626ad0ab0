"""How the example plugins test themselves against spurbench's contracts in seconds (the plugin
guide includes this file; tests/test_plugin_guide.py calls these functions). A plugin's own test
suite would hold them as pytest tests."""

from __future__ import annotations

# --8<-- [start:tests]
import spurbench.testing  # noqa: F401 (registers the `tiny` model family and benchmark)
from spurbench import evaluate
from spurbench.settings import FeatureSettings, RunSettings

QUICK = FeatureSettings(progress=False)


def dotsnet_on_the_tiny_benchmark() -> float:
    """A model family's author: their model on spurbench's tiny benchmark, in its label space."""
    from dots_models import DotsNet

    model = DotsNet.load("small")
    settings = RunSettings(
        model=model.name,
        benchmark="tiny",
        options={"label_space": model.label_space, "num_classes": model.num_classes},
        bootstrap=0,
        features=QUICK,
    )
    result = evaluate(settings, model=model)  # the loaded adapter; the settings name it
    return result.heads["plain"].aggregate.mauc


def dots_benchmark_on_its_own_model() -> float:
    """A benchmark's author: their benchmark, with a small model of its label space."""
    settings = RunSettings(model="dotsnet:small", benchmark="dots", options={"limit": 8}, bootstrap=0, features=QUICK)
    return evaluate(settings).heads["plain"].aggregate.mauc


# --8<-- [end:tests]
