"""Salient ImageNet (Singla & Feizi, ICLR 2022) as its authors lay it out on disk, read and checked.

Layout (facts from the authors' repository ``singlasahil14/salient_imagenet``; file:line of the
upstream commit f41ce51)::

    <root>/                                   the unzipped salient_imagenet_dataset.zip
        wordnet_dict.py                       {class_index: wnid} literal; upstream eval()s it
                                              (inspection_utils.py:69); we only cross-check it
        <wnid>/image_names_map.csv            one column per feature index, cells = train stems
        <wnid>/feature_<f>/<stem>.JPEG        soft mask of feature f on that image
    <repo>/mturk_results/discover_spurious_features.csv
                                              the worker annotations: shipped in the authors' *code*
                                              repository, not in the dataset zip (notebooks read
                                              'mturk_results/discover_spurious_features.csv', cell 2;
                                              dataset_paths.py puts the dataset at
                                              ./salient_imagenet_dataset/ inside that repository)
    <ILSVRC2012>/train/<wnid>/<stem>.JPEG     the images: the user's own ImageNet train split
                                              (inspection_utils.py:72, 95)

* ``image_names_map.csv`` is read with ``pd.read_csv`` defaults (inspection_utils.py:75-76): a
  header row of feature indices, columns looked up as ``str(feature_index)`` (line 81), no index
  column. Every cell is an image stem; ``.JPEG`` is appended for both the image and the mask
  (lines 95, 104). Upstream's columns all hold the same number of stems (65 per (class, feature),
  paper sec. 3.4), so no cell is empty; upstream would crash on an empty cell (NaN + '.JPEG'). We
  accept empty cells (what pandas writes for columns of different lengths) and skip them.
* Masks are 8-bit grayscale JPEG, divided by 255 (lines 106-107), combined per image by the
  element-wise max over the selected features (line 109, paper eq. 2) into an array shaped like the
  224x224 crop of the image (line 102), so every mask is 224x224: the Resize(256) + CenterCrop(224)
  grid of the train image (lines 61-67). Quirk: upstream then truncates the union to uint8
  (``np.uint8(mask * 255)``, line 111), makes it an 8-bit PIL image and sends it through
  Resize(256) + CenterCrop(224) *again* (lines 112-113), i.e. zooms it by 256/224 about the centre;
  ``--protocol paper`` does the same (``noise.authors_union``), ``--protocol model`` does not.
* ``discover_spurious_features.csv``: header ``WorkerId, Input.wordnet_id, Input.class_index,
  Input.feature_index, Input.feature_rank, Answer.main, Answer.confidence, Answer.reasons`` (read by
  utils.py:39-58); ``Input.class_index`` is the ImageNet-1k index (0-999, its wnid is the
  ``Input.wordnet_id`` of the row, equal to timm's synset order for all 1000 classes upstream);
  ``Answer.main`` is one of main_object / separate_object / background. Upstream has 1000 classes x
  5 features x 5 workers = 25,000 rows.
* Core / spurious (utils.py:78-92): a feature is spurious when **at least 3** answers are
  separate_object or background, else core. That is an absolute count, not a majority: with a
  number of workers other than 5 we keep upstream's rule (3 of 4 -> spurious, 2 of 3 -> core,
  3 of 7 -> spurious) and record ``votes_spurious`` / ``votes_total`` so a caller can see it.
  (visualize_class_feature_pair.ipynb, cell 2, prints "core if >= 3 main_object votes": the same on
  5 workers, different otherwise; the evaluation notebooks use utils.py.)
* Evaluation (inspection_utils.py:21-57, evaluate_sensitivity_*_features.ipynb): images in [0, 1]
  after Resize(256) + CenterCrop(224) + ToTensor; noise ``0 + sigma * randn(images.shape)``, i.e. per
  pixel *and* channel, times the 1-channel mask broadcast over channels, added, then clamped to
  [0, 1] (line 25, not in the paper's eq. 1); normalisation happens afterwards inside the model
  (lines 133, 140-141); sigma defaults to 0.25 (line 29; noise_stds_list = [0.25] in the
  notebooks). Noise on the core masks of a class gives its *spurious* accuracy, noise on its
  spurious masks its *core* accuracy (evaluate_sensitivity_core_features.ipynb /
  evaluate_sensitivity_spurious_features.ipynb, cell 3).

Decisions where upstream says nothing (each failing check raises one line naming the file):

* annotations for a class that has no folder under ``root`` are **skipped** and listed in
  ``SalientLayout.skipped_classes`` (the CSV annotates all 1000 classes; a dataset folder may hold
  fewer, e.g. the paper's 232-class release); a class asked for in ``classes`` without a folder is
  an error;
* a feature column without annotation, or an annotated feature without a column, is an error: the
  feature's kind would be unknown, or upstream would fail on the missing column;
* an ``Answer.main`` outside the three upstream values (blank included) is an error, not a silent
  "core" vote;
* a folder named like a WordNet id (``n`` + 8 digits) that is not an ImageNet-1k class, or any
  folder holding an ``image_names_map.csv`` under another name, is an error; other folders
  (``__MACOSX``, ``mturk_results``, ...) are ignored.

"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image

from spurbench.benchmarks.folders import inside
from spurbench.benchmarks.imagenet.val import class_folder_map
from spurbench.errors import DataError
from spurbench.label_spaces import check_classes, describe_class, synsets

ANNOTATION_CSV = "discover_spurious_features.csv"
ANNOTATION_DIR = "mturk_results"  # where the authors' repository keeps it
IMAGE_NAMES_CSV = "image_names_map.csv"
WORDNET_DICT = "wordnet_dict.py"
FEATURE_DIR = "feature_{}"
IMAGE_SUFFIX = ".JPEG"  # masks and train images alike (inspection_utils.py:95, 104)
MASK_SIZE = 224
ANSWERS = ("main_object", "separate_object", "background")
SPURIOUS_ANSWERS = frozenset({"separate_object", "background"})
SPURIOUS_VOTES = 3  # utils.py:84, an absolute count
ANNOTATION_COLUMNS = ("Input.class_index", "Input.feature_index", "Answer.main")
_WNID = re.compile(r"^n\d{8}$")
# Modes PIL can turn into 8-bit grayscale without losing range; 16-bit / float images are not masks.
_MASK_MODES = {"L", "1", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr"}

Kind = Literal["core", "spurious"]


def _fail(message: str) -> DataError:
    # Errors are printed as one line by the CLI; pandas / PIL messages may carry newlines.
    return DataError(" ".join(message.split()))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@functools.lru_cache(maxsize=1)
def _wnid_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(synsets("imagenet-1k"))}


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class SalientFeature:
    """One annotated (class, neural feature) pair and the train images D(i, j) it has masks for."""

    class_index: int
    wnid: str
    feature_index: int
    kind: Kind
    votes_spurious: int
    votes_total: int
    stems: tuple[str, ...]
    rank: int | None = None  # Input.feature_rank (1 = most important for the class), if present


@dataclass(frozen=True)
class SalientClass:
    """An ImageNet-1k class of Salient ImageNet with its features in ``image_names_map.csv`` order."""

    class_index: int
    wnid: str
    features: tuple[SalientFeature, ...]

    def feature(self, feature_index: int) -> SalientFeature:
        for feat in self.features:
            if feat.feature_index == feature_index:
                return feat
        raise KeyError(feature_index)

    @property
    def core_features(self) -> tuple[SalientFeature, ...]:
        return tuple(f for f in self.features if f.kind == "core")

    @property
    def spurious_features(self) -> tuple[SalientFeature, ...]:
        return tuple(f for f in self.features if f.kind == "spurious")

    def images(self) -> dict[str, tuple[int, ...]]:
        """Every stem of the class (the union of the features' lists), sorted as upstream's
        ``np.unique`` sorts them, -> the features whose list holds it, in feature order."""
        holders: dict[str, list[int]] = {}
        for feat in self.features:
            for stem in feat.stems:
                holders.setdefault(stem, []).append(feat.feature_index)
        return {stem: tuple(holders[stem]) for stem in sorted(holders)}

    def kinds(self, stem: str) -> dict[int, Kind]:
        """feature index -> kind for the features that have a mask of ``stem``."""
        return {f.feature_index: f.kind for f in self.features if stem in f.stems}

    def _images_with(self, kind: Kind) -> tuple[str, ...]:
        return tuple(sorted({s for f in self.features if f.kind == kind for s in f.stems}))

    def spurious_images(self) -> tuple[str, ...]:
        """D_S(i): stems with at least one spurious mask (core accuracy is measured on these)."""
        return self._images_with("spurious")

    def core_images(self) -> tuple[str, ...]:
        """D_C(i): stems with at least one core mask (spurious accuracy is measured on these)."""
        return self._images_with("core")


@dataclass(frozen=True)
class SalientLayout:
    """A Salient ImageNet folder as read by :func:`read_layout`."""

    root: Path
    annotations: Path
    classes: tuple[SalientClass, ...]
    skipped_classes: tuple[int, ...] = field(default=())  # annotated, but no folder under root

    @property
    def class_indices(self) -> tuple[int, ...]:
        return tuple(c.class_index for c in self.classes)

    def class_at(self, class_index: int) -> SalientClass:
        for cls in self.classes:
            if cls.class_index == class_index:
                return cls
        raise DataError(f"class {class_index} is not in the Salient ImageNet layout at {self.root}")

    def mask_path(self, wnid: str, feature_index: int, stem: str) -> Path:
        return self.root / wnid / FEATURE_DIR.format(feature_index) / f"{stem}{IMAGE_SUFFIX}"

    def masks_of(self, cls: SalientClass, stem: str) -> dict[int, Path]:
        """feature index -> mask file, for the features of ``cls`` whose list holds ``stem``."""
        return {f.feature_index: self.mask_path(cls.wnid, f.feature_index, stem) for f in cls.features if stem in f.stems}

    @property
    def num_images(self) -> int:
        return sum(len(c.images()) for c in self.classes)


@dataclass(frozen=True)
class FeatureAnnotation:
    """The worker votes of one (class, feature) row group of the annotation CSV."""

    class_index: int
    wnid: str
    feature_index: int
    rank: int | None
    votes_spurious: int
    votes_total: int

    @property
    def kind(self) -> Kind:
        return "spurious" if self.votes_spurious >= SPURIOUS_VOTES else "core"


# --------------------------------------------------------------------------- CSVs


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    # dtype=str and no NA parsing: stems stay text, empty cells stay "" (we decide what they mean).
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise _fail(f"{what} {path} does not exist") from None
    except pd.errors.EmptyDataError:
        raise _fail(f"{what} {path} is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise _fail(f"cannot read {what} {path} ({_reason(exc)})") from None


def _as_int(text: str) -> int | None:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:  # "12.0", as a float column round-trips through some tools
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def find_annotations(root: Path) -> Path:
    """The annotation CSV for the dataset folder ``root``: ``<root>/discover_spurious_features.csv``,
    ``<root>/mturk_results/...``, or the authors' repository layout ``<root>/../mturk_results/...``."""
    root = Path(root)
    candidates = (root / ANNOTATION_CSV, root / ANNOTATION_DIR / ANNOTATION_CSV, root.parent / ANNOTATION_DIR / ANNOTATION_CSV)
    for path in candidates:
        if path.is_file():
            return path
    raise _fail(
        f"Salient ImageNet folder {root} has no {ANNOTATION_CSV} (looked for {candidates[0]}, {candidates[1]} and "
        f"{candidates[2]}); it ships in the authors' repository singlasahil14/salient_imagenet under {ANNOTATION_DIR}/, pass its path"
    )


def read_annotations(path: Path) -> dict[tuple[int, int], FeatureAnnotation]:
    """(class index, feature index) -> votes, from ``discover_spurious_features.csv``."""
    path = Path(path)
    frame = _read_csv(path, "annotation CSV")
    missing = [c for c in ANNOTATION_COLUMNS if c not in frame.columns]
    if missing:
        raise _fail(
            f"{path}: not a Salient ImageNet annotation CSV (no column {', '.join(missing)}; expected {', '.join(ANNOTATION_COLUMNS)}, ...)"
        )
    if frame.empty:
        raise _fail(f"annotation CSV {path} has no rows")
    order = synsets("imagenet-1k")
    votes: dict[tuple[int, int], list] = {}
    has_wnid, has_rank = "Input.wordnet_id" in frame.columns, "Input.feature_rank" in frame.columns
    for offset, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(frame.columns, row))
        line = offset + 2  # 1-based, after the header: what an editor shows
        k, f = _as_int(values["Input.class_index"]), _as_int(values["Input.feature_index"])
        if k is None or f is None:
            raise _fail(
                f"{path}:{line}: Input.class_index / Input.feature_index must be integers, got {values['Input.class_index']!r}, {values['Input.feature_index']!r}"
            )
        if not 0 <= k < len(order):
            raise _fail(f"{path}:{line}: Input.class_index {k} is not an ImageNet-1k class index (0-999)")
        wnid = values["Input.wordnet_id"].strip() if has_wnid else order[k]
        if wnid != order[k]:
            # The class index is the ImageNet-1k position; a different wnid means another index order.
            raise _fail(f"{path}:{line}: class {k} is {wnid} here but {order[k]} in ImageNet-1k order")
        answer = values["Answer.main"].strip()
        if answer not in ANSWERS:
            raise _fail(f"{path}:{line}: Answer.main {answer!r} is not one of {', '.join(ANSWERS)}")
        rank = _as_int(values["Input.feature_rank"]) if has_rank else None
        entry = votes.setdefault((k, f), [wnid, rank, 0, 0])
        entry[2] += answer in SPURIOUS_ANSWERS
        entry[3] += 1
    return {key: FeatureAnnotation(key[0], w, key[1], r, s, t) for key, (w, r, s, t) in votes.items()}


