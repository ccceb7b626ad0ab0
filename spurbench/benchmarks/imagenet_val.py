"""ImageNet (ILSVRC2012) validation images of given classes: the positives of Spurious ImageNet.

Sources, in order of preference:

1. A local folder, ``options.imagenet_val``. Supported layouts (anything else is a DataError naming
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

Images of a class are sorted by file name; ``options.limit`` keeps the first ``limit`` of each class.
"""

from __future__ import annotations

import ast
import csv
import functools
import importlib.util
import io
import re
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image

from spurbench.benchmarks.base import BenchmarkImage, BenchmarkOptions
from spurbench.errors import AccessError, DataError

IMAGENET_HUB_REPO = "ILSVRC/imagenet-1k"
IMAGENET_HUB_REVISION: str | None = None  # None = "main"; the resolved commit is recorded in positives_source
ACCESS_HOWTO = (
    "ImageNet-val positives come from the gated Hub dataset ILSVRC/imagenet-1k: accept its terms at "
    "https://huggingface.co/datasets/ILSVRC/imagenet-1k, then `huggingface-cli login` (or `hf auth login`) "
    "or set HF_TOKEN; or pass --imagenet-val DIR"
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LABEL_LISTS = ("val.txt", "ground_truth.txt")
KAGGLE_CSV = "LOC_val_solution.csv"
_SYNSET = re.compile(r"^n\d{8}$")


# --------------------------------------------------------------------------- class metadata


def _package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, found without importing it (timm/open_clip import torch)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def imagenet_synsets() -> list[str]:
    """The 1000 ILSVRC2012 synsets in standard class-index order (timm's imagenet_synsets.txt)."""
    path = _package_file("timm", "data", "_info", "imagenet_synsets.txt")
    if path is not None:
        synsets = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:  # layout changed: ask timm itself
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        synsets = [info.index_to_label_name(i) for i in range(1000)]
    if len(synsets) != 1000:
        raise RuntimeError(f"expected 1000 ImageNet synsets, found {len(synsets)}")
    return synsets


@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    """Readable, unique class names: open_clip's IMAGENET_CLASSNAMES, else timm's first lemma."""
    path = _package_file("open_clip", "zero_shot_metadata.py")
    if path is not None:
        # Read the literal without importing open_clip (which imports torch): ~10 s saved per process.
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "IMAGENET_CLASSNAMES" for t in node.targets):
                names = list(ast.literal_eval(node.value))
                if len(names) == 1000:
                    return names
    lemma_file = _package_file("timm", "data", "_info", "imagenet_synset_to_lemma.txt")
    if lemma_file is not None:
        lemmas = dict(line.split("\t", 1) for line in lemma_file.read_text().splitlines() if "\t" in line)
        return [lemmas.get(s, s).split(",")[0].strip() for s in imagenet_synsets()]
    return list(imagenet_synsets())


# --------------------------------------------------------------------------- helpers


def _file_loader(path: Path):
    return lambda: Image.open(path)


def _bytes_loader(table, row: int):
    """Lazy loader for one row of an Arrow table's ``image`` struct column."""

    def load() -> Image.Image:
        data = table.column("image")[row]["bytes"].as_py()
        if data is None:
            raise DataError("image row has no bytes")
        return Image.open(io.BytesIO(data))

    return load


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
    )


def _check_classes(class_indices: Iterable[int]) -> list[int]:
    classes = sorted(set(int(k) for k in class_indices))
    bad = [k for k in classes if not 0 <= k < 1000]
    if bad:
        raise DataError(f"ImageNet class index {bad[0]} is outside 0-999")
    return classes


def _positive(class_index: int, name: str, origin: str, loader) -> BenchmarkImage:
    return BenchmarkImage(
        image_id=f"imagenet-val/{class_index}/{name}",
        class_index=class_index,
        role="positive",
        component=None,
        origin=origin,
        loader=loader,
    )


def _missing_class(root: Path, k: int) -> DataError:
    return DataError(f"{root}: no ImageNet-val images for class {k} ({imagenet_synsets()[k]}, {imagenet_class_names()[k]})")


