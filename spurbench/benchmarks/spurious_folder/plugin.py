"""The ``spurious-folder`` plugin: a mined folder's negatives (its card, ``card``, says what they are),
and the positives of their classes from the registered benchmark of the card's label space that
provides them (``positives`` hook).

Each mined benchmark is named by its card, ``spurious-folder-<slug of its name>``: result files and
boards are keyed by ``Benchmark.name``, so two mined benchmarks never overwrite or merge each other's
results; a re-export of the same name with other images is another revision (the checksum's first 12
hex digits) of that benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field

from spurbench.benchmarks import BENCHMARKS, benchmarks_with, get_benchmark
from spurbench.benchmarks.base import Benchmark, BenchmarkOptions, BenchmarkPlugin, MinedImage, Reference
from spurbench.benchmarks.capabilities import GivesPositives, PublishesDataset, WritesMined, require, stated
from spurbench.benchmarks.spurious_folder import publish
from spurbench.benchmarks.spurious_folder.card import KIND, Card, read_card
from spurbench.benchmarks.spurious_folder.write import write_mined
from spurbench.errors import DataError, SpurbenchError
from spurbench.protocols import MODEL_TRANSFORM, EvalProtocol, fixed_paper, protocol_table

NAME = KIND
FORWARDED = ("imagenet_val", "seed", "limit")  # options passed on to the positives' plugin, where it takes them


class SpuriousFolderOptions(BenchmarkOptions):
    data_dir: str  # the mined folder `spurbench mine export` wrote (or its built / downloaded Hub form)
    positives: str | None = None  # the benchmark that gives the positives (default: the one of the card's label space)
    imagenet_val: str | None = None  # passed on: a local ILSVRC2012 val folder, for ImageNet positives
    seed: int | None = Field(default=None, ge=0)  # passed on: the generator seed, for generated positives


def _options(plugin: BenchmarkPlugin, options: BenchmarkOptions) -> SpuriousFolderOptions:
    opts = plugin.parse_options(options)
    assert isinstance(opts, SpuriousFolderOptions)
    return opts


def positives_plugin(card: Card, named: str | None) -> BenchmarkPlugin:
    """The plugin that gives the positives: ``named``, else the one registered plugin with positives in
    the card's label space (one-line error listing the candidates otherwise)."""
    if named is not None:
        plugin = get_benchmark(named)
        if not isinstance(plugin, GivesPositives):
            raise SpurbenchError(
                f"benchmark {named!r} provides no positives (those that do: {', '.join(benchmarks_with(GivesPositives)) or 'none'})"
            )
        if plugin.label_space != card.label_space:
            raise SpurbenchError(
                f"benchmark {named!r} has label space {plugin.label_space!r}, the mined benchmark {card.name!r} has {card.label_space!r}"
            )
        return plugin
    candidates = benchmarks_with(GivesPositives)
    matching = [n for n in candidates if BENCHMARKS.get(n).label_space == card.label_space]
    if len(matching) != 1:
        listed = ", ".join(f"{n} ({BENCHMARKS.get(n).label_space})" for n in candidates) or "none"
        raise SpurbenchError(
            f"{len(matching) or 'no'} benchmark(s) give positives in label space {card.label_space!r}: name one with -O positives=NAME (those with positives: {listed})"
        )
    return get_benchmark(matching[0])


def positives_options(plugin: BenchmarkPlugin, opts: SpuriousFolderOptions) -> BenchmarkOptions:
    """The options passed on to the positives' plugin; one it does not take is an error, never dropped."""
    given = {k: getattr(opts, k) for k in FORWARDED if getattr(opts, k) is not None}
    unused = [k for k in given if k not in plugin.options_model.model_fields]
    if unused:
        raise SpurbenchError(f"benchmark {NAME!r}: option {unused[0]!r} does not apply to positives from {plugin.name!r}")
    return plugin.parse_options({**given, "token": opts.token})


FOLDER_STEPS = "Spurious ImageNet's authors' steps, on a mined folder's images and its label space's positives"


