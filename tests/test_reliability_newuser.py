"""Issue 23, what a new user and a plugin author hit: folders read on a user's behalf never lead out of
themselves (links at any level), plugin geometry is stated not guessed, a ground truth is checked when
it is handed over, the Hub when there is none, bad Hub repo ids, progress lines without a terminal."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from spurbench.benchmarks import (
    BENCHMARKS,
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    GroundTruth,
    get_benchmark,
    register_benchmark,
)
from spurbench.benchmarks.imagenet.val import load_local_imagenet_val
from spurbench.errors import DataError, LabelSpaceError, SpurbenchError
from spurbench.mining.pool import folder_pool
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table
from tests.support.one_line import one_line_error
from tests.test_cli import spurbench
from tests.test_spurious_imagenet import make_upstream, make_val

ROOT = Path(__file__).resolve().parents[1]
LEADS_OUT = "leads out of"


def _png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (seed * 40 % 256, 90, 200)).save(path)
    return path


def _link(link: Path, target: Path, relative: bool) -> None:
    """``link`` -> ``target``, written as a relative or an absolute link."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent) if relative else target.resolve())


# ------------------------------------------------------------------------------------------ 1. links out


def _pool(tmp_path: Path) -> tuple[Path, Path]:
    pool, outside = tmp_path / "pool", tmp_path / "outside"
    for i in range(3):
        _png(pool / "a" / f"{i}.png", i)
    _png(outside / "secret.png", 7)
    _png(outside / "deep" / "x.png", 8)
    return pool, outside


LINKS = [
    ("top/file", lambda pool, out: (pool / "evil.png", out / "secret.png")),
    ("nested/file", lambda pool, out: (pool / "a" / "b" / "evil.png", out / "secret.png")),
    ("top/folder", lambda pool, out: (pool / "evil", out / "deep")),
    ("nested/folder", lambda pool, out: (pool / "a" / "evil", out / "deep")),
]


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize("where", LINKS, ids=[name for name, _ in LINKS])
def test_a_pool_link_out_of_the_pool_is_refused(tmp_path, where, relative) -> None:
    pool, outside = _pool(tmp_path)
    link, target = where[1](pool, outside)
    _link(link, target, relative)
    with pytest.raises(DataError, match=LEADS_OUT) as caught:
        folder_pool(pool)
    assert "\n" not in str(caught.value) and str(link) in str(caught.value)


def test_a_pool_link_inside_the_pool_and_the_pool_given_by_a_link_are_read(tmp_path) -> None:
    pool, _ = _pool(tmp_path)
    _link(pool / "copy.png", pool / "a" / "0.png", relative=True)
    (tmp_path / "via").symlink_to(pool)  # the folder the user gives may itself be a link: its real path is the rule's folder
    assert sorted(folder_pool(tmp_path / "via").files) == ["a/0.png", "a/1.png", "a/2.png", "copy.png"]


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize("level", ["images-folder", "class-folder", "file", "timestamp"])
def test_a_spurious_imagenet_folder_with_a_link_out_is_refused_through_the_cli(cli, tmp_path, level, relative) -> None:
    """``dataset build --from-upstream`` reads the --data-dir layout with the same reader as ``run``."""
    images = make_upstream(tmp_path / "elsewhere")  # a good copy, outside the folder given
    data = tmp_path / "data"
    data.mkdir()
    if level == "images-folder":  # DIR/images -> a folder outside
        _link(data / "images", images, relative)
    else:
        shutil.copytree(images, data / "images")
        first = sorted((data / "images").glob("spurious_class_*"))[0]
        if level == "class-folder":
            shutil.rmtree(first)
            _link(first, images / first.name, relative)
        elif level == "file":
            victim = sorted(first.iterdir())[0]
            victim.unlink()
            _link(victim, images / first.name / victim.name, relative)  # the same bytes: only the link tells
        else:
            (data / "images" / "timestamp.txt").unlink()
            _link(data / "images" / "timestamp.txt", images / "timestamp.txt", relative)
    proc = cli("dataset", "build", "--from-upstream", str(data), "--out", str(tmp_path / "built"), "-b", "spurious-imagenet", cwd=tmp_path)
    one_line_error(proc, LEADS_OUT, out=tmp_path / "built")


