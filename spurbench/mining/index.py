"""The candidates index of a mining (``candidates.json``): what ``mine`` writes and the verify pages,
the verdicts and the export read."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from spurbench.discovery.index import TrainingSplit
from spurbench.errors import SpurbenchError
from spurbench.results import ModelInfo
from spurbench.schemas import Strict, read_model
from spurbench.spufix.artifact import FeatureName

FORMAT_VERSION: Final = 1
INDEX_FILE = "candidates.json"
Predicted = Literal["top1", "top5", "none"]


class Candidate(Strict):
    image_id: str  # the pool's id: its path relative to the pool folder
    source: str  # where it came from (the file, or the generator)
    digest: str  # sha256 of the file's bytes ("sha256:..."), or of the decoded RGB pixels for generated pools ("rgb-sha256:...")
    rank: int  # 1-based, by alpha, after the filters
    alpha: float
    predicted: int  # the model's top-1 class on it
    probability: float  # the model's softmax probability of the candidate's class
    thumbnail: str  # relative to the mining folder


class ComponentCandidates(Strict):
    class_index: int
    class_name: str
    component: int  # the component's rank in the discovery
    neuron: int | None = None  # for a neuron-basis discovery
    component_name: FeatureName | None = None  # what people named its feature (components file or SpuFix artifact), if they did
    reference: list[str]  # the component's top training images (copied, relative paths; none from an artifact)
    npfv: str | None = None  # its feature visualisation (copied), if the discovery made one
    candidates: list[Candidate]
    dropped_duplicates: int


class PoolRecord(Strict):
    name: str
    source: str
    spec: str | None = None  # the --pool value that opens it again (a benchmark name, hf://...); None: a local folder
    revision: str | None
    num_images: int
    unreadable: list[str]  # files that failed the check and were skipped


class MiningIndex(Strict):
    format: Literal[1] = FORMAT_VERSION
    spurbench_version: str
    model: ModelInfo
    discovery: str | None  # the discovery folder the bases came from (None: a SpuFix artifact)
    spufix: str | None = None  # the SpuFix artifact the bases came from (None: a discovery)
    basis: Literal["npca", "neurons"]
    training: TrainingSplit | None  # the discovery's training split (None for an artifact)
    pool: PoolRecord
    require_predicted: Predicted
    per_component: int
    dedup_cosine: float
    components: list[ComponentCandidates]


def read_mining(folder: Path) -> MiningIndex:
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        raise SpurbenchError(f"{folder}: not a mining folder (no {INDEX_FILE}; run `spurbench mine` first)")
    return read_model(path, MiningIndex, "candidates index")


def best_placements(index: MiningIndex) -> dict[tuple[int, str], tuple[int, Candidate]]:
    """(class, image) -> (component, candidate) where the image ranks best among the class's components:
    an image mined for several components of a class counts once."""
    best: dict[tuple[int, str], tuple[int, Candidate]] = {}
    for entry in index.components:
        for c in entry.candidates:
            key = (entry.class_index, c.image_id)
            if key not in best or c.rank < best[key][1].rank:
                best[key] = (entry.component, c)
    return best


def candidates_by_class(index: MiningIndex) -> dict[int, list[Candidate]]:
    """Every candidate of each class over its components, each image once (its best rank)."""
    out: dict[int, list[Candidate]] = {}
    for (k, _), (_, c) in best_placements(index).items():
        out.setdefault(k, []).append(c)
    return {k: sorted(v, key=lambda c: c.rank) for k, v in out.items()}


def component_names(index: MiningIndex) -> dict[str, dict[str, str]]:
    """class -> component -> the name of its feature, for the named components (JSON keys: strings)."""
    out: dict[str, dict[str, str]] = {}
    for entry in index.components:
        if entry.component_name is not None:
            out.setdefault(str(entry.class_index), {})[str(entry.component)] = entry.component_name
    return out


__all__ = [
    "INDEX_FILE",
    "Candidate",
    "ComponentCandidates",
    "MiningIndex",
    "PoolRecord",
    "Predicted",
    "best_placements",
    "candidates_by_class",
    "component_names",
    "read_mining",
]
