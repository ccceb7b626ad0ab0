"""The test helpers' home: ``tests/support/`` holds the helpers, the one-line-error assertion is one
function, and ``spurbench.testing`` gives tests, ``perf/`` and plugin authors the tiny model and benchmark."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from spurbench.errors import DataError, SpurbenchError

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# The one-line-error assertion's former copies; one_line_error (tests/support/one_line.py) replaces them all.
OLD_NAMES = {"assert_one_line_error", "clean_failure", "_one_error_line", "_one_line_error", "_one_line", "one_line"}


def _defined_functions(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}


def test_tests_folder_holds_tests_and_support_holds_the_helpers() -> None:
    loose = sorted(p.name for p in TESTS.glob("*.py") if not p.name.startswith("test_") and p.name not in {"conftest.py", "__init__.py"})
    assert loose == [], f"helper modules belong in tests/support/: {loose}"
    support = {p.name for p in (TESTS / "support").glob("*.py")}
    assert {
        "__init__.py",
        "hub_server.py",
        "hub_fixture.py",
        "label_server.py",
        "salient_fixture.py",
        "distributed_worker.py",
        "one_line.py",
    } <= support
    # torchrun is given the worker by path: the path the test uses must be the file that is there
    source = (TESTS / "test_distributed.py").read_text()
    assert 'Path(__file__).with_name("support") / "distributed_worker.py"' in source


def test_the_one_line_assertion_is_written_once() -> None:
    defined = {p.relative_to(TESTS).as_posix(): _defined_functions(p) for p in TESTS.rglob("*.py")}
    copies = {name: sorted(f for f, names in defined.items() if name in names) for name in OLD_NAMES | {"one_line_error"}}
    assert copies == {**{name: [] for name in OLD_NAMES}, "one_line_error": ["support/one_line.py"]}


def _process(code: int, stderr: str, stdout: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["spurbench"], code, stdout, stderr)


def test_one_line_error_accepts_a_clean_failure_and_returns_its_line(tmp_path: Path) -> None:
    from tests.support.one_line import one_line_error

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("not a result")
    proc = _process(2, "error: unknown model family 'timmm'. Did you mean: timm\n", stdout="progress\n")
    assert one_line_error(proc, "timmm", "Did you mean", out=tmp_path / "out") == "error: unknown model family 'timmm'. Did you mean: timm"
    assert one_line_error(_process(1, "error: plugin failed\n"), "plugin", code=1) == "error: plugin failed"
    assert one_line_error(_process(2, "error: x\n"), out=tmp_path / "never-made") == "error: x"


@pytest.mark.parametrize(
    "proc, needles, result_file",
    [
        pytest.param(_process(1, "error: x\n"), (), False, id="exit 1, not 2"),
        pytest.param(_process(0, "error: x\n"), (), False, id="success"),
        pytest.param(_process(2, "error: x\nerror: y\n"), (), False, id="two lines"),
        pytest.param(_process(2, "x\n"), (), False, id="no 'error: ' prefix"),
        pytest.param(_process(2, ""), (), False, id="nothing said"),
        pytest.param(_process(2, "error: x\n", stdout="Traceback (most recent call last):\n"), (), False, id="a traceback on stdout"),
        pytest.param(_process(2, "Traceback (most recent call last):\nerror: x\n"), (), False, id="a traceback on stderr"),
        pytest.param(_process(2, "error: x\n"), ("y",), False, id="a needle missing"),
        pytest.param(_process(2, "error: x\n"), (), True, id="a result file written"),
    ],
)
def test_one_line_error_refuses_every_unclean_failure(tmp_path: Path, proc, needles, result_file) -> None:
    from tests.support.one_line import one_line_error

    out = tmp_path / "out"
    if result_file:
        (out / "sub").mkdir(parents=True)
        (out / "sub" / "tiny__tiny_net.json").write_text("{}")
    with pytest.raises(AssertionError):
        one_line_error(proc, *needles, out=out)


def test_one_line_error_checks_a_raised_error_the_same_way() -> None:
    from tests.support.one_line import one_line_error

    with pytest.raises(DataError) as info:
        raise DataError("/data/x: no such folder")
    assert one_line_error(info, "/data/x") == "/data/x: no such folder"
    assert one_line_error(SpurbenchError("one line")) == "one line"
    for bad in (ValueError("one line"), SpurbenchError("two\nlines"), SpurbenchError(""), SpurbenchError("trailing "), SpurbenchError("x")):
        needles = ("y",) if str(bad) == "x" else ()
        with pytest.raises(AssertionError):
            one_line_error(bad, *needles)  # a non-user error would be a traceback; the others not one clean line
    with pytest.raises(TypeError):
        one_line_error(SpurbenchError("x"), out=Path("out"))  # an exception writes no result file to check


def test_spurbench_testing_is_public_and_needs_no_pytest() -> None:
    code = (
        "import sys, spurbench.testing as t\n"
        "assert t.__all__ == ['SIZE', 'TinyAdapter', 'TinyBenchmark', 'TinyOptions', 'tiny_benchmark'], t.__all__\n"
        "from spurbench.adapters import load_model\n"
        "from spurbench.benchmarks import load_benchmark\n"
        "assert type(load_model('tiny:net')) is t.TinyAdapter and len(load_benchmark('tiny', per_role=2).images) == 16\n"
        "adapter, bench = t.TinyAdapter.load('net'), t.tiny_benchmark(num_classes=3, per_role=2)\n"
        "assert adapter.name == 'tiny:net' and adapter.num_classes == 4 and len(bench.images) == 12\n"
        "assert bench.images[0].open().size == (t.SIZE, t.SIZE)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest', 'tests')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"


def test_the_tiny_pair_meets_the_evaluation_contract(tmp_path: Path) -> None:
    """What a plugin author does with it: the tiny model on their benchmark, or their model on the tiny benchmark."""
    from spurbench.harness import evaluate
    from spurbench.settings import FeatureSettings, RunSettings
    from spurbench.testing import TinyAdapter, tiny_benchmark

    settings = RunSettings(model="tiny:net", benchmark="tiny", bootstrap=0, features=FeatureSettings(batch_size=4, progress=False))
    # first, before the feature cache holds the images: a broken image is named, as a plugin's must be
    with pytest.raises(DataError, match="tiny:negative/1/3"):
        evaluate(settings, model=TinyAdapter(), benchmark=tiny_benchmark(broken="negative/1/3"))
    result = evaluate(settings, model=TinyAdapter(), benchmark=tiny_benchmark())
    plain = result.heads["plain"]
    assert len(plain.classes) == 4 and len(plain.image_prob) == 96
    assert {row.auc for row in plain.classes} != {0.5}  # positives and negatives differ in brightness: the model tells them apart
