import os
import subprocess
from pathlib import Path

import pytest

# Under pytest-xdist (.ci/run: -n 2 on 2 cores) two workers, each with torch's default of one thread per core,
# keep four threads for two cores, which spin while they wait for one: slower than no xdist at all
# (perf/p14_ci_time.py). One thread per worker, and for every process it starts, set before torch loads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# The longest modules (pytest --durations on the whole suite), longest first. Under `--dist loadscope
# --no-loadscope-reorder` (.ci/run) a worker takes the next module in collection order, so these start
# first and the two workers end together; xdist's default reorder (most tests first) started them last,
# and one worker ran the README's examples alone at the end. The rest keep their order.
LONGEST_MODULES = (
    "test_sweep_slurm.py",  # mostly waits on the cluster's jobs: started first, its waits overlap the rest
    "test_readme_examples.py",
    "test_docs_site.py",
    "test_planted_weights.py",
    "test_distributed.py",
    "test_reliability_results.py",
    "test_sweep.py",
    "test_reliability_finding.py",
    "test_planted.py",
    "test_label_loop.py",
    "test_cli.py",
    "test_mine_loop.py",
    "test_component_names.py",
    "test_label_scale.py",
    "test_verify_page.py",
    "test_spufix_planted.py",
    "test_paper_protocol.py",
    "test_discovery.py",
    "test_views.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: place for place, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort: tests keep their order within a module


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty spurbench cache, unless it asks for the shared one."""
    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(cache dir, {arch: PlantedAdapter}): planted:cnn and planted:resnet trained once per test
    session into a fresh cache (about 45 s on 2 idle CPU cores), shared by every slow planted test."""
    from spurbench.benchmarks.planted.models import PlantedAdapter

    cache = tmp_path_factory.mktemp("planted-cache")
    before = os.environ.get("SPURBENCH_CACHE")
    os.environ["SPURBENCH_CACHE"] = str(cache)
    try:
        models = {arch: PlantedAdapter.load(arch) for arch in ("cnn", "resnet")}
        (cache / "planted").mkdir(exist_ok=True)  # seed 0 loads the shipped weights: tests that copy the models folder get an empty one
    finally:
        if before is None:
            del os.environ["SPURBENCH_CACHE"]
        else:
            os.environ["SPURBENCH_CACHE"] = before
    return cache, models


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the real CLI entry point (``spurbench.cli.main``) in this process, from ``cwd``, offline.
    Returns a CompletedProcess-like result (exit status from SystemExit, captured stdout and stderr);
    an exception that escapes ``main`` fails the test, as a traceback would."""

    def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
        from spurbench.cli import main

        monkeypatch.chdir(cwd)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["spurbench", *args], code, out, err)

    return run
