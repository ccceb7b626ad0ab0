import os

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty spurbench cache, unless it asks for the shared one."""
    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(cache dir, {arch: PlantedAdapter}): planted:cnn and planted:resnet trained once per test
    session into a fresh cache (about 45 s on 2 idle CPU cores), shared by every slow planted test."""
    from spurbench.adapters.planted import PlantedAdapter

    cache = tmp_path_factory.mktemp("planted-cache")
    before = os.environ.get("SPURBENCH_CACHE")
    os.environ["SPURBENCH_CACHE"] = str(cache)
    try:
        models = {arch: PlantedAdapter(arch) for arch in ("cnn", "resnet")}
    finally:
        if before is None:
            del os.environ["SPURBENCH_CACHE"]
        else:
            os.environ["SPURBENCH_CACHE"] = before
    return cache, models
