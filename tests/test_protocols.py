"""The protocol contract (``spurbench.protocols``): descriptions written from the fields, a geometry
for each role a benchmark has and none it lacks, and one-line refusals."""

from __future__ import annotations

import pytest
from PIL import Image
from pydantic import ValidationError

from spurbench.benchmarks import Benchmark, BenchmarkClass, BenchmarkImage, get_benchmark
from spurbench.dataloading import input_batches
from spurbench.errors import SpurbenchError
from spurbench.protocols import MODEL_TRANSFORM, EvalProtocol, Geometry, fixed_paper, protocol_table, scored_protocol

CONFIG = {
    "input_size": (3, 16, 16),
    "mean": (0.5,) * 3,
    "std": (0.5,) * 3,
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
}


def test_descriptions_say_what_each_field_does():
    paper = fixed_paper(224 / 256, by="their code")
    assert paper.describe().startswith("their code: size the weights' test_input_size")
    assert "class images: bicubic resize of the short side to size / 0.875, centre crop" in paper.describe()
    assert "spurious-only images: bicubic resize of the short side to size, centre crop (a no-op for square images)" in paper.describe()
    only_class_images = fixed_paper(1.0, by="ours", spurious_only_images=False)
    assert "spurious-only" not in only_class_images.describe()
    imagenet = EvalProtocol(
        name="paper",
        by="x",
        transform="fixed",
        size=224,
        positive=Geometry(crop_pct=1.0, interpolation="bilinear"),
        normalization="imagenet",
    )
    assert "size 224 px" in imagenet.describe() and "ImageNet mean/std for every model" in imagenet.describe()
    assert (
        "at the weights' input_size (train size), the config's crop_pct"
        in MODEL_TRANSFORM.model_copy(update={"size": "train", "model_crop": "train"}).describe()
    )


def test_views_benchmarks_of_class_images_only_state_no_spurious_only_geometry():
    for name, options in (("salient-imagenet", {}), ("planted-salient", {})):
        plugin = get_benchmark(name)
        for protocol in plugin.protocols_for(plugin.parse_options(options)).values():
            assert protocol.negative is None and "spurious-only" not in protocol.describe(), (name, protocol.name)


def test_a_role_without_geometry_is_refused_in_one_line_when_its_images_are_read():
    images = [
        BenchmarkImage(f"x/{role}", 0, role, 0 if role == "negative" else None, role, lambda: Image.new("RGB", (20, 20)))
        for role in ("positive", "negative")
    ]
    bench = Benchmark(
        "x",
        "planted",
        [BenchmarkClass(0, "zero", (0,))],
        images,
        protocols=protocol_table(fixed_paper(1.0, by="ours", spurious_only_images=False)),
    )
    with pytest.raises(SpurbenchError, match="states no geometry for negative images") as caught:
        next(input_batches(bench, [0, 1], CONFIG, "paper", 2, workers=0))
    assert "\n" not in str(caught.value)
    only_positive = Benchmark("x", "planted", bench.classes, images[:1], protocols=bench.protocols)
    assert next(input_batches(only_positive, [0], CONFIG, "paper", 1, workers=0)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize(
    "fields",
    [
        dict(transform="fixed", size="test", normalization="model"),
        dict(transform="model", size="test", normalization="model"),
        dict(
            transform="model",
            size="test",
            model_crop="test",
            normalization="model",
            positive=Geometry(crop_pct=1.0, interpolation="bicubic"),
        ),
    ],
)
def test_incomplete_or_contradictory_protocols_cannot_be_built(fields):
    with pytest.raises(ValidationError):
        EvalProtocol(name="paper", by="x", **fields)


def test_a_protocol_the_benchmark_does_not_have_is_refused_naming_those_it_has():
    with pytest.raises(SpurbenchError, match="benchmark planted-salient is scored under --protocol paper only, not 'model'"):
        scored_protocol(get_benchmark("planted-salient").protocols, "model", "planted-salient")
