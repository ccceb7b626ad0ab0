import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty spurbench cache, unless it asks for the shared one."""
    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
