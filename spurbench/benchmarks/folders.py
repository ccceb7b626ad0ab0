"""The containment rule for the folders a benchmark reads on a user's behalf (pools, ``--data-dir``
layouts, benchmark folders, dataset build inputs): every file and subfolder read must have its real
path inside the real path of the folder the user gave (``spurbench.files.check_inside``), links at
any level included, so a shared or downloaded folder cannot make spurbench read files from elsewhere.

A Hub cache snapshot (``.../snapshots/<commit>/``) is the one folder whose files link out of it, into
its repo's ``blobs/``: for it the rule's folder is the repo's cache folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from spurbench.files import check_inside

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def reading_root(folder: str | Path) -> Path:
    """The folder whose real path everything read under ``folder`` must stay inside."""
    folder = Path(folder)
    repo = folder.parent.parent
    if folder.parent.name == "snapshots" and (repo / "blobs").is_dir():
        return repo
    return folder


def inside(folder: str | Path, path: str | Path, what: str) -> Path:
    """``path`` when its real path lies inside ``folder``'s (see ``reading_root``), else the one-line
    DataError of ``check_inside``; returns ``path`` as given, so ids and messages keep the user's names."""
    check_inside(reading_root(folder), path, what)
    return Path(path)


def images_in(folder: Path, given: Path) -> list[Path]:
    """The image files of ``folder`` (by extension, hidden ones skipped), sorted, none leading out of
    ``given`` (the folder the user named)."""
    return sorted(
        inside(given, f, "an image file")
        for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
    )


def file_loader(path: Path) -> Callable[[], Image.Image]:
    """A lazy loader of one image file (``BenchmarkImage.loader``)."""
    return lambda: Image.open(path)


__all__ = ["IMAGE_EXTENSIONS", "file_loader", "images_in", "inside", "reading_root"]
