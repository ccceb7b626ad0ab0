"""``-O KEY=VALUE`` values read as their option's type (issue 24, section 4).

The unit cases read text against a probe options model with one field of each kind; the CLI cases run
``spurbench run`` / ``sweep`` (in this process, ``cli``) up to the option check, and the slow ones the
README's two-noise-level run on the embedded planted-salient.
"""

import json
from pathlib import Path

import pytest
from pydantic import Field

from spurbench.benchmarks import get_benchmark
from spurbench.benchmarks.base import BenchmarkOptions
from spurbench.benchmarks.option_values import shared_option_values, typed_values
from spurbench.errors import SpurbenchError
from tests.support.one_line import one_line_error


class Probe(BenchmarkOptions):
    sigma: list[float] | None = Field(default=None, min_length=1)
    sizes: list[int] = Field(default_factory=lambda: [1])
    flag: bool = False
    count: int = 0
    scale: float = 1.0
    name: str = ""
    folder: str | None = None
    maybe_count: int | None = None


def read(key: str, text: str):
    return typed_values(Probe, {key: text}, "probe")[key]


@pytest.mark.parametrize(
    "key, text, value",
    [
        ("sigma", "[0.5,1.0]", [0.5, 1.0]),
        ("sigma", "[0.5, 1.0]", [0.5, 1.0]),
        ("sigma", "0.5,1.0", [0.5, 1.0]),
        ("sigma", " 0.5 , 1 ", [0.5, 1.0]),
        ("sigma", "[.5,1.]", [0.5, 1.0]),  # not JSON: read as items
        ("sigma", "0.5", [0.5]),
        ("sigma", "2", [2.0]),
        ("sigma", "none", None),
        ("sigma", "None", None),
        ("sigma", "null", None),
        ("sigma", "[]", []),  # a list; the model's min_length refuses it (test_constraints_stay_the_models)
        ("sizes", "[1,2]", [1, 2]),
        ("sizes", "1,2,3", [1, 2, 3]),
        ("sizes", "7", [7]),
        ("flag", "true", True),
        ("flag", "True", True),
        ("flag", "TRUE", True),
        ("flag", "false", False),
        ("flag", "False", False),
        ("flag", "1", True),
        ("flag", "0", False),
        ("flag", "yes", True),
        ("flag", "No", False),
        ("count", "3", 3),
        ("count", "-1", -1),
        ("count", " 12 ", 12),
        ("count", "1.0", 1),
        ("scale", "0.5", 0.5),
        ("scale", "1e-3", 0.001),
        ("scale", "2", 2.0),
        ("maybe_count", "4", 4),
        ("maybe_count", "NULL", None),
        ("name", "a,b", "a,b"),  # text with a comma stays one text
        ("name", "[1,2]", "[1,2]"),
        ("name", "1", "1"),
        ("name", "true", "true"),
        ("name", " padded ", " padded "),
        ("name", "", ""),
        ("folder", "none", "none"),  # a field that takes text keeps it: a folder may be called none
        ("folder", "data,v2", "data,v2"),
    ],
)
def test_text_is_read_as_the_fields_type(key, text, value):
    typed = read(key, text)
    assert typed == value and type(typed) is type(value)
    if isinstance(value, list):
        assert [type(v) for v in typed] == [type(v) for v in value]


