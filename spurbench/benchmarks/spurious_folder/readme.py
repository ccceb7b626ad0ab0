"""``README.md`` of a mined benchmark folder: a dataset card a person reads (and the Hub renders), with
the checksum line in the form Spurious ImageNet's card uses, so ``layout.recorded_checksums`` reads it."""

from __future__ import annotations

from typing import Any

import yaml

from spurbench.benchmarks.shared.spurious_layout import SPLIT
from spurbench.benchmarks.spurious_folder.card import CHECKSUM_DEFINITION, Card, ClassEntry


def _named(value: Any) -> str:
    """A provenance value in a few words: a record by its name (and source), anything else as it is."""
    if isinstance(value, dict):
        name = value.get("name") or value.get("benchmark") or value.get("source")
        source = value.get("source")
        return f"{name} ({source})" if name and source and source != name else str(name or "unknown")
    return "unknown" if value is None else str(value)


def _verification(summary: Any) -> str:
    if not isinstance(summary, dict):
        return ""
    keys = ("candidates", "absent", "present", "unsure", "unverified")
    return ", ".join(f"{summary[k]} {k}" for k in keys if k in summary)


def _components(entry: ClassEntry) -> str:
    """A class's components, each with the name people gave its feature: ``1 (bird feeder), 4``."""
    names = entry.component_names
    return ", ".join(f"{c} ({_cell(names[str(c)])})" if str(c) in names else str(c) for c in entry.components)


def _cell(text: str) -> str:
    """Free text in a Markdown table cell: a ``|`` would end the cell, markup would render."""
    return "".join(f"\\{ch}" if ch in "\\|*_`[]<>#" else ch for ch in text)


def _front_matter(card: Card) -> str:
    front: dict[str, Any] = {
        "pretty_name": card.name,
        "task_categories": ["image-classification"],
        "tags": ["spurious-correlations", "robustness", "benchmark", "spurbench"],
    }
    if card.layout == "parquet":
        front["configs"] = [{"config_name": "default", "data_files": [{"split": SPLIT, "path": f"data/{SPLIT}-*.parquet"}]}]
    return yaml.safe_dump(front, sort_keys=False).strip()


def _layout_section(card: Card) -> str:
    if card.layout == "folder":
        return (
            "One folder per (class, spurious component) under `images/`, named `spurious_class_<class>_comp_<component>`\n"
            "(the layout of Spurious ImageNet's upstream zip); file names are `<first 12 hex of the pool digest>_<pool file name>`.\n"
            "`spurbench.json` lists every image with its pool id, source, digests and the labelers' verdicts."
        )
    return (
        "Parquet shards `data/test-*.parquet` (the columns of Spurious ImageNet's build: `image` with the stored bytes\n"
        "unchanged, `class_index`, `class_name`, `component`, `image_id`, `file_name`); `spurbench.json` lists every\n"
        "image with its pool id, source, digests and the labelers' verdicts."
    )


def dataset_card(card: Card) -> str:
    """The README.md of a mined benchmark folder."""
    facts = card.provenance
    model = _named(facts.get("model"))
    pool = _named(facts.get("pool"))
    classes = facts.get("classes")
    verification = classes if isinstance(classes, dict) else {}
    rows = "\n".join(
        f"| {k} | {entry.name or ''} | {_components(entry)} | {entry.images} | {_verification(verification.get(k))} |"
        for k, entry in sorted(card.classes.items(), key=lambda kv: int(kv[0]))
    )
    votes = facts.get("min_votes")
    labelers = facts.get("labelers")
    people = f"{len(labelers)} labeler(s)" if isinstance(labelers, list) else "people"
    rule = f"at least {votes} labeler(s) saw no object and none saw one" if votes is not None else "labelers saw no object"
    predicted = " The pool was filtered to images the model predicts as the class." if facts.get("require_predicted") else ""
    return f"""---
{_front_matter(card)}
---

# {card.name}

A spurious-feature benchmark mined by `spurbench mine`: images that show a spurious feature of a class but,
as {people} verified, not the class object. Like Spurious ImageNet, a model's reliance on the feature is
measured per class by how well its class probability separates held-out images of the class (positives,
not included here: `spurbench run --benchmark spurious-folder` takes them from the benchmark of the
label space `{card.label_space}`) from these images (negatives).

- mined from the pool {pool}
- ranked by the spurious components (discovery ranks) of the model {model}, discovery {_named(facts.get("discovery"))}
- kept when {rule}.{predicted}
- {card.num_images} images, {len(card.classes)} classes, written {card.written_at}

## Classes

| class index | class name | spurious component(s) | images | verification of the candidates |
|---|---|---|---|---|
{rows}

## Layout

{_layout_section(card)}

## Integrity

Content checksum: `{card.checksum}`
({CHECKSUM_DEFINITION.replace("'", "`")}; `spurbench` recomputes it on every load and refuses data that
does not match.)
"""
