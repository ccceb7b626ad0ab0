"""ImageNet (ILSVRC2012) training images of given classes: the data SpuFix is fitted on.

Sources:
  * a local train folder in the class-subfolder layout (``n01440764/*.JPEG``, as torchvision's
    ``ImageFolder`` reads it; a ``train/`` subfolder also works). Images of a class are sorted by file
    name, the order upstream's alpha files follow;
  * the gated Hub dataset ``ILSVRC/imagenet-1k`` (split ``train``), streamed: only the rows of the needed
    classes are kept, written once as files into the spurbench cache (``imagenet-train/``), then read
    like a local folder. A class is marked complete only after all its rows were written, so an
    interrupted download resumes by class. Needs a token of an account that accepted the terms.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import datasets

from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.benchmarks.folders import file_loader, images_in, inside
from spurbench.benchmarks.imagenet.val import ACCESS_HOWTO, IMAGENET_HUB_REPO, class_folder_map
from spurbench.cache import make_cache_dir
from spurbench.errors import DataError
from spurbench.files import atomic_path, stable_hash
from spurbench.hub import hub_error, resolve_token
from spurbench.label_spaces import check_classes, class_names, describe_class, synsets
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

# ImageNet train photos, resized and centre-cropped as the class-image benchmarks' authors do val photos
# (what SpuFix is fitted on, under the run's protocol name)
TRAIN_PROTOCOLS = protocol_table(
    fixed_paper(224 / 256, by="ImageNet train photos, resized and centre-cropped as ImageNet val photos are"), MODEL_TRANSFORM
)


def _train_image(k: int, path: Path) -> BenchmarkImage:
    return BenchmarkImage(f"imagenet-train/{k}/{path.name}", k, "positive", None, str(path), file_loader(path))


def load_local_imagenet_train(root: str | Path, class_indices: Sequence[int], limit: int | None = None) -> Benchmark:
    """Training images of ``class_indices`` from a local class-subfolder folder, sorted by class then file."""
    root = given = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"ImageNet train folder {root} does not exist")
    folders = class_folder_map(root)
    if folders is None and (root / "train").is_dir():
        root = inside(given, root / "train", "its train/ folder")
        folders = class_folder_map(root, given)
    if folders is None:
        raise DataError(f"{root}: not an ImageNet train folder (expected one subfolder per class, named by synset, e.g. n01440764/)")
    classes = check_classes(class_indices)
    images: list[BenchmarkImage] = []
    for k in classes:
        files = images_in(folders[k], given) if k in folders else []
        if not files:
            raise DataError(f"{root}: no training images for class {k} ({describe_class(k)})")
        images += [_train_image(k, f) for f in files[:limit]]
    names = class_names()
    return Benchmark(
        name="imagenet-train",
        label_space="imagenet-1k",
        classes=[BenchmarkClass(k, names[k]) for k in classes],
        images=images,
        repo=str(root),
        positives_source=str(root),
        protocols=TRAIN_PROTOCOLS,
    )


def write_class_rows(rows: Iterable[dict[str, Any]], classes: Sequence[int], folder: Path) -> None:
    """Write the image bytes of the rows whose label is in ``classes`` as files ``<synset>/<name>``.

    Rows are ``{"image": {"bytes": ..., "path": ...}, "label": int}`` (datasets' undecoded Image feature).
    """
    synset_of = synsets()
    wanted = set(classes)
    counts: dict[int, int] = dict.fromkeys(wanted, 0)
    for row in rows:
        k = int(row["label"])
        if k not in wanted:
            continue
        image = row["image"]
        name = Path(image.get("path") or f"{synset_of[k]}_{counts[k]:06d}.JPEG").name
        target = folder / synset_of[k] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(image["bytes"])
        counts[k] += 1
    (folder / "complete.json").write_text(json.dumps({str(k): n for k, n in sorted(counts.items())}))


def hub_imagenet_train(class_indices: Sequence[int], token: str | bool | None = None, limit: int | None = None) -> Benchmark:
    """Stream the gated Hub train split once, keep the needed classes on disk, return them as a benchmark."""
    classes = check_classes(class_indices)
    folder = make_cache_dir("imagenet-train", f"{len(classes)}-classes-{stable_hash(classes)}")
    if not (folder / "complete.json").exists():
        hf_token = resolve_token(token, ACCESS_HOWTO)
        try:
            stream = datasets.load_dataset(IMAGENET_HUB_REPO, split="train", streaming=True, token=hf_token)
            stream = stream.cast_column("image", datasets.Image(decode=False))
            write_class_rows(stream, classes, folder)
        except DataError:
            raise
        except Exception as exc:  # gated / offline / HTTP errors from datasets and huggingface_hub
            mapped = hub_error(exc, f"Hub dataset {IMAGENET_HUB_REPO} (train split)", "or pass a local train folder", ACCESS_HOWTO)
            if mapped is exc:
                raise DataError(
                    f"cannot stream {IMAGENET_HUB_REPO} train split ({type(exc).__name__}); check your token and access, or pass a local train folder"
                ) from None
            raise mapped from None
    return load_local_imagenet_train(folder, classes, limit)
