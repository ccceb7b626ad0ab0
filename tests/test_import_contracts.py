"""The import contracts: no import cycle anywhere in spurbench (function-level imports included), and
the import-linter contracts in pyproject.toml kept here and broken by a violation injected into a copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ACYCLIC = "no import cycles between siblings"
INDEPENDENT = "benchmark plugins are independent"
LAYERS = "pipeline layers"


def cycle_edges(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every import ``a -> b`` (top-level, function-level and TYPE_CHECKING alike) that ``b`` imports back."""
    return sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.chain_exists(importer=imported, imported=importer)
    )


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working directory first on sys.path, so in a copy it reads the copied package.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], check=False, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_no_import_cycle_in_spurbench() -> None:
    graph = grimp.build_graph("spurbench", include_external_packages=False, cache_dir=None)
    assert "spurbench.benchmarks.base" in graph.modules  # the graph is the package's, not an empty one
    assert cycle_edges(graph) == []


def test_cycle_finder_sees_a_function_level_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The finder itself must be able to fail: a lazy (function-level) import back is a cycle.
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclepkg import a\n    return a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclepkg", include_external_packages=False, cache_dir=None)
    assert cycle_edges(graph) == [("cyclepkg.a", "cyclepkg.b"), ("cyclepkg.b", "cyclepkg.a")]


def test_import_contracts_kept() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    for contract in (LAYERS, ACYCLIC, INDEPENDENT):
        assert f"{contract} KEPT" in run.stdout


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    shutil.copytree(ROOT / "spurbench", tmp_path / "spurbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # one plugin importing another
        ("spurbench/benchmarks/imagenet_w/__init__.py", "import spurbench.benchmarks.planted  # injected", INDEPENDENT),
        # the records importing the plugin contract back, inside a function (the circle this cut)
        ("spurbench/benchmarks/data.py", "def _injected():\n    from spurbench.benchmarks import base\n    return base", ACYCLIC),
    ],
    ids=["plugin-imports-plugin", "records-import-contract"],
)
def test_contract_breaks_on_injected_violation(tmp_path: Path, module: str, line: str, broken: str) -> None:
    run = lint_imports(_copy_with(tmp_path, module, line))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{broken} BROKEN" in run.stdout, run.stdout
    for other in {ACYCLIC, INDEPENDENT} - {broken}:
        assert f"{other} KEPT" in run.stdout  # only the contract the injection violates breaks
