"""The pages that collect people's verdicts on mined candidates (``spurbench label DIR --mode verify``),
over one mining folder, for one labeler: is the class's object absent from each mined candidate?

Routes:
  GET  /                   the classes with their candidates verified / total and this labeler's counts
                           of each verdict, searchable by name or index
  GET  /class/{k}          per mined component: a reference strip (its feature visualisation and top
                           training images) and the grid of its candidates, three verdicts each; an
                           image mined for several components is in each grid and decided once
  GET  /api/verdicts/{k}   one class's verdicts (JSON; what the class page renders)
  POST /api/verdicts       {"class_index", "image_id", "verdict"}: one verdict by this labeler; or
                           {"class_index", "image_ids", "verdict"}: the same verdict on several images
                           in one write ("the rest of a component absent"); answers with the records
                           written and the class's verdicts as on disk after the write
  GET  /files/{file}       the mining folder's thumbnails and reference images, only from thumbs/ and reference/
                           and only inside the real path of DIR (a DIR whose thumbs/ or reference/ leads
                           out of it is refused at start)
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from spurbench.errors import SpurbenchError
from spurbench.labelpage.app import LOCAL_NAMES, check_served, served_file, templates
from spurbench.ledger import check_labeler
from spurbench.mining.index import Candidate, ComponentCandidates, MiningIndex, candidates_by_class, read_mining
from spurbench.mining.pipeline import REFERENCE_DIR
from spurbench.mining.thumbnails import THUMBS_DIR
from spurbench.mining.verdicts import (
    VERDICTS,
    UnknownCandidateError,
    Verdict,
    VerdictsFile,
    candidate_components,
    class_counts,
    latest_verdicts,
    read_verdicts,
    record_verdicts,
    verdicts_ledger,
)

VERDICT_NAMES = {"absent": "absent", "present": "present", "unsure": "unsure"}  # the page asks "is a <class> in the image?"
VERDICT_KEYS = {"absent": "a", "present": "p", "unsure": "u"}


class VerdictRequest(BaseModel):
    """A verdict as the page posts it, on one image or on several; strict: no number for an image id,
    no boolean for a class."""

    model_config = ConfigDict(extra="forbid")
    class_index: StrictInt
    image_id: StrictStr | None = None
    image_ids: list[StrictStr] | None = Field(default=None, min_length=1)
    verdict: Verdict

    @model_validator(mode="after")
    def one_target(self) -> VerdictRequest:
        if (self.image_id is None) == (self.image_ids is None):
            raise ValueError("give either image_id or image_ids")
        return self


def class_cards(entries: list[ComponentCandidates], placements: dict[tuple[int, str], list[int]]) -> list[dict]:
    """The class page's grids: per component its candidates, each with the components it is a candidate
    of and, when an earlier grid of the page shows it already, that grid's component (``first``): the
    cursor stops on an image once, where it is shown first."""
    first_shown: dict[str, int] = {}
    grids = []
    for entry in entries:
        cards = []
        for c in entry.candidates:
            first = first_shown.setdefault(c.image_id, entry.component)
            cards.append(
                {
                    "candidate": c,
                    "components": placements[(entry.class_index, c.image_id)],
                    "first": None if first == entry.component else first,
                }
            )
        grids.append({"entry": entry, "cards": cards})
    return grids


def class_verdicts(
    index: MiningIndex, verdicts: VerdictsFile, labeler: str, class_index: int, by_class: dict[int, list[Candidate]] | None = None
) -> dict:
    """One class's verdicts: the labeler's own per image, the others', the progress (distinct images
    verified / candidates, per class) and the neighbours."""
    current = latest_verdicts(verdicts)
    mine = {i: {"verdict": r.verdict, "at": r.at.isoformat()} for (k, i, who), r in current.items() if k == class_index and who == labeler}
    others: dict[str, list[dict]] = {}
    for (k, i, who), r in sorted(current.items()):
        if k == class_index and who != labeler:
            others.setdefault(i, []).append({"labeler": who, "verdict": r.verdict})
    counts = class_counts(index, verdicts, labeler, by_class)
    progress = {k: (c["verified"], c["candidates"]) for k, c in counts.items()}
    order = sorted(progress)
    position = order.index(class_index)
    after = order[position + 1 :] + order[: position + 1]
    return {
        "class_index": class_index,
        "labeler": labeler,
        "mine": mine,
        "others": others,
        "progress": {str(k): list(v) for k, v in progress.items()},
        "counts": counts[class_index],
        "classes_done": sum(done == total for done, total in progress.values()),
        "classes": len(order),
        "next_unverified": next((k for k in after if progress[k][0] < progress[k][1]), None),
        "previous_class": order[position - 1] if position > 0 else None,
        "next_class": order[position + 1] if position + 1 < len(order) else None,
    }


def create_verdict_app(folder: Path, labeler: str) -> FastAPI:
    """The verdict pages' app of a mining folder; a one-line SpurbenchError now when it is no mining or its
    verdicts belong to another one."""
    folder = Path(folder).resolve()
    labeler = check_labeler(labeler)
    index = read_mining(folder)
    ledger = verdicts_ledger(folder)  # one for the app: each read parses only the verdicts added since the last
    read_verdicts(folder, index, ledger)
    served = (THUMBS_DIR, REFERENCE_DIR)
    check_served(folder, served)
    by_class = candidates_by_class(index)
    placements = candidate_components(index)
    app = FastAPI(title="spurbench verify", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOCAL_NAMES))
    common = {
        "model": index.model.name,
        "basis": index.basis,
        "labeler": labeler,
        "folder": str(folder),
        "verdicts": VERDICTS,
        "verdict_names": VERDICT_NAMES,
        "verdict_keys": VERDICT_KEYS,
    }

    @app.exception_handler(SpurbenchError)
    async def user_error(request: Request, exc: SpurbenchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, UnknownCandidateError) else 409)

    @app.get("/", response_class=HTMLResponse)
    def index_page(request: Request) -> HTMLResponse:
        counts = class_counts(index, read_verdicts(folder, index, ledger), labeler, by_class)
        names = {e.class_index: e.class_name for e in index.components}
        finished = [k for k, c in sorted(counts.items()) if c["verified"] == c["candidates"]]
        rows = [{"index": k, "name": names[k], **c, "done": k in finished} for k, c in sorted(counts.items())]
        context = {
            **common,
            "rows": rows,
            "done": len(finished),
            "total": len(rows),
            "next_unverified": next((k for k in sorted(counts) if k not in finished), None),
            "pool": index.pool,
        }
        return templates().TemplateResponse(request, "verdict_index.html", context)

    @app.get("/class/{class_index}", response_class=HTMLResponse)
    def class_page(request: Request, class_index: int) -> HTMLResponse:
        if class_index not in by_class:
            return templates().TemplateResponse(request, "missing.html", {**common, "class_index": class_index}, status_code=404)
        entries = [e for e in index.components if e.class_index == class_index]
        state = class_verdicts(index, read_verdicts(folder, index, ledger), labeler, class_index, by_class)
        context = {**common, "grids": class_cards(entries, placements), "class_name": entries[0].class_name, "state": state}
        return templates().TemplateResponse(request, "verdict_class.html", context)

    @app.get("/api/verdicts/{class_index}")
    def get_verdicts(class_index: int) -> dict:
        if class_index not in by_class:
            raise HTTPException(404, f"the mining has no candidates of class {class_index}")
        return class_verdicts(index, read_verdicts(folder, index, ledger), labeler, class_index, by_class)

    @app.post("/api/verdicts")
    def post_verdict(body: VerdictRequest) -> dict:
        images = body.image_ids if body.image_ids is not None else [str(body.image_id)]  # (one_target: one of them is given)
        records = record_verdicts(
            folder, body.class_index, images, body.verdict, labeler, index=index, ledger=ledger, placements=placements
        )
        return {
            "record": records[-1].model_dump(mode="json"),  # (the one verdict of a single-image request)
            "records": [record.model_dump(mode="json") for record in records],
            **class_verdicts(index, read_verdicts(folder, index, ledger), labeler, body.class_index, by_class),
        }

    @app.get("/files/{name:path}")
    def file(name: str) -> FileResponse:
        subfolder, _, rest = name.partition("/")
        path = served_file(folder, subfolder, rest) if subfolder in served else None  # nothing else of the folder, no links out
        if path is None:
            raise HTTPException(404, "no such image")
        return FileResponse(path)

    return app
