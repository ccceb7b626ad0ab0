"""Evaluation protocols: how a benchmark's images become a model's input, stated by the benchmark.

Each benchmark plugin declares the protocols it is scored under (``--protocol NAME``): ``paper`` is
that benchmark's own authors' evaluation code, ``model`` each model's own timm eval transform. A
protocol is data, not a branch: the image size rule, each role's resize and crop, the normalisation
and the benchmark's own steps (such as a mask's handling). The description that results record is
written from these fields (:meth:`EvalProtocol.describe`), so it says what runs, and the whole
protocol is part of the run's configuration hash.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from spurbench.errors import SpurbenchError

Interpolation = Literal["bicubic", "bilinear"]
SizeRule = Literal["test", "train"]
PROTOCOL_NAMES: tuple[str, ...] = ("paper", "model")  # the names a benchmark may declare; --protocol takes one
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Geometry(_Frozen):
    """One image role under a fixed protocol: the short side is resized to ``floor(size / crop_pct)``
    with ``interpolation`` (PIL, as torchvision's ``Resize``), then the centre ``size`` x ``size`` is kept
    (``crop_pct`` 1.0: the resized image itself, for square images)."""

    crop_pct: float = Field(gt=0.0, le=1.0)
    interpolation: Interpolation


class EvalProtocol(_Frozen):
    """One way of turning a benchmark's images into model inputs (see the module docstring)."""

    name: Literal["paper", "model"]
    by: str  # whose evaluation this is: the authors' code (repository and file), or timm's
    transform: Literal["fixed", "model"]  # fixed: ``positive``/``negative`` below; model: each model's own timm eval transform
    # "test": the weights' test_input_size where their config has one, else input_size; "train": input_size; a number: that many pixels
    size: SizeRule | PositiveInt
    model_crop: SizeRule | None = None  # transform "model": the config's test_crop_pct where it has one ("test"), or its crop_pct ("train")
    positive: Geometry | None = None  # class images
    negative: Geometry | None = None  # spurious-only images (None: a benchmark of class images only, e.g. a views benchmark)
    normalization: Literal["model", "imagenet"]  # the model's own mean/std, or ImageNet's for every model
    steps: tuple[str, ...] = ()  # the benchmark's own steps, in words (what its plugin does beyond the geometry)

    @model_validator(mode="after")
    def _complete(self) -> EvalProtocol:
        if self.transform == "fixed" and (self.positive is None or self.model_crop is not None):
            raise ValueError(
                "a fixed protocol states the positive geometry (and the negative one where the benchmark has spurious-only images) and no model_crop"
            )
        if self.transform == "model" and (self.positive is not None or self.negative is not None or self.model_crop is None):
            raise ValueError("a model-transform protocol states model_crop and no per-role geometry")
        return self

    def describe(self) -> str:
        """What the protocol does, in one line, from its fields."""
        size = {
            "test": "the weights' test_input_size if their config has one, else input_size",
            "train": "the weights' input_size (train size)",
        }.get(str(self.size), f"{self.size} px")
        mean = "the model's mean/std" if self.normalization == "model" else "ImageNet mean/std for every model"
        if self.transform == "model":
            crop = "test_crop_pct where the config has one" if self.model_crop == "test" else "the config's crop_pct"
            parts = [f"{self.by}: each model's own timm eval transform at {size}, {crop}; {mean}"]
        else:
            roles = "; ".join(
                f"{label}: {_geometry_words(g)}"
                for label, g in (("class images", self.positive), ("spurious-only images", self.negative))
                if g is not None
            )
            parts = [f"{self.by}: size {size}; {roles}; {mean}"]
        return "; ".join(parts + list(self.steps))


def _geometry_words(geometry: Geometry) -> str:
    if geometry.crop_pct == 1.0:
        return f"{geometry.interpolation} resize of the short side to size, centre crop (a no-op for square images)"
    return f"{geometry.interpolation} resize of the short side to size / {geometry.crop_pct:g}, centre crop"


MODEL_TRANSFORM = EvalProtocol(
    name="model",
    by="timm's validate.py",
    transform="model",
    size="test",
    model_crop="test",
    normalization="model",
)


def fixed_paper(positive_crop_pct: float, by: str, steps: tuple[str, ...] = (), spurious_only_images: bool = True) -> EvalProtocol:
    """A ``paper`` protocol of fixed steps at the weights' test size, with the model's mean/std: class
    images' short side resized (bicubic) to size / ``positive_crop_pct`` and centre-cropped (224 / 256
    for photos, as ImageNet val is evaluated; 1.0 for images made at the model's size); spurious-only
    images resized to size, never cropped (``spurious_only_images=False``: a benchmark without them).
    ``by`` names whose evaluation this is."""
    return EvalProtocol(
        name="paper",
        by=by,
        transform="fixed",
        size="test",
        positive=Geometry(crop_pct=positive_crop_pct, interpolation="bicubic"),
        negative=Geometry(crop_pct=1.0, interpolation="bicubic") if spurious_only_images else None,
        normalization="model",
        steps=steps,
    )


def scored_protocol(protocols: dict[str, EvalProtocol], protocol: str, benchmark_name: str) -> EvalProtocol:
    """The benchmark's protocol of this name (``--protocol``), or a one-line refusal naming its own."""
    if protocol not in protocols:
        raise SpurbenchError(f"benchmark {benchmark_name} is scored under --protocol {' or '.join(protocols)} only, not {protocol!r}")
    return protocols[protocol]


def protocol_table(*protocols: EvalProtocol) -> dict[str, EvalProtocol]:
    """``{name: protocol}``: what ``Benchmark.protocols`` and ``BenchmarkPlugin.protocols`` hold."""
    return {p.name: p for p in protocols}


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_TRANSFORM",
    "PROTOCOL_NAMES",
    "EvalProtocol",
    "Geometry",
    "fixed_paper",
    "protocol_table",
    "scored_protocol",
]
