"""ImageNet (ILSVRC2012) validation images of given classes: the positives of ImageNet-based benchmarks.

Sources, in order of preference:

1. A local folder (the benchmark option ``imagenet_val``, ``--imagenet-val``). Supported layouts (anything else is a DataError naming
   the folder):

   * **class subfolders** -- one folder per class, named by WordNet synset (``n01440764/...``, the
     torchvision ``ImageFolder`` / ``ImageNet(split="val")`` layout) or by 0-based class index
     (``0/ ... 999/``). Synsets map to indices in the standard ILSVRC2012 order (sorted synsets,
     timm's ``imagenet_synsets.txt``). A folder that holds such class folders under ``val/`` also works.
   * **flat files + Kaggle solution CSV** -- ``LOC_val_solution.csv`` (``ImageId,PredictionString``,
     the first token of ``PredictionString`` is the synset) next to ``<ImageId>.JPEG`` files, either in
     the same folder or under ``ILSVRC/Data/CLS-LOC/val/`` (the Kaggle download as unpacked).
   * **flat files + label list** -- ``val.txt`` or ``ground_truth.txt`` with lines
     ``<file name> <0-based class index>`` (the caffe / torchvision order, e.g.
     ``ILSVRC2012_val_00000001.JPEG 65``). The 1-based devkit ``ILSVRC2012_validation_ground_truth.txt``
     (ILSVRC ids, a different order) is *not* supported: it needs the devkit's meta.mat mapping.

2. The gated Hub dataset ``ILSVRC/imagenet-1k``, split ``validation``: its validation parquet shards
   are fetched with ``huggingface_hub.snapshot_download`` (cached in the Hub cache; ~6.4 GB once) and
   only the rows of the requested classes are loaded (``datasets`` parquet ``filters``). It needs a
   token of an account that accepted the dataset's terms; without one this raises AccessError with
   the how-to. The live Hub path cannot be exercised from the test sandbox: the tests cover the
   token-missing branch, the offline/not-cached branch and the shard reading against a local Hub
   cache that mimics the repo's parquet layout (``data/validation-*.parquet`` with ``image`` and
   ``label`` columns -- assumed, not verified from this sandbox).

Images of a class are sorted by file name; ``limit`` keeps the first ``limit`` of each class.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from spurbench.benchmarks.base import BenchmarkImage
from spurbench.benchmarks.folders import file_loader, images_in, inside
from spurbench.benchmarks.parquet import bytes_loader, read_shard
from spurbench.errors import DataError
from spurbench.hub import resolve_token, snapshot
from spurbench.label_spaces import check_classes, describe_class, synsets

IMAGENET_HUB_REPO = "ILSVRC/imagenet-1k"
IMAGENET_HUB_REVISION: str | None = None  # None = "main"; the resolved commit is recorded in positives_source
ACCESS_HOWTO = (
    "ImageNet-val positives come from the gated Hub dataset ILSVRC/imagenet-1k: accept its terms at "
    "https://huggingface.co/datasets/ILSVRC/imagenet-1k, then `huggingface-cli login` (or `hf auth login`) "
    "or set HF_TOKEN; or pass --imagenet-val DIR"
)
LABEL_LISTS = ("val.txt", "ground_truth.txt")
KAGGLE_CSV = "LOC_val_solution.csv"


# --------------------------------------------------------------------------- helpers


def _positive(class_index: int, name: str, origin: str, loader: Callable[[], Image.Image]) -> BenchmarkImage:
    return BenchmarkImage(
        image_id=f"imagenet-val/{class_index}/{name}",
        class_index=class_index,
        role="positive",
        component=None,
        origin=origin,
        loader=loader,
    )


def _missing_class(root: Path, k: int) -> DataError:
    return DataError(f"{root}: no ImageNet-val images for class {k} ({describe_class(k)})")


# --------------------------------------------------------------------------- local layouts


def class_folder_map(root: Path, given: Path | None = None) -> dict[int, Path] | None:
    """Class index -> folder for a class-subfolder layout, or None if ``root`` is not one; no folder may
    lead out of ``given`` (the folder the user named; default ``root``)."""
    folders = [inside(given or root, d, "a class folder") for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    synset_index = {s: i for i, s in enumerate(synsets())}
    by_synset = {synset_index[d.name]: d for d in folders if d.name in synset_index}
    if by_synset:
        return by_synset
    by_index = {int(d.name): d for d in folders if d.name.isdigit() and int(d.name) < 1000}
    return by_index or None


def _from_class_folders(root: Path, folders: dict[int, Path], classes: list[int], limit: int | None, given: Path) -> list[BenchmarkImage]:
    images: list[BenchmarkImage] = []
    for k in classes:
        folder = folders.get(k)
        files = images_in(folder, given) if folder is not None else []
        if not files:
            raise _missing_class(root, k)
        images.extend(_positive(k, f.name, str(f), file_loader(f)) for f in files[:limit])
    return images


def _read_kaggle_csv(path: Path) -> dict[str, int]:
    synset_index = {s: i for i, s in enumerate(synsets())}
    labels: dict[str, int] = {}
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
                raise DataError(f"{path}: expected a Kaggle CSV with columns ImageId,PredictionString")
            for line_no, row in enumerate(reader, start=2):
                tokens = (row.get("PredictionString") or "").split()
                if not row.get("ImageId") or not tokens or tokens[0] not in synset_index:
                    raise DataError(f"{path}:{line_no}: cannot read an ImageId and a synset from this row")
                labels[row["ImageId"]] = synset_index[tokens[0]]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return labels


def _read_label_list(path: Path) -> dict[str, int]:
    labels: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= 1000:
            raise DataError(f"{path}:{line_no}: expected '<file name> <class index 0-999>', got {line.strip()!r}")
        labels[parts[0]] = int(parts[1])
    return labels


@dataclass(frozen=True)
class _ClassFolders:
    """A local val folder of class subfolders."""

    root: Path
    folders: dict[int, Path]  # class -> its folder


@dataclass(frozen=True)
class _LabelMap:
    """A local val folder of flat images with a label map."""

    root: Path
    image_dir: Path  # where the files of the label map are
    labels: dict[str, int]  # file name -> class
    suffix: str = ""  # appended to the label map's names (Kaggle lists ids without ".JPEG")


def _from_label_map(layout: _LabelMap, classes: list[int], limit: int | None) -> list[BenchmarkImage]:
    root, image_dir = layout.root, layout.image_dir
    wanted = set(classes)
    per_class: dict[int, list[str]] = {k: [] for k in classes}
    for name, k in layout.labels.items():
        if k in wanted:
            per_class[k].append(name + layout.suffix)
    images: list[BenchmarkImage] = []
    for k in classes:
        names = sorted(per_class[k], key=lambda n: Path(n).name)
        if not names:
            raise _missing_class(root, k)
        for name in names[:limit]:
            path = image_dir / name
            if not path.is_file():
                # label lists sometimes carry a "val/" prefix; fall back to the bare file name
                path = image_dir / Path(name).name
            if not path.is_file():
                raise DataError(f"{root}: ground truth lists {name} (class {k}) but {path} does not exist")
            inside(root, path, "an image file")
            images.append(_positive(k, path.name, str(path), file_loader(path)))
    return images


def _local_layout(root: str | Path) -> _ClassFolders | _LabelMap:
    """A local val folder's layout, detected once."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"ImageNet-val dir {path} does not exist or is not a directory")
    for candidate in (path, path / "val"):
        if candidate.is_dir():
            folders = class_folder_map(inside(path, candidate, "its val/ folder"), path)
            if folders:
                return _ClassFolders(candidate, folders)
    if (path / KAGGLE_CSV).is_file():
        inside(path, path / KAGGLE_CSV, "its label list")
        kaggle_images = path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
        image_dir = kaggle_images if kaggle_images.is_dir() else path
        return _LabelMap(path, image_dir, _read_kaggle_csv(path / KAGGLE_CSV), suffix=".JPEG")
    for name in LABEL_LISTS:
        if (path / name).is_file() and inside(path, path / name, "its label list"):
            return _LabelMap(path, path, _read_label_list(path / name))
    raise _unrecognised(path)


