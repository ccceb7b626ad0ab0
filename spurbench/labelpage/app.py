"""The label pages as a FastAPI app over one discovery folder, for one labeler.

Routes:
  GET  /                    the classes, with progress, search and an "only unlabelled" filter
  GET  /class/{k}           one class's components with their images and the label buttons, by share of
                            the logit's variance (``?order=rank``: by rank)
  GET  /api/labels          every labeler's current labels, and this labeler's progress (JSON)
  GET  /api/classes/{k}     one class's labels (JSON; what the class page renders)
  POST /api/labels          {"class_index", "rank", "label"[, "name"]}: one label by this labeler (a
                            spurious one may carry the feature's name); or {"class_index", "ranks",
                            "label"}: the same label on several components in one write ("the rest
                            are not spurious"); answers with the class's labels as on disk after the
                            write (so other tabs' labels show)
  GET  /images/{file}       the discovery's PNGs, only from DIR/images and only when the file's real
                            path lies inside the real path of DIR/images and of DIR itself (no link out
                            at any level); a DIR whose images/ leads out of it is refused at start
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, model_validator

from spurbench.discovery.images import IMAGES_DIR
from spurbench.discovery.index import INDEX_FILE, DiscoveryIndex, read_index
from spurbench.discovery.labels import (
    LABELS,
    Label,
    LabelsFile,
    UnknownComponentError,
    labels_ledger,
    read_labels,
    record_label,
    record_labels,
)
from spurbench.errors import SpurbenchError
from spurbench.files import check_inside, file_inside, real_inside
from spurbench.labelpage.label_state import ORDERS, Order, all_labels, class_rows, class_state, component_order
from spurbench.labelpage.label_view import LabelView, LabelViews
from spurbench.ledger import check_labeler

LABEL_NAMES = {"spurious": "spurious", "not_spurious": "not spurious", "inconsistent": "inconsistent"}
SHORTCUTS = {"spurious": "s", "not_spurious": "n", "inconsistent": "i"}
LOCAL_NAMES = ("127.0.0.1", "localhost")


class LabelRequest(BaseModel):
    """A label as the page posts it; strict, so that a JSON ``true`` is not taken for rank 1."""

    model_config = ConfigDict(extra="forbid")
    class_index: StrictInt
    rank: StrictInt | None = None
    ranks: list[StrictInt] | None = None  # several components at once, without a name
    label: Label
    name: StrictStr | None = None  # of a spurious label only

    @model_validator(mode="after")
    def one_target(self) -> LabelRequest:
        if (self.rank is None) == (self.ranks is None):
            raise ValueError("give either rank or ranks")
        if self.ranks is not None and self.name is not None:
            raise ValueError("a name goes with one rank")
        return self


def served_file(folder: Path, subfolder: str, name: str) -> Path | None:
    """``folder/subfolder/name`` when it is a file whose real path lies inside both ``subfolder``'s and
    ``folder``'s real paths (the latter: in case ``subfolder`` was made a link out after the start)."""
    path = file_inside(folder / subfolder, name)
    return path if path is not None and real_inside(folder, path) else None


def check_served(folder: Path, subfolders: tuple[str, ...]) -> None:
    """A one-line error when a served subfolder of ``folder`` leads out of it (``DIR/images -> /``)."""
    for name in subfolders:
        check_inside(folder, folder / name, f"the served folder {name}/")


def _duration(seconds: float) -> str:
    """A time left as a person reads it: seconds, minutes, or hours and minutes (as the class page's script)."""
    if seconds < 90:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


@functools.cache
def templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("spurbench.labelpage", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=_number,
        percent=lambda share: f"{100 * share:.1f}%",
        duration=_duration,
        points=lambda probability: f"{100 * probability:.1f} points",  # a change of a probability, in percentage points
        image_url=lambda rel: "/" + quote(rel),
    )
    env.globals.update(labels=LABELS, label_names=LABEL_NAMES, shortcuts=SHORTCUTS)
    return Jinja2Templates(env=env)


def _index_reader(folder: Path) -> Callable[[], DiscoveryIndex]:
    """read_index, parsed again only when discovery.json changed (a discovery may still be adding classes)."""

    @functools.lru_cache(maxsize=1)
    def parsed(stamp: tuple[int, int, int]) -> DiscoveryIndex:
        return read_index(folder)

    def current() -> DiscoveryIndex:
        try:
            info = (folder / INDEX_FILE).stat()
        except OSError:
            return read_index(folder)  # gone: its one-line error
        return parsed((info.st_mtime_ns, info.st_size, info.st_ino))

    return current


