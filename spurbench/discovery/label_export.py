"""The export of a discovery folder's labels (``spurbench label export``): the components labelled spurious,
as the ``{class: [ranks]}`` table ``spufix fit --components`` and ``mine`` read, with the names people
gave the features (``names``: ``{class: {rank: name}}``, ranks as the table lists them).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from spurbench.discovery.labels import DISCOVERY_FILE, DISCOVERY_FOLDERS, LEDGER, Key, LabelRecord, latest, read_labels, sorted_classes
from spurbench.errors import SpurbenchError
from spurbench.files import real_inside, write_synced

if TYPE_CHECKING:
    from spurbench.discovery.index import ComponentRecord, DiscoveryIndex


def _read_index(folder: Path) -> DiscoveryIndex:
    # lazy: the discovery package imports torch; `label export` checks its --out before that
    from spurbench.discovery.index import read_index

    return read_index(folder)


def chosen_name(records: list[LabelRecord]) -> str | None:
    """The name of a component among its current spurious labels: the one most labelers gave; of equally
    many, the one given last (None: nobody named it)."""
    named = [(r.name, r.at) for r in records if r.label == "spurious" and r.name is not None]
    if not named:
        return None
    votes: dict[str, int] = {}
    for name, _ in named:
        votes[name] = votes.get(name, 0) + 1
    last = dict(sorted(named, key=lambda item: item[1]))  # name -> when it was last given
    return max(votes, key=lambda name: (votes[name], last[name]))


def _exported(index: DiscoveryIndex, class_index: int, component: ComponentRecord) -> int:
    """What the export lists for a component: its rank, or for the neurons basis its unit."""
    if index.basis != "neurons":
        return component.rank
    if component.neuron is None:
        raise SpurbenchError(f"{DISCOVERY_FILE}: class {class_index} component {component.rank} names no neuron, but the basis is neurons")
    return component.neuron


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def export_components(folder: Path, min_votes: int = 1, out: Path | None = None, warn: Callable[[str], None] = _warn) -> dict:
    """The components labelled spurious, as ``{"components": {class: [ranks]}, "names": {class: {rank: name}}, ...}``; written to ``out``
    (atomically) when given, and then never empty (a one-line error instead).

    Vote rule: a component is exported when at least ``min_votes`` distinct labelers' latest label for
    it is "spurious". Only the count of spurious votes matters: "not_spurious" and "inconsistent"
    votes neither subtract nor veto. For the "neurons" basis the table lists neuron indices, not
    ranks. Classes without an exported component are left out. Labels of classes or components the
    discovery does not have (a discovery redone with fewer) are left out with a ``warn`` line. An exported
    component's name is the one most of its spurious labels give (``chosen_name``); unnamed ones are left out
    of ``names``.
    """
    if min_votes < 1:
        raise SpurbenchError(f"--min-votes {min_votes}: must be at least 1")
    folder = Path(folder)
    if out is not None:
        check_out(folder, Path(out))
    index = _read_index(folder)
    labels = read_labels(folder, index)
    known = {(int(k), c.rank) for k, record in index.classes.items() for c in record.components}
    votes: dict[tuple[int, int], int] = {}
    current: dict[tuple[int, int], list[LabelRecord]] = {}
    unknown: list[Key] = []
    for (k, rank, who), record in latest(labels).items():
        if (k, rank) not in known:
            unknown.append((k, rank, who))
        votes[(k, rank)] = votes.get((k, rank), 0) + (record.label == "spurious")
        current.setdefault((k, rank), []).append(record)
    if unknown:
        k, rank, _ = min(unknown)
        warn(
            f"{len(unknown)} label(s) name classes or components the discovery does not have (first: class {k} rank {rank}); they are left out of the export"
        )
    table: dict[str, list[int]] = {}
    names: dict[str, dict[str, str]] = {}
    for k in sorted_classes(index):
        chosen = [c for c in index.classes[str(k)].components if votes.get((k, c.rank), 0) >= min_votes]
        if chosen:
            table[str(k)] = sorted(_exported(index, k, c) for c in chosen)
        named = {str(_exported(index, k, c)): chosen_name(current[(k, c.rank)]) for c in chosen}
        if any(named.values()):
            names[str(k)] = {listed: name for listed, name in sorted(named.items(), key=lambda item: int(item[0])) if name}
    labelers = sorted({r.labeler for r in labels.records})
    payload = {
        "components": table,
        "names": names,
        "basis": index.basis,
        "model": index.model.name,
        "weights_revision": index.model.weights_revision,
        "min_votes": min_votes,
        "labelers": labelers,
    }
    if out is not None:
        if not table:  # an empty components file only moves the failure to `spufix fit` or `mine`
            raise SpurbenchError(
                f"no component has {min_votes} or more 'spurious' votes ({len(latest(labels))} current labels by {len(labelers)} labelers); nothing to export to {out}: label some components spurious (`spurbench label {folder}`) or lower --min-votes"
            )
        _write_export(Path(out), payload)
    return payload


def check_out(folder: Path, out: Path) -> None:
    """``--out`` of ``label export``: a file to write, never one of the discovery folder's own (its index,
    labels, lock, images or bases), compared by real path so that no link or ``..`` gets round it."""
    own = [folder / DISCOVERY_FILE, *LEDGER.own_files(folder)]
    target = os.path.realpath(out)
    for path in own:
        if target == os.path.realpath(path):
            raise SpurbenchError(
                f"--out {out}: is the discovery folder's own {path.name}, which the export reads; write the components to another file"
            )
    for name in DISCOVERY_FOLDERS:
        if real_inside(folder / name, out):
            raise SpurbenchError(f"--out {out}: is inside the discovery's {name}/ folder; write the components to another file")
    if out.is_dir():
        raise SpurbenchError(f"--out {out}: is a folder; name the components file to write")
    if not out.parent.is_dir():
        raise SpurbenchError(f"--out {out}: folder {out.parent} does not exist")


def _write_export(out: Path, payload: dict) -> None:
    try:
        write_synced(out, json.dumps(payload, indent=1) + "\n")
    except OSError as exc:
        raise SpurbenchError(f"--out {out}: cannot write ({exc.strerror})") from None