def load_local_imagenet_val(root: str | Path, class_indices: Sequence[int], limit: int | None = None) -> list[BenchmarkImage]:
    """Positives from a local ILSVRC2012 val folder in one of the layouts in the module docstring."""
    classes = check_classes(class_indices)
    layout = _local_layout(root)
    if isinstance(layout, _ClassFolders):
        return _from_class_folders(layout.root, layout.folders, classes, limit, Path(root).expanduser())
    return _from_label_map(layout, classes, limit)


def _unrecognised(path: Path) -> DataError:
    return DataError(
        f"{path}: unrecognised ImageNet-val layout (expected synset or class-index subfolders, "
        f"or flat images with {KAGGLE_CSV}, val.txt or ground_truth.txt)"
    )


# --------------------------------------------------------------------------- Hub


def load_hub_imagenet_val(
    class_indices: Sequence[int], token: str | bool | None = None, limit: int | None = None, revision: str | None = IMAGENET_HUB_REVISION
) -> tuple[list[BenchmarkImage], str]:
    """Positives from the gated Hub dataset; returns (images, source description with resolved commit)."""
    classes = check_classes(class_indices)
    hf_token = resolve_token(token, ACCESS_HOWTO)
    folder = snapshot(
        IMAGENET_HUB_REPO,
        repo_type="dataset",
        revision=revision,
        token=hf_token,
        allow_patterns=["*validation*.parquet"],  # only the val split (~6.4 GB), never the 140 GB train
        hint="or pass --imagenet-val DIR",
        gated_howto=ACCESS_HOWTO,
    )
    what = f"Hub dataset {IMAGENET_HUB_REPO}@{folder.name}"
    shards = sorted(p for p in folder.rglob("*.parquet") if "validation" in p.name)
    if not shards:
        raise DataError(f"{what} has no validation parquet shards; pass --imagenet-val DIR")
    per_class: dict[int, list[tuple[str, str, object, int]]] = {k: [] for k in classes}
    for shard in shards:
        rel = shard.relative_to(folder).as_posix()
        # filters: only the requested classes reach the Arrow cache (not all 50k images)
        table = read_shard(shard, what, ["image", "label"], filters=[("label", "in", classes)])
        labels = table.column("label").to_pylist()
        paths = table.column("image").combine_chunks().field("path").to_pylist()
        for row, (k, p) in enumerate(zip(labels, paths)):
            name = Path(p).name if p else f"{shard.stem}-row{row}"
            per_class[k].append((name, f"{IMAGENET_HUB_REPO}@{folder.name}:{rel}#{name}", table, row))
    images: list[BenchmarkImage] = []
    for k in classes:
        rows = sorted(per_class[k], key=lambda r: r[0])
        if not rows:
            raise DataError(f"{what}: no validation images for class {k} ({synsets()[k]})")
        images.extend(_positive(k, name, origin, bytes_loader(table, row)) for name, origin, table, row in rows[:limit])
    return images, f"hf://datasets/{IMAGENET_HUB_REPO}@{folder.name} (validation)"


def local_val_classes(root: str | Path) -> list[int]:
    """The classes a local val folder holds images of (any layout ``load_local_imagenet_val`` reads): a
    benchmark over all of val scores what a partial copy has, not an error per missing class."""
    layout = _local_layout(root)
    if isinstance(layout, _ClassFolders):
        return sorted(k for k, folder in layout.folders.items() if images_in(folder, Path(root).expanduser()))
    return sorted(set(layout.labels.values()))


def resolve_imagenet_val(
    class_indices: Sequence[int], folder: str | None, token: str | bool | None = None, limit: int | None = None
) -> tuple[list[BenchmarkImage], str]:
    """(positives, where they came from): the local ``folder`` if given, else the gated Hub dataset."""
    if folder:
        path = Path(folder).expanduser()
        return load_local_imagenet_val(path, class_indices, limit), str(path)
    return load_hub_imagenet_val(class_indices, token=token, limit=limit)


__all__ = [
    "ACCESS_HOWTO",
    "IMAGENET_HUB_REPO",
    "load_hub_imagenet_val",
    "load_local_imagenet_val",
    "local_val_classes",
    "resolve_imagenet_val",
]