def create_app(folder: Path, labeler: str) -> FastAPI:
    """The app serving ``folder``'s discovery to ``labeler``; a one-line SpurbenchError now (not at the
    first request) when the folder is no discovery or its labels belong to another model."""
    folder = Path(folder).resolve()
    labeler = check_labeler(labeler)
    index_now = _index_reader(folder)
    ledger = labels_ledger(folder)  # one for the app: each read parses only the labels added since the last
    views = LabelViews()  # likewise: each answer counts only the labels added since the last
    read_labels(folder, index_now(), ledger)
    check_served(folder, (IMAGES_DIR,))
    app = FastAPI(title="spurbench label", docs_url=None, redoc_url=None, openapi_url=None)
    # only requests addressed to this machine by name: a web page cannot reach the labels by rebinding its DNS name here
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOCAL_NAMES))

    def state() -> tuple[DiscoveryIndex, LabelsFile]:
        index = index_now()
        return index, read_labels(folder, index, ledger)

    def answer(labels: LabelsFile, what: Callable[[LabelView], dict]) -> dict:
        return views.read(labels, what)

    def common(index: DiscoveryIndex) -> dict:
        return {"model": index.model.name, "basis": index.basis, "labeler": labeler, "folder": str(folder)}

    @app.exception_handler(SpurbenchError)
    async def user_error(request: Request, exc: SpurbenchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, UnknownComponentError) else 409)

    @app.get("/", response_class=HTMLResponse)
    def index_page(request: Request) -> HTMLResponse:
        index, labels = state()
        rows = answer(labels, lambda view: class_rows(index, view, labeler))
        return templates().TemplateResponse(request, "index.html", {**common(index), **rows})

    @app.get("/class/{class_index}", response_class=HTMLResponse)
    def class_page(request: Request, class_index: int, order: str = "share") -> HTMLResponse:
        index, labels = state()
        record = index.classes.get(str(class_index))
        if record is None:
            return templates().TemplateResponse(request, "missing.html", {**common(index), "class_index": class_index}, status_code=404)
        if order not in ORDERS:
            raise HTTPException(422, f"order {order!r}: expected one of {', '.join(ORDERS)}")
        shown: Order = "rank" if order == "rank" else "share"
        by_rank = {c.rank: c for c in record.components}
        context = {
            **common(index),
            "record": record,
            "components": [by_rank[r] for r in component_order(record, shown)],
            "order": shown,
            "query": "?order=rank" if shown == "rank" else "",  # kept by the links to other classes
            "robust": index.robust,
            "state": answer(labels, lambda view: class_state(index, view, labeler, class_index)),
        }
        return templates().TemplateResponse(request, "class.html", context)

    @app.get("/api/labels")
    def get_labels() -> dict:
        index, labels = state()
        return answer(labels, lambda view: all_labels(index, view, labeler))

    @app.get("/api/classes/{class_index}")
    def get_class(class_index: int) -> dict:
        index, labels = state()
        if str(class_index) not in index.classes:
            raise HTTPException(404, f"the discovery has no class {class_index}")
        return answer(labels, lambda view: class_state(index, view, labeler, class_index))

    @app.post("/api/labels")
    def post_label(body: LabelRequest) -> dict:
        index = index_now()
        if body.ranks is not None:
            records = record_labels(folder, body.class_index, body.ranks, body.label, labeler, index=index, ledger=ledger)
        else:
            assert body.rank is not None  # (one_target)
            records = [record_label(folder, body.class_index, body.rank, body.label, labeler, index=index, ledger=ledger, name=body.name)]
        return {
            "record": records[-1].model_dump(mode="json"),  # (the one label of a single-rank request)
            "records": [record.model_dump(mode="json") for record in records],
            **answer(read_labels(folder, index, ledger), lambda view: class_state(index, view, labeler, body.class_index)),
        }

    @app.get("/images/{name:path}")
    def image(name: str) -> FileResponse:
        path = served_file(folder, IMAGES_DIR, name)
        if path is None:
            raise HTTPException(404, "no such image")
        return FileResponse(path)

    return app