@pytest.mark.parametrize(
    "key, text, spelling",
    [
        ("sigma", "abc", "sigma=[0.5,1.0] or sigma=0.5,1.0"),
        ("sigma", "0.5,x", "sigma=[0.5,1.0] or sigma=0.5,1.0"),
        ("sigma", "[0.5", "sigma=[0.5,1.0] or sigma=0.5,1.0"),
        ("sigma", "[[0.5]]", "sigma=[0.5,1.0] or sigma=0.5,1.0"),
        ("sigma", "", "sigma=[0.5,1.0] or sigma=0.5,1.0"),
        ("sigma", "0.5;1.0", "sigma=[0.5,1.0] or sigma=0.5,1.0"),
        ("sizes", "1.5", "sizes=[1,2] or sizes=1,2"),
        ("sizes", "none", "sizes=[1,2] or sizes=1,2"),  # not Optional: none is no list
        ("flag", "maybe", "flag=true"),
        ("flag", "2", "flag=true"),
        ("flag", "", "flag=true"),
        ("count", "1.5", "count=1"),
        ("count", "abc", "count=1"),
        ("count", "none", "count=1"),
        ("count", "1,2", "count=1"),
        ("scale", "half", "scale=0.5"),
        ("scale", "0.5,1.0", "scale=0.5"),
        ("maybe_count", "many", "maybe_count=1"),
    ],
)
def test_bad_spellings_are_refused_in_one_line(key, text, spelling):
    with pytest.raises(SpurbenchError) as caught:
        read(key, text)
    message = str(caught.value)
    assert "\n" not in message and "benchmark 'probe'" in message and f"option {key!r}" in message and repr(text) in message
    assert f"write it as {spelling}" in message


def test_refusal_says_what_the_field_takes():
    with pytest.raises(SpurbenchError, match=r"'0.5,x' is not a list of numbers or none; write it as sigma=\[0.5,1.0\] or sigma=0.5,1.0$"):
        read("sigma", "0.5,x")
    with pytest.raises(SpurbenchError, match=r"'maybe' is not true or false; write it as flag=true$"):
        read("flag", "maybe")


def test_unknown_keys_pass_through_to_the_models_refusal():
    plugin = get_benchmark("salient-imagenet")
    typed = typed_values(plugin.options_model, {"sigmaa": "[0.5,1.0]"}, plugin.name)
    assert typed == {"sigmaa": "[0.5,1.0]"}
    with pytest.raises(SpurbenchError, match=r"has no option 'sigmaa'.*Did you mean.*sigma"):
        plugin.parse_options(typed)


def test_constraints_stay_the_models():
    """The type is read here; the field's constraints are checked by the options model, as for any caller."""
    plugin = get_benchmark("salient-imagenet")
    with pytest.raises(SpurbenchError, match=r"option 'sigma': List should have at least 1 item"):
        plugin.parse_options(typed_values(plugin.options_model, {"sigma": "[]"}, plugin.name))
    with pytest.raises(SpurbenchError, match=r"option 'seed': Input should be greater than or equal to 0"):
        plugin.parse_options(typed_values(plugin.options_model, {"seed": "-1"}, plugin.name))


def test_the_salient_options_read_every_spelling():
    for name in ("salient-imagenet", "planted-salient"):
        plugin = get_benchmark(name)
        for text in ("[0.5,1.0]", "0.5,1.0", "[0.5, 1.0]"):
            assert plugin.parse_options(typed_values(plugin.options_model, {"sigma": text}, name)).sigma == [0.5, 1.0]
        assert plugin.parse_options(typed_values(plugin.options_model, {"sigma": "0.5"}, name)).sigma == [0.5]
    salient = get_benchmark("salient-imagenet")
    parsed = salient.parse_options(
        typed_values(salient.options_model, {"classes": "1,2", "data_dir": "my,data", "seed": "3"}, salient.name)
    )
    assert parsed.classes == [1, 2] and parsed.data_dir == "my,data" and parsed.seed == 3


def test_benchmarks_sharing_a_value_read_it_alike():
    plugins = [get_benchmark("salient-imagenet"), get_benchmark("planted-salient"), get_benchmark("planted")]
    assert shared_option_values(plugins, {"sigma": "0.5,1.0", "seed": "3"}) == {"sigma": [0.5, 1.0], "seed": 3}


def test_benchmarks_reading_a_value_differently_are_refused():
    class Text(BenchmarkOptions):
        sigma: str = ""

    class TextPlugin:  # what shared_option_values reads of a plugin
        name = "text-sigma"
        options_model = Text

    salient = get_benchmark("salient-imagenet")
    with pytest.raises(
        SpurbenchError,
        match=r"option sigma=0.5,1.0 reads as \[0.5, 1.0\] for benchmark 'salient-imagenet' but as '0.5,1.0' for 'text-sigma'",
    ):
        shared_option_values([salient, TextPlugin()], {"sigma": "0.5,1.0"})