# --------------------------------------------------------------------------- local layouts


def _class_folder_map(root: Path) -> dict[int, Path] | None:
    """Class index -> folder for a class-subfolder layout, or None if ``root`` is not one."""
    folders = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    synset_index = {s: i for i, s in enumerate(imagenet_synsets())}
    by_synset = {synset_index[d.name]: d for d in folders if d.name in synset_index}
    if by_synset:
        return by_synset
    by_index = {int(d.name): d for d in folders if d.name.isdigit() and int(d.name) < 1000}
    return by_index or None


def _from_class_folders(root: Path, folders: dict[int, Path], classes: list[int], limit: int | None) -> list[BenchmarkImage]:
    images: list[BenchmarkImage] = []
    for k in classes:
        folder = folders.get(k)
        files = _images_in(folder) if folder is not None else []
        if not files:
            raise _missing_class(root, k)
        images.extend(_positive(k, f.name, str(f), _file_loader(f)) for f in files[:limit])
    return images


def _read_kaggle_csv(path: Path) -> dict[str, int]:
    synset_index = {s: i for i, s in enumerate(imagenet_synsets())}
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


def _from_label_map(
    root: Path, image_dir: Path, labels: dict[str, int], classes: list[int], limit: int | None, suffix: str = ""
) -> list[BenchmarkImage]:
    wanted = set(classes)
    per_class: dict[int, list[str]] = {k: [] for k in classes}
    for name, k in labels.items():
        if k in wanted:
            per_class[k].append(name + suffix)
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
            images.append(_positive(k, path.name, str(path), _file_loader(path)))
    return images


def load_local_imagenet_val(root: str | Path, class_indices: Sequence[int], limit: int | None = None) -> list[BenchmarkImage]:
    """Positives from a local ILSVRC2012 val folder in one of the layouts in the module docstring."""
    classes = _check_classes(class_indices)
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"ImageNet-val dir {path} does not exist or is not a directory")
    for candidate in (path, path / "val"):
        if candidate.is_dir():
            folders = _class_folder_map(candidate)
            if folders:
                return _from_class_folders(candidate, folders, classes, limit)
    if (path / KAGGLE_CSV).is_file():
        kaggle_images = path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
        image_dir = kaggle_images if kaggle_images.is_dir() else path
        return _from_label_map(path, image_dir, _read_kaggle_csv(path / KAGGLE_CSV), classes, limit, suffix=".JPEG")
    for name in LABEL_LISTS:
        if (path / name).is_file():
            return _from_label_map(path, path, _read_label_list(path / name), classes, limit)
    raise DataError(
        f"{path}: unrecognised ImageNet-val layout (expected synset or class-index subfolders, "
        f"or flat images with {KAGGLE_CSV}, val.txt or ground_truth.txt)"
    )


# --------------------------------------------------------------------------- Hub


def _resolve_token(token: str | bool | None) -> str:
    import huggingface_hub

    if isinstance(token, str) and token:
        return token
    found = None if token is False else huggingface_hub.get_token()
    if not found:
        raise AccessError(ACCESS_HOWTO)
    return found


