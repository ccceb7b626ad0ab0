"""The pictures of a discovery: top images, feature visualisations and GradCAM overlays, as PNGs under
the discovery folder (paths relative to it, as the index records them)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image

from spurbench.adapters import ModelAdapter
from spurbench.basis import Basis
from spurbench.benchmarks import BenchmarkImage
from spurbench.discovery.gradcam import component_cams
from spurbench.discovery.npfv import visualise
from spurbench.errors import SpurbenchError
from spurbench.files import atomic_path, slug

IMAGES_DIR = "images"
THUMBNAIL = 224  # longest side of a saved top image, px


def _write_png(pixels: np.ndarray, folder: Path, rel: str) -> str:
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / rel) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return rel


def _as_pixels(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> uint8 [H, W, 3]."""
    return (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def _overlay(image: torch.Tensor, cam: np.ndarray) -> np.ndarray:
    """The image with its CAM as a jet heat map on top, half and half (how grad-cam shows them)."""
    heat = torch.from_numpy(matplotlib.colormaps["jet"](cam)[..., :3]).permute(2, 0, 1)
    return _as_pixels(0.5 * image + 0.5 * heat)


def supports_cam(model: ModelAdapter) -> bool:
    try:
        model.cam_target_layers()
        return True
    except SpurbenchError:
        return False


def save_npfvs(
    model: ModelAdapter, class_index: int, basis: Basis, count: int, steps: int, folder: Path, device: str, cams: bool
) -> list[dict]:
    """The NPFV of each of the first ``count`` components (one APGD batch) and its GradCAM overlay:
    the fields of an ``NPFVRecord`` per component."""
    made = visualise(model, class_index, basis, list(range(count)), steps=steps, device=device)
    records = []
    for l in range(count):
        stem = f"{IMAGES_DIR}/npfv-class{class_index}-component{l}"
        cam_file = None
        if cams:
            cam = component_cams(model, class_index, basis, l, made.images[l : l + 1])[0]
            cam_file = _write_png(_overlay(made.images[l], cam), folder, f"{stem}-cam.png")
        records.append(
            dict(
                file=_write_png(_as_pixels(made.images[l]), folder, f"{stem}.png"),
                alpha=float(made.alphas[l]),
                eps=made.eps,
                steps=steps,
                cam_file=cam_file,
            )
        )
    return records


def save_top_images(
    model: ModelAdapter,
    by_id: dict[str, BenchmarkImage],
    class_index: int,
    basis: Basis,
    component: int,
    ids: list[str],
    folder: Path,
    cams: bool,
) -> list[tuple[str, str | None]]:
    """Each top image (decoded once) as a thumbnail and, with ``cams``, its GradCAM overlay of
    alpha_component at the model's input size: (file, CAM file) per image."""
    height, width = model.data_config["input_size"][1:]
    opened = [by_id[i].open() for i in ids]
    files = []
    for i, image in zip(ids, opened):
        rel = f"{IMAGES_DIR}/{slug(i)}.png"
        if not (folder / rel).exists():  # an image among the top of several components is written once
            thumbnail = image.copy()
            thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
            _write_png(np.asarray(thumbnail), folder, rel)
        files.append(rel)
    if not cams:
        return [(f, None) for f in files]
    images = torch.stack(
        [torch.from_numpy(np.asarray(image.resize((width, height)), dtype=np.float32) / 255).permute(2, 0, 1) for image in opened]
    )
    maps = component_cams(model, class_index, basis, component, images)
    overlays = [
        _write_png(_overlay(images[j], maps[j]), folder, f"{IMAGES_DIR}/cam-class{class_index}-component{component}-{slug(i)}.png")
        for j, i in enumerate(ids)
    ]
    return list(zip(files, overlays))


__all__ = ["IMAGES_DIR", "THUMBNAIL", "save_npfvs", "save_top_images", "supports_cam"]
