"""The data path of a forward pass: each image decoded and preprocessed once in a loader worker, as
the model's input, or for a views benchmark as its views; errors travel back as one line."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset, default_collate

from spurbench.benchmarks.base import BenchmarkImage
from spurbench.errors import SpurbenchError


class ImageDataset(Dataset):
    """Each image decoded once: its input tensor, or for a views benchmark its views stacked [V, 3, H, W]
    (rendered from the un-normalised tensor, then normalised)."""

    def __init__(self, images: Sequence[BenchmarkImage], transforms: dict[str, Callable], render_views: Callable | None = None, normalize: Callable | None = None):
        self.images = images
        self.transforms = transforms
        self.render_views, self.normalize = render_views, normalize

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor | str:
        image = self.images[index]
        try:
            x = self.transforms[image.role](image.open())
            if self.render_views is None:
                return x
            views = self.render_views(image, x)
            if len(views) != len(image.views):
                raise SpurbenchError(f"image {image.origin}: {len(views)} views rendered for {len(image.views)} names {list(image.views)}")
            return torch.stack([self.normalize(v) for v in views])
        except SpurbenchError as exc:
            return str(exc)  # reported by the main process in one line, not through the worker's traceback
        except Exception as exc:
            return f"cannot preprocess image {image.origin}: {type(exc).__name__}: {exc}"


def collate(items: list[torch.Tensor | str]) -> torch.Tensor | str:
    """The batch, or the first image error in it (see ``ImageDataset``). torch's default_collate
    stacks straight into shared memory inside a worker, saving a copy per batch over torch.stack."""
    error = next((item for item in items if isinstance(item, str)), None)
    if error is not None:
        return error
    return torch.cat(items) if items and items[0].dim() == 4 else default_collate(items)  # views: [V, 3, H, W] per image


__all__ = ["ImageDataset", "collate"]