def load_hub_imagenet_val(
    class_indices: Sequence[int], token: str | bool | None = None, limit: int | None = None, revision: str | None = IMAGENET_HUB_REVISION
) -> tuple[list[BenchmarkImage], str]:
    """Positives from the gated Hub dataset; returns (images, source description with resolved commit)."""
    import huggingface_hub
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from spurbench.benchmarks.dataset_build import (
        datasets_cache_dir,
        hub_error,
        quiet_datasets,
    )

    classes = _check_classes(class_indices)
    hf_token = _resolve_token(token)
    what = f"Hub dataset {IMAGENET_HUB_REPO}@{revision or 'main'}"
    try:
        snapshot = Path(
            huggingface_hub.snapshot_download(
                IMAGENET_HUB_REPO,
                repo_type="dataset",
                revision=revision,
                token=hf_token,
                allow_patterns=["*validation*.parquet"],  # only the val split (~6.4 GB), never the 140 GB train
            )
        )
    except LocalEntryNotFoundError as exc:
        cause = exc.__cause__
        if isinstance(cause, HfHubHTTPError) and getattr(getattr(cause, "response", None), "status_code", None) in (401, 403):
            raise AccessError(f"Hub refused access to {IMAGENET_HUB_REPO}: {ACCESS_HOWTO}") from None
        raise hub_error(exc, what, "or pass --imagenet-val DIR") from None
    except (GatedRepoError, RepositoryNotFoundError) as exc:  # gated repos answer 404 to tokens without access
        raise AccessError(f"no access to {IMAGENET_HUB_REPO} with this token ({type(exc).__name__}): {ACCESS_HOWTO}") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise AccessError(f"Hub refused access to {IMAGENET_HUB_REPO} (HTTP {status}): {ACCESS_HOWTO}") from None
        raise hub_error(exc, what, "or pass --imagenet-val DIR") from None
    except Exception as exc:
        mapped = hub_error(exc, what, "or pass --imagenet-val DIR")
        if mapped is exc:
            raise
        raise mapped from None

    shards = sorted(p for p in snapshot.rglob("*.parquet") if "validation" in p.name)
    if not shards:
        raise DataError(f"{what} (commit {snapshot.name}) has no validation parquet shards; pass --imagenet-val DIR")

    import datasets

    per_class: dict[int, list[tuple[str, str, object, int]]] = {k: [] for k in classes}
    with quiet_datasets():
        for shard in shards:
            rel = shard.relative_to(snapshot).as_posix()
            try:
                # filters: only the requested classes reach the Arrow cache (not all 50k images)
                ds = datasets.Dataset.from_parquet(
                    str(shard), cache_dir=datasets_cache_dir(), filters=[("label", "in", classes)]
                )
            except Exception as exc:  # damaged shard or unexpected schema
                raise DataError(f"{what}: cannot read {rel}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
            table = ds.data.table
            if not {"image", "label"} <= set(table.column_names):
                raise DataError(f"{what}: {rel} has no image/label columns")
            labels = table.column("label").to_pylist()
            paths = table.column("image").combine_chunks().field("path").to_pylist()
            for row, (k, p) in enumerate(zip(labels, paths)):
                name = Path(p).name if p else f"{shard.stem}-row{row}"
                origin = f"{IMAGENET_HUB_REPO}@{snapshot.name}:{rel}#{name}"
                per_class[k].append((name, origin, table, row))
    images: list[BenchmarkImage] = []
    for k in classes:
        rows = sorted(per_class[k], key=lambda r: r[0])
        if not rows:
            raise DataError(f"{what}: no validation images for class {k} ({imagenet_synsets()[k]})")
        images.extend(_positive(k, name, origin, _bytes_loader(table, row)) for name, origin, table, row in rows[:limit])
    return images, f"hf://datasets/{IMAGENET_HUB_REPO}@{snapshot.name} (validation)"


# --------------------------------------------------------------------------- entry points


def resolve_imagenet_val(class_indices: Sequence[int], options: BenchmarkOptions) -> tuple[list[BenchmarkImage], str]:
    """(positives, where they came from): the local folder if given, else the gated Hub dataset."""
    if options.imagenet_val:
        path = Path(options.imagenet_val).expanduser()
        return load_local_imagenet_val(path, class_indices, options.limit), str(path)
    return load_hub_imagenet_val(class_indices, token=options.token, limit=options.limit)


def load_imagenet_val(class_indices: Sequence[int], options: BenchmarkOptions) -> list[BenchmarkImage]:
    """ImageNet-val images of ``class_indices`` (role "positive", component None); see the module docstring."""
    return resolve_imagenet_val(class_indices, options)[0]


__all__ = [
    "ACCESS_HOWTO",
    "IMAGENET_HUB_REPO",
    "imagenet_class_names",
    "imagenet_synsets",
    "load_hub_imagenet_val",
    "load_imagenet_val",
    "load_local_imagenet_val",
    "resolve_imagenet_val",
]