def test_an_imagenet_val_folder_with_a_class_folder_out_is_refused(tmp_path) -> None:
    from spurbench.label_spaces import synsets

    make_val(tmp_path / "elsewhere", [1, 2])
    val = tmp_path / "val"
    make_val(val, [1])
    _link(val / synsets()[2], tmp_path / "elsewhere" / synsets()[2], relative=True)
    with pytest.raises(DataError, match=LEADS_OUT):
        load_local_imagenet_val(val, [1, 2])


@pytest.mark.slow
@pytest.mark.parametrize("what", ["image", "card"])
def test_a_spurious_folder_benchmark_with_a_link_out_is_refused_through_the_cli(cli, tmp_path, what) -> None:
    from tests.test_spurious_folder import write

    write(tmp_path / "elsewhere")
    folder = tmp_path / "mined"
    shutil.copytree(tmp_path / "elsewhere", folder)
    if what == "image":
        victim = sorted((folder / "images").rglob("*.png"))[0]
        victim.unlink()
        _link(victim, tmp_path / "elsewhere" / victim.relative_to(folder), relative=True)  # same bytes, checksum holds
    else:
        (folder / "spurbench.json").unlink()
        _link(folder / "spurbench.json", tmp_path / "elsewhere" / "spurbench.json", relative=False)
    out = tmp_path / "out"
    proc = cli("run", "-b", "spurious-folder", "--data-dir", str(folder), "-m", "planted:cnn", "-o", str(out), "-q", cwd=tmp_path)
    one_line_error(proc, LEADS_OUT, out=out)


@pytest.mark.slow
def test_mine_refuses_a_pool_with_links_out_and_a_bad_hub_pool_id(cli, tmp_path, monkeypatch) -> None:
    """Through ``mine`` (which checks its discovery first, so a small real one is made: planted:cnn only)."""
    env = {"SPURBENCH_CACHE": str(tmp_path / "cache")}
    proc = cli(
        "discover",
        "-m",
        "planted:cnn",
        "--train-data",
        "planted",
        "--out",
        "d",
        "--classes",
        "2",
        "--components-per-class",
        "2",
        "--npfv-steps",
        "2",
        "-q",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "components.json").write_text(json.dumps({"components": {"2": [1]}}))
    mine = ["mine", "-m", "planted:cnn", "--discovery", "d", "--components", "components.json", "--out", "m", "-q"]
    for name, where in LINKS:
        for relative in (False, True):
            case = tmp_path / f"{name.replace('/', '-')}-{relative}"
            pool, outside = _pool(case)
            link, target = where(pool, outside)
            _link(link, target, relative)
            one_line_error(cli(*mine, "--pool", str(pool), cwd=tmp_path, env=env), LEADS_OUT, str(link), out=tmp_path / "m")
    one_line_error(cli(*mine, "--pool", "hf://../../../etc/passwd", cwd=tmp_path, env=env), "is not a Hub repo id", out=tmp_path / "m")


# ------------------------------------------------------------------------------------------ 2. geometry


def _no_geometry_benchmark(**geometry) -> Benchmark:
    images = [
        BenchmarkImage(f"g/{role}", 0, role, 0 if role == "negative" else None, role, lambda: Image.new("RGB", (8, 8)))
        for role in ("positive", "negative")
    ]
    return Benchmark("no-geometry", "planted", [BenchmarkClass(0, "zero", (0,))], images, revision="v1", checksum="c", **geometry)


AT_SIZE = protocol_table(fixed_paper(1.0, by="images at the model's size"), MODEL_TRANSFORM)


class NoGeometry(BenchmarkPlugin):
    name = "no-geometry"
    description = "a plugin whose benchmark states no protocols (a test)"
    label_space = "planted"  # the planted models' own, so that the model passes and the protocol check is reached
    protocols = AT_SIZE

    def load(self, options: BenchmarkOptions) -> Benchmark:
        return _no_geometry_benchmark()

    def reference(self, revision: str):
        return None


@pytest.mark.parametrize(
    ("geometry", "needle"),
    [
        ({}, "states no evaluation protocols"),
        ({"protocols": {}}, "states no evaluation protocols"),
        ({"protocols": {"paper": MODEL_TRANSFORM}}, "not an EvalProtocol named 'paper'"),
        ({"protocols": {"paper": "bicubic"}}, "is str"),
    ],
)
def test_a_benchmark_must_state_its_protocols(geometry, needle) -> None:
    with pytest.raises(SpurbenchError, match=needle) as caught:
        _no_geometry_benchmark(**geometry)
    assert "\n" not in str(caught.value)
    assert _no_geometry_benchmark(protocols=AT_SIZE).protocols["paper"].positive.crop_pct == 1.0


