"""The ``spurious-imagenet`` plugin (Neuhaus et al., ICCV 2023): 100 ImageNet classes x 75 spurious-only
images (``shared.spurious_negatives``), against the ImageNet validation images of the same classes
(``benchmarks.imagenet``); its Hub dataset is built, published and fetched by ``shared.spurious_build``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage, BenchmarkOptions, BenchmarkPlugin, ExampleImage, Reference
from spurbench.benchmarks.capabilities import GivesPositives, PublishesDataset, ShowsExamples, TrainingData
from spurbench.benchmarks.imagenet.train import hub_imagenet_train, load_local_imagenet_train
from spurbench.benchmarks.imagenet.val import resolve_imagenet_val
from spurbench.benchmarks.shared.spurious_build import build_from_upstream, download, push_to_hub
from spurbench.benchmarks.shared.spurious_negatives import (
    DEFAULT_DATASET_REPO,
    EXPECTED_CLASSES,
    EXPECTED_PER_CLASS,
    KNOWN_REVISIONS,
    load_built_negatives,
    load_negatives,
)
from spurbench.errors import DataError, SpurbenchError
from spurbench.hub import cached_snapshot
from spurbench.label_spaces import check_classes, class_names
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

NAME = "spurious-imagenet"
POSITIVES_PER_CLASS = 50  # ImageNet-val images per class
OPENIMAGES_CREDIT = "OpenImages photo, CC BY 2.0 (its author: see OpenImages' image metadata), via Spurious ImageNet"


class SpuriousImageNetOptions(BenchmarkOptions):
    data_dir: str | None = None  # local copy of the negatives: upstream folder layout or a built dataset folder
    imagenet_val: str | None = None  # local ILSVRC2012 val folder for the positives (else the gated Hub dataset)
    dataset_repo: str | None = None  # Hub dataset repo of the negatives (default: negatives.DEFAULT_DATASET_REPO)
    revision: str | None = None  # pinned Hub revision of the negatives


AUTHORS_CODE = "Neuhaus et al.'s evaluation code (YanNeu/spurious_imagenet, dataset/spurious_score.py)"


class SpuriousImageNet(TrainingData, GivesPositives, PublishesDataset, ShowsExamples, BenchmarkPlugin):
    name = NAME
    description = "Spurious ImageNet (Neuhaus et al., ICCV 2023): 100 classes x 75 spurious-only images vs ImageNet val"
    options_model = SpuriousImageNetOptions
    label_space = "imagenet-1k"
    positives_crop_pct = 224 / 256  # ImageNet-val photos, as in its own benchmark
    # paper: the authors' evaluation (matched step by step: tests/test_paper_protocol.py); model: timm's
    protocols = protocol_table(fixed_paper(224 / 256, by=AUTHORS_CODE), MODEL_TRANSFORM)

    def load(self, options: BenchmarkOptions) -> Benchmark:
        """Negatives (``negatives``) + ImageNet-val positives (local folder or the gated Hub dataset)."""
        opts = self.parse_options(options)
        assert isinstance(opts, SpuriousImageNetOptions)
        negatives = load_negatives(opts.data_dir, opts.dataset_repo, opts.revision, opts.token, opts.limit)
        if not negatives.images:
            raise DataError(f"{negatives.repo}: no Spurious ImageNet images")
        class_indices = sorted(negatives.components)
        positives, positives_source = resolve_imagenet_val(class_indices, opts.imagenet_val, opts.token, opts.limit)
        names = class_names()
        per_class = dict.fromkeys(class_indices, 0)
        for im in negatives.images:
            per_class[im.class_index] += 1
        facts = dict(negatives.extra)
        # the paper's set is 100 classes x 75 images; a partial copy is usable but not comparable
        facts["complete"] = len(class_indices) == EXPECTED_CLASSES and all(n == EXPECTED_PER_CLASS for n in per_class.values())
        facts["limit"] = opts.limit
        return Benchmark(
            name=NAME,
            label_space="imagenet-1k",
            classes=[BenchmarkClass(index=k, name=names[k], components=negatives.components[k]) for k in class_indices],
            images=positives + negatives.images,
            repo=negatives.repo,
            revision=negatives.revision,
            checksum=negatives.checksum,
            positives_source=positives_source,
            protocols=self.protocols,
            facts=facts,
        )

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list[ExampleImage]:
        """The first spurious image of each of the worst classes, from the Hub dataset at ``revision`` where
        it is already in the local Hub cache (a board build downloads nothing), with OpenImages' licence
        line: the spurious images are OpenImages photos, licensed CC BY 2.0 by their authors."""
        if benchmark_name != NAME or not revision:
            return []
        folder = cached_snapshot(DEFAULT_DATASET_REPO, revision)
        if folder is None:
            return []
        try:
            negatives = load_built_negatives(folder, f"{DEFAULT_DATASET_REPO}@{revision}")
        except SpurbenchError:  # a cached build that does not verify: no pictures rather than a failed board
            return []
        first: dict[int, BenchmarkImage] = {}
        for image in negatives.images:
            first.setdefault(image.class_index, image)
        names = class_names()
        return [
            ExampleImage(first[k].open(), f"{names[k]}: spurious image (component {first[k].component}, no {names[k]})", OPENIMAGES_CREDIT)
            for k in worst_classes[:3]
            if k in first
        ]

    def positives(self, class_indices: Sequence[int], options: BenchmarkOptions) -> tuple[list[BenchmarkImage], list[BenchmarkClass], str]:
        """The ImageNet-val images of ``class_indices`` (local ``imagenet_val`` folder or the gated Hub
        dataset, as ``load`` gets them) and the classes' records."""
        opts = self.parse_options(options)
        assert isinstance(opts, SpuriousImageNetOptions)
        indices = check_classes(class_indices)
        positives, positives_source = resolve_imagenet_val(indices, opts.imagenet_val, opts.token, opts.limit)
        names = class_names()
        return positives, [BenchmarkClass(index=k, name=names[k]) for k in indices], positives_source

    def reference(self, revision: str) -> Reference | None:
        """Published dataset revisions (``negatives.KNOWN_REVISIONS``): the images cannot be listed offline
        (the positives are gated), so the reference holds the counts of the paper's set."""
        checksum = KNOWN_REVISIONS.get(revision)
        if checksum is None:
            return None
        return Reference(NAME, revision, checksum, None, EXPECTED_CLASSES, POSITIVES_PER_CLASS, EXPECTED_PER_CLASS)

    def build_dataset(self, source: Path, out: Path) -> str:
        info = build_from_upstream(source, out)
        return f"{info.num_images} images of {info.num_classes} classes in {len(info.shards)} shard(s), content checksum {info.checksum}"

    def push_dataset(self, folder: Path, repo_id: str) -> str:
        return push_to_hub(folder, repo_id)

    def download_dataset(self, repo_id: str | None, revision: str | None, out: Path | None) -> Path:
        return download(repo_id or DEFAULT_DATASET_REPO, revision, out)

    def training_split(self, classes: Sequence[int] | None, source: str | None = None, limit: int | None = None) -> Benchmark:
        """ImageNet training images of ``classes``: ``source`` is a local ILSVRC2012 train folder, or ``hub``
        for the gated ``ILSVRC/imagenet-1k`` train split (streamed once into the cache)."""
        classes = range(1000) if classes is None else classes  # all of ImageNet-1k
        if not source:
            raise SpurbenchError(f"benchmark {NAME!r}: --train-data must be a local ImageNet train folder or 'hub'")
        if source == "hub":
            return hub_imagenet_train(classes, limit=limit)
        return load_local_imagenet_train(Path(source), classes, limit)


__all__ = ["SpuriousImageNet", "SpuriousImageNetOptions"]