def read_image_names(path: Path) -> dict[int, tuple[str, ...]]:
    """feature index -> stems, from a class's ``image_names_map.csv`` (column order kept)."""
    path = Path(path)
    frame = _read_csv(path, IMAGE_NAMES_CSV)
    columns: dict[int, tuple[str, ...]] = {}
    for name in frame.columns:
        label = str(name).strip()
        index = int(label) if label.isdigit() else None
        if index is None:
            # pandas names a written index column "Unnamed: 0" and duplicates "59.1": neither is a feature.
            raise _fail(f"{path}: column {str(name)!r} is not a feature index (the header row lists feature indices, no index column)")
        cells = [str(c).strip() for c in frame[name].tolist()]
        stems = tuple(dict.fromkeys(c for c in cells if c))  # empty cells pad shorter columns
        bad = next((s for s in stems if "/" in s or "\\" in s or s in {".", ".."}), None)
        if bad is not None:
            raise _fail(f"{path}: feature {index} lists {bad!r}, not an image stem")
        if not stems:
            raise _fail(f"{path}: feature {index} lists no images")
        columns[index] = stems
    if not columns:
        raise _fail(f"{path}: no feature columns")
    return columns


# --------------------------------------------------------------------------- the folder


def class_folders(root: Path) -> dict[int, Path]:
    """ImageNet-1k class index -> its folder under ``root``; a DataError for a class-like folder
    that is not named by an ImageNet-1k wnid."""
    index = _wnid_index()
    folders: dict[int, Path] = {}
    for entry in sorted(Path(root).iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        inside(root, entry, "a class folder")
        if entry.name in index:
            folders[index[entry.name]] = entry
        elif _WNID.match(entry.name):
            raise _fail(f"{entry}: {entry.name} is not an ImageNet-1k WordNet id (Salient ImageNet has one folder per ImageNet-1k class)")
        elif (entry / IMAGE_NAMES_CSV).exists():
            raise _fail(f"{entry}: a class folder must be named by its ImageNet-1k WordNet id (e.g. n01440764), not {entry.name!r}")
    return folders


def _check_wordnet_dict(root: Path) -> None:
    # Upstream eval()s this file to map class index -> wnid; we never execute it. When it parses as a
    # literal, it must agree with the ImageNet-1k order the class indices here are based on.
    path = root / WORDNET_DICT
    if not path.is_file():
        return
    try:
        value = ast.literal_eval(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, SyntaxError, MemoryError, RecursionError):
        return  # not a literal we can check; the folder names carry the wnids anyway
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    order = synsets("imagenet-1k")
    for k, wnid in items:
        if isinstance(k, int) and 0 <= k < len(order) and isinstance(wnid, str) and wnid != order[k]:
            raise _fail(f"{path}: class {k} is {wnid} there but {order[k]} in ImageNet-1k order")


def read_layout(root: Path, annotations: Path | None = None, classes: Sequence[int] | None = None) -> SalientLayout:
    """Read and check a Salient ImageNet folder (see the module docstring for the layout).

    ``annotations``: the annotation CSV, else found by :func:`find_annotations`. ``classes``: only
    these ImageNet-1k class indices (each must have a folder); default every class folder. Masks and
    train images are not opened here: see :func:`check_masks` and :func:`check_train_images`.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _fail(f"Salient ImageNet folder {root} does not exist")
    if annotations is None:
        csv_path = find_annotations(root)
    else:
        csv_path = Path(annotations).expanduser()
        if not csv_path.is_file():
            raise _fail(f"annotation CSV {csv_path} does not exist")
    votes = read_annotations(csv_path)
    folders = class_folders(root)
    if not folders:
        raise _fail(
            f"{root}: no Salient ImageNet class folders (expected one folder per ImageNet-1k class named by WordNet id, e.g. n01440764/, holding {IMAGE_NAMES_CSV})"
        )
    _check_wordnet_dict(root)
    if classes is None:
        wanted = sorted(folders)
        annotated = {k for k, _ in votes}
        skipped = tuple(sorted(annotated - set(folders)))
    else:
        wanted = check_classes(classes)
        absent = [k for k in wanted if k not in folders]
        if absent:
            raise _fail(
                f"{root}: no folder for class {absent[0]} ({describe_class(absent[0])}){f' and {len(absent) - 1} more' if len(absent) > 1 else ''}"
            )
        skipped = ()
    return SalientLayout(root, csv_path, tuple(_read_class(k, folders[k], votes, csv_path) for k in wanted), skipped)


def _read_class(k: int, folder: Path, votes: Mapping[tuple[int, int], FeatureAnnotation], csv_path: Path) -> SalientClass:
    wnid = folder.name
    names_csv = folder / IMAGE_NAMES_CSV
    if not names_csv.is_file():
        raise _fail(f"Salient ImageNet class folder {folder} has no {IMAGE_NAMES_CSV}")
    inside(folder.parent, names_csv, "a class's image list")
    columns = read_image_names(names_csv)
    for f in columns:
        if (k, f) not in votes:
            raise _fail(
                f"{names_csv}: feature {f} of class {k} ({wnid}) has no annotation in {csv_path}, so it is neither core nor spurious"
            )
    extra = sorted(f for kk, f in votes if kk == k and f not in columns)
    if extra:
        raise _fail(f"{csv_path}: annotates feature {extra[0]} of class {k} ({wnid}) but {names_csv} has no column {extra[0]}")
    features = []
    for f, stems in columns.items():
        if not (folder / FEATURE_DIR.format(f)).is_dir():
            raise _fail(f"{folder}: no {FEATURE_DIR.format(f)}/ folder for the masks of feature {f} listed in {IMAGE_NAMES_CSV}")
        inside(folder.parent, folder / FEATURE_DIR.format(f), "a mask folder")
        a = votes[(k, f)]
        features.append(SalientFeature(k, wnid, f, a.kind, a.votes_spurious, a.votes_total, stems, a.rank))
    return SalientClass(k, wnid, tuple(features))


# --------------------------------------------------------------------------- masks


def load_mask(path: Path) -> np.ndarray:
    """A soft mask as float32 [224, 224] in [0, 1] (8-bit grayscale / 255, as upstream)."""
    return mask_bytes(path).astype(np.float32) / np.float32(255.0)


def mask_bytes(path: Path) -> np.ndarray:
    """A soft mask as the 8-bit grayscale values [224, 224] on disk (uint8): what upstream reads with
    ``np.asarray(Image.open(path))`` (line 106) for the grayscale masks it ships; other modes are
    converted to grayscale first."""
    path = Path(path)
    if not path.is_file():
        raise _fail(f"Salient mask {path} does not exist")
    try:
        with Image.open(path) as image:
            if image.size != (MASK_SIZE, MASK_SIZE):
                w, h = image.size
                raise _fail(
                    f"Salient mask {path} is {w}x{h} px, expected {MASK_SIZE}x{MASK_SIZE} (the Resize(256)+CenterCrop(224) grid of its train image)"
                )
            if image.mode not in _MASK_MODES:
                raise _fail(f"Salient mask {path} has mode {image.mode}, expected 8-bit grayscale")
            image.load()  # decode now: a truncated file fails here, inside the try
            gray = image if image.mode == "L" else image.convert("L")
            return np.array(gray, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on a read-only array
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _fail(f"cannot decode Salient mask {path} ({_reason(exc)})") from None


def check_masks(layout: SalientLayout, *, decode: bool = False) -> None:
    """Every listed mask exists (``decode``: and loads as a 224x224 mask); one line naming the first
    missing mask and how many are missing."""
    missing: list[Path] = []
    total = 0
    for cls in layout.classes:
        for feat in cls.features:
            for stem in feat.stems:
                total += 1
                path = layout.mask_path(cls.wnid, feat.feature_index, stem)
                if not path.is_file():
                    missing.append(path)
                    continue
                inside(layout.root, path, "a mask")
                if decode:
                    load_mask(path)
    if missing:
        raise _fail(f"{len(missing)} of {total} Salient ImageNet masks are missing, first {missing[0]}")


# --------------------------------------------------------------------------- train images


def _class_dir(root: Path, wnid: str) -> Path | None:
    # The project's train-folder convention (benchmarks/imagenet/train.py): class folders named by
    # synset or by 0-based index, directly under the root or under its train/ subfolder (upstream's
    # IMAGENET_PATH/train/<wnid>, inspection_utils.py:72).
    k = _wnid_index().get(wnid)
    for base in (root, root / "train"):
        for name in (wnid, str(k) if k is not None else None):
            if name is not None and (base / name).is_dir():
                return base / name
    return None


def train_image_path(train_root: Path, wnid: str, stem: str) -> Path:
    """The ILSVRC2012 train image ``<train>/<wnid>/<stem>.JPEG`` (also under ``<train_root>/train/``);
    the direct path when no class folder exists, so a check names where it was expected."""
    root = Path(train_root).expanduser()
    folder = _class_dir(root, wnid)
    return (folder if folder is not None else root / wnid) / f"{stem}{IMAGE_SUFFIX}"


def _train_folder(root: Path) -> Path:
    folders = class_folder_map(root)
    if folders is None and (root / "train").is_dir() and class_folder_map(root / "train") is not None:
        return root / "train"
    if folders is None:
        raise _fail(
            f"{root}: not an ImageNet train folder (expected one subfolder per class named by WordNet id, e.g. n01440764/, or a train/ folder holding them)"
        )
    return root


def check_train_images(layout: SalientLayout, train_root: Path) -> None:
    """Every stem of the layout has its train image; one line naming the first missing one and how
    many are missing."""
    root = Path(train_root).expanduser()
    if not root.is_dir():
        raise _fail(f"ImageNet train folder {root} does not exist")
    _train_folder(root)
    missing: list[tuple[SalientClass, str, Path]] = []
    total = 0
    for cls in layout.classes:
        folder = _class_dir(root, cls.wnid)
        for stem in cls.images():
            total += 1
            path = (folder if folder is not None else root / cls.wnid) / f"{stem}{IMAGE_SUFFIX}"
            if not path.is_file():
                missing.append((cls, stem, path))
            else:
                inside(root, path, "a train image")
    if missing:
        cls, stem, path = missing[0]
        raise _fail(
            f"{len(missing)} of {total} Salient ImageNet train images are missing from {root}, first {path} "
            f"(class {cls.class_index}, {describe_class(cls.class_index)}); Salient ImageNet uses the ILSVRC2012 train split"
        )