def test_a_plugin_without_protocols_is_refused_when_its_class_is_defined() -> None:
    with pytest.raises(SpurbenchError, match="states no protocols; set the class attribute"):

        class Silent(BenchmarkPlugin):
            name = "silent"
            description = "no protocols"

            def load(self, options):
                return None

            def reference(self, revision):
                return None


def test_a_plugin_without_geometry_is_refused_in_one_line_when_it_loads(cli, tmp_path) -> None:
    register_benchmark(NoGeometry)
    try:
        proc = cli("run", "-b", "no-geometry", "-m", "planted:cnn", "-o", str(tmp_path / "out"), cwd=tmp_path)
    finally:
        BENCHMARKS.unregister("no-geometry")
    one_line_error(proc, "'no-geometry'", "states no evaluation protocols", out=tmp_path / "out")


def test_a_plugin_giving_positives_states_their_geometry_when_its_class_is_defined() -> None:
    with pytest.raises(SpurbenchError, match="positives_crop_pct states none"):

        class Positives(NoGeometry):
            def positives(self, class_indices, options):
                return [], [], "nowhere"


def test_built_in_plugins_keep_their_geometry() -> None:
    """Results must not move: the numbers the hidden default gave are now stated by each plugin."""
    planted = get_benchmark("planted").load(get_benchmark("planted").parse_options({}))
    assert planted.protocols["paper"].positive.crop_pct == 1.0 and planted.protocols["paper"].negative.crop_pct == 1.0
    assert get_benchmark("spurious-imagenet").protocols["paper"].positive.crop_pct == 224 / 256
    assert get_benchmark("spurious-imagenet").positives_crop_pct == 224 / 256
    assert get_benchmark("planted").positives_crop_pct == 1.0


# ------------------------------------------------------------------------------------------ 3. ground truth


def test_a_ground_truth_without_spurious_only_validation_images_is_refused_when_handed_over() -> None:
    truth = get_benchmark("planted").ground_truth(get_benchmark("planted").parse_options({}))
    planted = sorted(truth.features)[0]
    validation = Benchmark(
        **{
            **vars(truth.validation),
            "images": [im for im in truth.validation.images if not (im.class_index == planted and im.role == "negative")],
        }
    )
    with pytest.raises(DataError, match=f"no spurious-only images of seeded class {planted}") as caught:
        GroundTruth(truth.train, validation, truth.features, truth.carriers)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------ 4. the Hub when there is none


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.slow
def test_no_hub_fails_fast_and_quietly_naming_local_weights(tmp_path) -> None:
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(tmp_path / "hf")}
    proc = spurbench("run", "-m", "timm:tf_efficientnet_lite0", "-o", str(tmp_path / "out"), cwd=tmp_path, env=env)
    one_line_error(proc, "cannot be reached", "--checkpoint", "timm model 'tf_efficientnet_lite0'", out=tmp_path / "out")
    assert "Retry" not in proc.stderr + proc.stdout  # huggingface_hub's five retries per file are gone


def test_a_model_of_another_label_space_is_told_where_it_can_run() -> None:
    class ImageNetModel:
        name, label_space = "timm:some_net", "imagenet-1k"

    with pytest.raises(LabelSpaceError) as caught:
        get_benchmark("planted").check_model(ImageNetModel())
    assert (
        "benchmarks it can run on:" in str(caught.value)
        and "spurious-imagenet" in str(caught.value)
        and "planted," not in str(caught.value)
    )


# ------------------------------------------------------------------------------------------ 5. Hub repo ids


@pytest.mark.parametrize(
    "args",
    [
        ("dataset", "download", "--dataset-repo", "../../../etc"),
        ("dataset", "download", "-b", "spurious-imagenet", "--dataset-repo", "a/b/c"),
        ("leaderboard", "pull", "--repo", "../../../etc"),
    ],
    ids=["dataset-download", "dataset-download-three-parts", "leaderboard-pull"],
)
def test_an_invalid_hub_repo_id_is_one_line(cli, tmp_path, args) -> None:
    one_line_error(cli(*args, cwd=tmp_path), "is not a Hub repo id")


