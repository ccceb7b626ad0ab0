"""The data path of a forward pass: each image decoded and preprocessed once in a loader worker, as
the model's uint8 input pixels (normalised later, on the device), or for a views benchmark as its
normalised views; errors travel back as one line.

With a pixel cache (``spurbench.pixelcache``), the pixels of an image set under one preprocessing
are decoded by the first model that needs them and read back by every later one (a sweep decodes its
JPEGs once per preprocessing, not once per model). Views benchmarks do not use it: they render their
views from the decoded image inside the workers, so what they ship is not the plain input.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import PIL
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate

from spurbench.benchmarks.base import ROLES, Benchmark, BenchmarkImage
from spurbench.benchmarks.data import Role
from spurbench.errors import DataError, SpurbenchError
from spurbench.files import stable_hash
from spurbench.pixelcache import FORMAT as PIXEL_FORMAT
from spurbench.pixelcache import PixelCache
from spurbench.preprocessing import build_transform, eval_data_config, normalizer, pixel_geometry, pixel_transform
from spurbench.protocols import EvalProtocol
from spurbench.runtime import available_cores, note, worker_context


@dataclass(frozen=True)
class ViewRendering:
    """How a views benchmark's loader turns an image's un-normalised input into its normalised views."""

    render: Callable[[BenchmarkImage, torch.Tensor, EvalProtocol], list[torch.Tensor]]  # ``Benchmark.render_views``
    normalize: Callable[[torch.Tensor], torch.Tensor]
    protocol: EvalProtocol


class ImageDataset(Dataset):
    """Each image decoded once: its input tensor, or for a views benchmark its views stacked [V, 3, H, W]
    (rendered from the un-normalised tensor, then normalised)."""

    def __init__(
        self,
        images: Sequence[BenchmarkImage],
        transforms: dict[Role, Callable[[Image.Image], torch.Tensor]],
        views: ViewRendering | None = None,
    ):
        self.images = images
        self.transforms = transforms
        self.views = views

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor | str:
        image = self.images[index]
        try:
            x = self.transforms[image.role](image.open())
            if self.views is None:
                return x
            views = self.views.render(image, x, self.views.protocol)
            if len(views) != len(image.views):
                raise SpurbenchError(f"image {image.origin}: {len(views)} views rendered for {len(image.views)} names {list(image.views)}")
            return torch.stack([self.views.normalize(v) for v in views])
        except SpurbenchError as exc:
            return str(exc)  # reported by the main process in one line, not through the worker's traceback
        except Exception as exc:
            return f"cannot preprocess image {image.origin}: {type(exc).__name__}: {exc}"


def collate(items: list[torch.Tensor | str]) -> torch.Tensor | str:
    """The batch, or the first image error in it (see ``ImageDataset``). torch's default_collate
    stacks straight into shared memory inside a worker, saving a copy per batch over torch.stack."""
    tensors: list[torch.Tensor] = []
    for item in items:
        if isinstance(item, str):
            return item
        tensors.append(item)
    return torch.cat(tensors) if tensors and tensors[0].dim() == 4 else default_collate(tensors)  # views: [V, 3, H, W] per image


_CAPPED: set[tuple[int, int]] = set()  # (asked, cores) already said, so a run over many image sets says it once


def capped_workers(workers: int) -> int:
    """At most one loader worker per core this process may use: more only add processes (and torch's
    DataLoader warns about them in several lines), so the count is capped, in one note line."""
    cores = available_cores()
    if workers <= cores:
        return workers
    if (workers, cores) not in _CAPPED:
        _CAPPED.add((workers, cores))
        note(f"--num-workers {workers}: this process may use {cores} cores; using {cores} loader workers")
    return cores


def decoded_batches(dataset: ImageDataset, batch_size: int, *, workers: int, pin_memory: bool = False) -> Iterator[torch.Tensor]:
    """The dataset's batches in order, decoded by ``workers`` forked loader workers (0: in this process;
    at most one per available core, see ``capped_workers``); the first image error is raised as a
    one-line DataError."""
    workers = capped_workers(workers)
    context = worker_context()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate,
        num_workers=workers if context else 0,
        multiprocessing_context=context if workers and context else None,
        pin_memory=pin_memory,  # page-locked batches: the copy to a GPU can run asynchronously
        worker_init_fn=loader_worker_started,
    )
    for batch in started(loader):
        if isinstance(batch, str):
            raise DataError(batch)
        yield batch


def loader_worker_started(worker_id: int) -> None:
    """What a forked loader worker does before its first batch: it leaves the scheduler's signals to
    the main process, and keeps its hang-ups from the main process quiet."""
    leave_scheduler_signals_to_main()
    quiet_hangups_from_main(worker_id)


def leave_scheduler_signals_to_main() -> None:
    """A scheduler signals every process of a job: SLURM sends SIGTERM on preemption or requeue and
    USR2 before the time limit (submitit asks for it). A worker killed by SIGTERM failed the job as
    "DataLoader worker killed", and a worker that inherited submitit's USR2 handler checkpointed a second
    time. The main process decides; a worker ends with it (the DataLoader's watchdog), as under torchrun."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "SIGUSR2"):  # (not on Windows)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def quiet_hangups_from_main(worker_id: int) -> None:
    """In a loader worker: a batch's shared-memory handle is handed to the main process by
    multiprocessing's resource-sharer thread, which reports its errors through ``sys.excepthook``; when
    Ctrl-C stops the main process mid-handshake, that thread's broken pipe would print a traceback under
    the main process's own one-line report. Only that thread's hang-ups are silenced."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        from_sharer = any(frame.filename.endswith("resource_sharer.py") for frame in traceback.extract_tb(trace))
        if from_sharer and issubclass(kind, (ConnectionError, EOFError)):
            return
        previous(kind, error, trace)

    sys.excepthook = hook


def started(loader: DataLoader) -> Iterator[Any]:
    """``iter(loader)``, which forks the workers, with Ctrl-C held until the fork is over: a SIGINT whose
    KeyboardInterrupt is raised inside CPython's at-fork handlers is reported as "Exception ignored" and
    lost, and the command would carry on as if nothing was pressed. A press meanwhile is raised after."""
    held: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    holding = threading.current_thread() is threading.main_thread() and previous is signal.default_int_handler
    if holding:
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        batches = iter(loader)
    finally:
        if holding:
            signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt
    return batches


def roles_of(benchmark: Benchmark) -> list[Role]:
    """The roles its images have, in ``ROLES`` order: a benchmark of class images only needs no geometry
    for spurious-only images (its protocol may state none)."""
    present = {im.role for im in benchmark.images}
    return [role for role in ROLES if role in present]


def pixel_cache_key(benchmark: Benchmark, data_config: dict[str, Any], protocol: str) -> dict[str, Any]:
    """What the pixel cache entry of these images under this preprocessing depends on: the image set
    and the per-role geometry (not mean/std: see ``preprocessing.pixel_geometry``), plus the libraries
    that decode and resize (a Pillow upgrade may change resampled pixels)."""
    return {
        "format": PIXEL_FORMAT,
        "benchmark": benchmark.name,
        "benchmark_revision": benchmark.revision,
        "benchmark_checksum": benchmark.checksum,
        "positives_source": benchmark.positives_source,
        "image_ids": stable_hash([im.image_id for im in benchmark.images], length=32),
        "geometry": {role: pixel_geometry(data_config, benchmark.protocols[protocol], role) for role in roles_of(benchmark)},
        "pillow": PIL.__version__,
        "torchvision": torchvision.__version__,
    }


def input_batches(
    benchmark: Benchmark,
    positions: list[int],
    data_config: dict[str, Any],
    protocol: str,
    batch_size: int,
    *,
    workers: int,
    pin_memory: bool = False,
    pixel_cache: PixelCache | None = None,
) -> Iterator[torch.Tensor]:
    """CPU batches of the images at ``positions`` (ascending), ``batch_size`` images each, in order:
    uint8 pixels [B, 3, H, W] (finish with ``preprocessing.normalize_on_device``), or for a views
    benchmark its float, normalised views [rows, 3, H, W]."""
    images, views, spec = benchmark.images, benchmark.render_views, benchmark.protocols[protocol]
    if views is not None:
        if pixel_cache is not None:
            note(f"pixel cache: benchmark {benchmark.name} renders views in the loader; its images are decoded without the cache")
        transforms = {role: build_transform(data_config, spec, role, normalize=False) for role in roles_of(benchmark)}
        rendering = ViewRendering(views, normalizer(eval_data_config(data_config, spec)), spec)
        dataset = ImageDataset([images[j] for j in positions], transforms, rendering)
        yield from decoded_batches(dataset, batch_size, workers=workers, pin_memory=pin_memory)
        return
    transforms = {role: pixel_transform(data_config, spec, role) for role in roles_of(benchmark)}

    def decode(subset: list[int], pin: bool = False) -> Iterator[torch.Tensor]:
        return decoded_batches(ImageDataset([images[j] for j in subset], transforms), batch_size, workers=workers, pin_memory=pin)

    size = [int(v) for v in eval_data_config(data_config, spec)["input_size"]]
    entry = (
        None
        if pixel_cache is None
        else pixel_cache.entry(
            benchmark.name, pixel_cache_key(benchmark, data_config, protocol), [im.image_id for im in images], (size[0], size[1], size[2])
        )
    )
    if entry is None:
        yield from decode(positions, pin_memory)
        return
    for batch in entry.batches(positions, batch_size, decode):
        yield batch.pin_memory() if pin_memory else batch


__all__ = ["ImageDataset", "ViewRendering", "collate", "decoded_batches", "input_batches", "pixel_cache_key"]