class SpuriousFolder(WritesMined, PublishesDataset, BenchmarkPlugin):
    name = NAME
    description = "a benchmark mined by `spurbench mine` and verified by people: --data-dir the folder `spurbench mine export` wrote"
    options_model = SpuriousFolderOptions
    named_by_its_data = True  # its folders say kind "spurious-folder"; the dataset commands pick it for them only
    # Those of a folder whose positives are ImageNet photos; ``protocols_for`` gives each folder's own.
    protocols = protocol_table(fixed_paper(224 / 256, by=FOLDER_STEPS), MODEL_TRANSFORM)

    def protocols_for(self, options: BenchmarkOptions) -> dict[str, EvalProtocol]:
        opts = _options(self, options)
        plugin = positives_plugin(read_card(Path(opts.data_dir).expanduser()), opts.positives)
        crop_pct = stated(plugin, GivesPositives, "positives_crop_pct")
        if crop_pct is None:  # (checked when a plugin giving positives is defined; never defaulted)
            raise SpurbenchError(f"benchmark {plugin.name!r} gives positives but states no positives_crop_pct")
        return protocol_table(fixed_paper(crop_pct, by=FOLDER_STEPS), MODEL_TRANSFORM)

    def benchmark_name(self, options: BenchmarkOptions) -> str:
        return read_card(Path(_options(self, options).data_dir).expanduser()).benchmark_name()

    def load(self, options: BenchmarkOptions) -> Benchmark:
        """The folder's negatives (checksum verified) + the positives of their classes from the benchmark of its label space."""
        opts = _options(self, options)
        card, negatives = publish.read_mined(opts.data_dir, opts.limit)
        plugin = positives_plugin(card, opts.positives)
        class_indices = sorted(negatives.components)
        positives, classes, source = require(plugin, GivesPositives).positives(class_indices, positives_options(plugin, opts))
        if [c.index for c in classes] != class_indices:
            raise DataError(f"benchmark {plugin.name!r} gave positives of classes {[c.index for c in classes]}, asked for {class_indices}")
        facts: dict[str, Any] = {
            **card.provenance,
            "mined": card.name,
            "layout": card.layout,
            "written_at": card.written_at,
            "positives": plugin.name,
            "limit": opts.limit,
            "images_per_class": {k: entry.images for k, entry in card.classes.items()},
        }
        return Benchmark(
            name=card.benchmark_name(),
            label_space=card.label_space,
            classes=[replace(c, components=negatives.components[c.index]) for c in classes],
            images=positives + negatives.images,
            repo=str(Path(opts.data_dir).expanduser()),
            revision=card.checksum.split(":", 1)[1][:12],
            checksum=negatives.checksum,
            positives_source=source,
            protocols=self.protocols_for(opts),
            facts=facts,
            plugin=NAME,
            class_component_names={
                int(k): {int(c): n for c, n in e.component_names.items()} for k, e in card.classes.items() if e.component_names
            },
        )

    def reference(self, revision: str) -> Reference | None:
        """None: a mined benchmark has no published reference to verify results against."""
        return None

    def write_mined(self, out: Path, images: Sequence[MinedImage], facts: dict[str, Any]) -> str:
        """``out/images/spurious_class_<k>_comp_<c>/<file>``, ``out/spurbench.json``, ``out/README.md``,
        all or nothing; ``facts`` must hold ``name`` and ``label_space``. Returns the content checksum."""
        return write_mined(out, images, facts)

    def build_dataset(self, source: Path, out: Path) -> str:
        return publish.build_dataset(source, out)

    def push_dataset(self, folder: Path, repo_id: str) -> str:
        return publish.push_dataset(folder, repo_id)

    def download_dataset(self, repo_id: str | None, revision: str | None, out: Path | None) -> Path:
        return publish.download_dataset(repo_id, revision, out)


__all__ = ["SpuriousFolder", "SpuriousFolderOptions", "positives_options", "positives_plugin"]