def test_an_invalid_hub_pool_id_is_one_line() -> None:
    from spurbench.mining.pool import hub_pool

    with pytest.raises(SpurbenchError, match="--pool '../../../etc/passwd' is not a Hub repo id"):
        hub_pool("hf://../../../etc/passwd")


# ------------------------------------------------------------------------------------------ 6. progress without a terminal


def test_progress_lines_without_a_terminal(capsys, monkeypatch) -> None:
    from spurbench.runtime import StageProgress

    monkeypatch.setenv("SPURBENCH_PROGRESS_INTERVAL", "0")
    with StageProgress("features m on b", 5, "images") as stage:
        stage.advance(2)
        stage.advance(3, "loss 0.5")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "features m on b: started, 0/5 images, 0 s"
    assert lines[1].startswith("features m on b: 2/5 images, ") and "images/s" in lines[1]
    assert lines[-1].startswith("features m on b: done, 5/5 images") and lines[-1].endswith("loss 0.5")


def test_feature_extraction_reports_its_stage_counts_and_end_without_a_terminal(capsys, monkeypatch, tmp_path) -> None:
    from spurbench.features import extract_features
    from spurbench.settings import FeatureSettings
    from spurbench.testing import TinyAdapter, tiny_benchmark

    monkeypatch.setenv("SPURBENCH_PROGRESS_INTERVAL", "0")
    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path))
    bench = tiny_benchmark()
    extract_features(TinyAdapter(), bench, FeatureSettings(batch_size=4, num_workers=0))
    lines = capsys.readouterr().err.splitlines()
    n = len(bench.images)
    assert lines[0] == f"features tiny:net on {bench.name}: started, 0/{n} images, 0 s"
    assert any(line.startswith(f"features tiny:net on {bench.name}: 4/{n} images, ") for line in lines), lines
    assert lines[-1].startswith(f"features tiny:net on {bench.name}: done, {n}/{n} images, ") and "images/s" in lines[-1], lines


def test_progress_is_silent_for_a_short_stage_at_the_default_interval(capsys, monkeypatch) -> None:
    from spurbench.runtime import StageProgress

    monkeypatch.delenv("SPURBENCH_PROGRESS_INTERVAL", raising=False)
    with StageProgress("features", 5) as stage:
        stage.advance(5)
    assert capsys.readouterr().err == ""  # (a stage that fails at once adds no line before its error)
    monkeypatch.setenv("SPURBENCH_PROGRESS_INTERVAL", "soon")
    with pytest.raises(SpurbenchError, match="SPURBENCH_PROGRESS_INTERVAL='soon'"):
        StageProgress("features", 5)


@pytest.mark.slow
def test_a_run_into_a_pipe_shows_stages_and_counts(tmp_path) -> None:
    """The console script with stderr to a pipe (a CI log): training and features report as lines."""
    env = {"SPURBENCH_PROGRESS_INTERVAL": "0", "SPURBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "spurbench", "run", "-m", "planted:cnn", "--no-spufix", "-o", str(tmp_path / "out")],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert any(line.startswith("features planted:cnn on planted: started, 0/") for line in lines), proc.stderr
    assert any(line.startswith("features planted:cnn on planted: done, ") and "images/s" in line for line in lines), proc.stderr
    # the seed-0 models ship trained: training reports its lines where it runs, in `spurbench train`
    proc = subprocess.run(
        [sys.executable, "-m", "spurbench", "train", "-m", "planted:cnn", "--out", "w", "--epochs", "1", "--per-class", "20"],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(
        line.startswith("training planted:cnn (seed 0") and "epochs" in line and "loss" in line for line in proc.stderr.splitlines()
    ), proc.stderr


@pytest.mark.parametrize("benchmark", ["imagenet-w", "spurious-imagenet"])
def test_a_model_whose_name_gives_its_label_space_is_refused_before_it_trains(cli, tmp_path, monkeypatch, benchmark) -> None:
    """planted:cnn is trained on first use: a benchmark that cannot score it says so before that (issue 23, case 9)."""
    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path / "cache"))
    proc = cli("run", "-b", benchmark, "-m", "planted:cnn", "--imagenet-val", str(tmp_path), "-o", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(proc, "planted", out=tmp_path / "out")
    assert not list((tmp_path / "cache").rglob("*.safetensors")), list((tmp_path / "cache").rglob("*"))