def test_the_library_does_not_import_the_cli():
    source = (Path(__file__).parents[1] / "spurbench" / "benchmarks" / "option_values.py").read_text()
    assert "spurbench.cli" not in source


# --- the command line: refusals before any model loads ---


@pytest.mark.parametrize(
    "args, needles",
    [
        (
            ["run", "-b", "salient-imagenet", "-O", "sigma=[0.5,x]"],
            ["benchmark 'salient-imagenet', option 'sigma'", "'[0.5,x]'", "sigma=[0.5,1.0] or sigma=0.5,1.0"],
        ),
        (
            ["run", "-b", "salient-imagenet", "-O", "classes=1.5,2"],
            ["option 'classes'", "'1.5,2'", "is not a list of whole numbers or none", "classes=[1,2] or classes=1,2"],
        ),
        (["run", "-b", "planted", "-O", "seed=1.5"], ["benchmark 'planted', option 'seed'", "'1.5'", "seed=1"]),
        (["run", "-b", "salient-imagenet", "-O", "sigmaa=0.5"], ["has no option 'sigmaa'", "Did you mean", "sigma"]),
        (["run", "-b", "salient-imagenet", "-O", "sigma=[]"], ["option 'sigma'", "at least 1 item"]),
        (
            ["sweep", "--dry-run", "-m", "planted:cnn", "-b", "planted-salient", "-O", "sigma=x"],
            ["benchmark 'planted-salient', option 'sigma'", "'x'"],
        ),
    ],
)
def test_bad_option_values_fail_in_one_line(cli, tmp_path, args, needles):
    out = tmp_path / "out"
    proc = cli(*args, "-o", str(out), cwd=tmp_path)
    one_line_error(proc, *needles, out=out)


@pytest.mark.parametrize("benchmark", ["planted-salient", "salient-imagenet"])
@pytest.mark.parametrize("spelling", ["sigma=[0.5,1.0]", "sigma=0.5,1.0"])
def test_sweep_plans_with_typed_values(cli, tmp_path, benchmark, spelling):
    """Refused before the fix ("Input should be a valid list")."""
    proc = cli(
        "sweep",
        "--dry-run",
        "-m",
        "planted:cnn",
        "-b",
        benchmark,
        "-O",
        spelling,
        "-O",
        "limit=2",
        "-o",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "plan: 1 to run, 0 to skip, 0 invalid" in proc.stdout, proc.stdout


# --- the README's example, end to end on the embedded planted-salient ---


@pytest.mark.slow
@pytest.mark.parametrize(
    "benchmark, spelling",
    [("planted-salient", "sigma=[0.5,1.0]"), ("planted-salient", "sigma=0.5,1.0"), ("salient-imagenet", "sigma=[0.5,1.0]")],
)
def test_run_at_two_noise_levels(cli, trained, tmp_path, benchmark, spelling):
    """salient-imagenet without --data-dir runs the embedded planted-salient."""
    cache, _ = trained
    out = tmp_path / "out"
    proc = cli(
        "run",
        "-b",
        benchmark,
        "-m",
        "planted:cnn",
        "-O",
        spelling,
        "-O",
        "limit=2",
        "--bootstrap",
        "0",
        "-q",
        "-o",
        str(out),
        cwd=tmp_path,
        env={"SPURBENCH_CACHE": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "planted-salient__planted_cnn.json").read_text())
    views = {view for image in result["images"].values() for view in image["views"]}
    for sigma in ("0.5", "1"):
        assert {f"noise-core@{sigma}", f"noise-spurious@{sigma}"} <= views, sorted(views)
    assert result["benchmark"]["num_positives"] == 2 * result["benchmark"]["num_classes"]  # limit=2 per class
