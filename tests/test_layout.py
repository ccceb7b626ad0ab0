"""The package's shape, checked: layered imports (import-linter), benchmark names only in their plugins,
deferred imports only where marked, and module sizes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spurbench"
# The only places that may name a concrete benchmark: the plugins themselves.
# spurious_folder writes (and reads) Spurious ImageNet's folder layout on purpose, so it names it.
PLUGIN_DIRS = [
    PACKAGE / "benchmarks" / name
    for name in ("planted", "spurious_imagenet", "spurious_folder", "salient_imagenet", "imagenet_w", "shared")
]
BENCHMARK_NAMES = re.compile(r"planted|spurious[-_ ]imagenet|salient[-_]imagenet|imagenet[-_]w\b", re.IGNORECASE)
MAX_LINES = 300


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_import_linter_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is a dev dependency"
    run = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 kept, 0 broken" in run.stdout  # layers, acyclic siblings, plugin independence


def test_import_linter_catches_an_upward_import(tmp_path) -> None:
    # The contract must be able to fail: a copy of the package where metrics imports the harness.
    copy = tmp_path / "spurbench"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\nfrom spurbench import harness  # noqa\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint)], cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    )
    assert run.returncode != 0 and "spurbench.metrics" in run.stdout and "harness" in run.stdout, run.stdout[-2000:]


def test_benchmark_names_appear_only_in_their_plugins() -> None:
    offenders = []
    for path in _modules():
        if any(plugin in path.parents for plugin in PLUGIN_DIRS):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if BENCHMARK_NAMES.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _function_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines |= {n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return sorted(lines)


def test_deferred_imports_are_marked_with_their_reason() -> None:
    # A function-level import is allowed only to keep `spurbench --help` fast or for an optional
    # dependency, and says so: a "# lazy: ..." comment heads its block of imports.
    unmarked = []
    for path in _modules():
        source = path.read_text().splitlines()
        for lineno in _function_imports(path):
            above = lineno - 2
            while above >= 0 and (
                not source[above].strip()
                or source[above].strip().startswith(("from ", "import ", ")"))
                or (source[above].startswith(" " * 8) and source[above].strip().endswith(","))
            ):
                above -= 1
            if above < 0 or "# lazy:" not in source[above]:
                unmarked.append(f"{path.relative_to(ROOT)}:{lineno}: {source[lineno - 1].strip()}")
    assert not unmarked, "\n".join(unmarked)


# The modules allowed past MAX_LINES, by name, each with its reason (and a bound, so they do not grow unseen).
LONG_MODULES = {
    "benchmarks/salient_imagenet/layout.py": (560, "a sixth of it records upstream's formats, each check beside the format it checks"),
    "benchmarks/shared/planted_generator.py": (
        500,
        "the renderer's steps share one set of geometry constants and the notes that explain them",
    ),
}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small_or_are_named_long(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    bound, _why = LONG_MODULES.get(str(path.relative_to(PACKAGE)), (MAX_LINES, ""))
    assert lines <= bound, (
        f"{path.relative_to(ROOT)} has {lines} lines (at most {bound}): split it, or name it in LONG_MODULES with its reason"
    )


def test_every_named_long_module_exists_and_is_long() -> None:
    for name, (bound, _why) in LONG_MODULES.items():
        lines = len((PACKAGE / name).read_text().splitlines())
        assert MAX_LINES < lines <= bound, f"{name}: {lines} lines; drop it from LONG_MODULES or raise its bound"


def test_the_cli_imports_no_library_stage() -> None:
    # What keeps `spurbench --help` fast: the CLI package imports typer and rich, never torch or the pipeline.
    probe = "import sys, spurbench.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'timm', 'pydantic') or m.startswith('spurbench.') and not m.startswith(('spurbench.cli', 'spurbench.errors', 'spurbench._version'))))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr


# The __init__.py files allowed to hold more than re-exports, by name, each with its reason.
LOGIC_IN_INIT = {
    "__init__.py": "the library face: typed top-level functions, imported lazily through __getattr__",
    "cli/__init__.py": "the typer app's entry point: main() maps errors to one line and exit 2",
    "sweeps/__init__.py": "hands its names on lazily through __getattr__: a SLURM job imports sweeps.entry before torch",
}


def _only_hands_names_on(node: ast.stmt, index: int) -> bool:
    if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # the docstring
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
        return True
    return isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"


def test_init_files_only_hand_names_on() -> None:
    offenders = []
    for path in PACKAGE.rglob("__init__.py"):
        if str(path.relative_to(PACKAGE)) in LOGIC_IN_INIT:
            continue
        body = ast.parse(path.read_text()).body
        offenders += [f"{path.relative_to(ROOT)}:{n.lineno}" for i, n in enumerate(body) if not _only_hands_names_on(n, i)]
    assert not offenders, "logic in __init__.py (move it into a module): " + ", ".join(offenders)
