"""The label pages as a FastAPI app over one discovery folder, for one labeler.

Routes:
  GET  /                    the classes, with progress, search and an "only unlabelled" filter
  GET  /class/{k}           one class's components with their images and the label buttons
  GET  /api/labels          every labeler's current labels, and this labeler's progress (JSON)
  GET  /api/classes/{k}     one class's labels (JSON; what the class page renders)
  POST /api/labels          {"class_index", "rank", "label"}: one label by this labeler; answers with
                            the class's labels as on disk after the write (so other tabs' labels show)
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
from pydantic import BaseModel, ConfigDict, StrictInt

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
)
from spurbench.errors import SpurbenchError
from spurbench.files import check_inside, file_inside, real_inside
from spurbench.labelpage.label_state import all_labels, class_rows, class_state
from spurbench.ledger import check_labeler

LABEL_NAMES = {"spurious": "spurious", "not_spurious": "not spurious", "inconsistent": "inconsistent"}
SHORTCUTS = {"spurious": "s", "not_spurious": "n", "inconsistent": "i"}
LOCAL_NAMES = ("127.0.0.1", "localhost")


class LabelRequest(BaseModel):
    """A label as the page posts it; strict, so that a JSON ``true`` is not taken for rank 1."""

    model_config = ConfigDict(extra="forbid")
    class_index: StrictInt
    rank: StrictInt
    label: Label


def served_file(folder: Path, subfolder: str, name: str) -> Path | None:
    """``folder/subfolder/name`` when it is a file whose real path lies inside both ``subfolder``'s and
    ``folder``'s real paths (the latter: in case ``subfolder`` was made a link out after the start)."""
    path = file_inside(folder / subfolder, name)
    return path if path is not None and real_inside(folder, path) else None


def check_served(folder: Path, subfolders: tuple[str, ...]) -> None:
    """A one-line error when a served subfolder of ``folder`` leads out of it (``DIR/images -> /``)."""
    for name in subfolders:
        check_inside(folder, folder / name, f"the served folder {name}/")


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
    env.filters.update(number=_number, percent=lambda share: f"{100 * share:.1f}%", image_url=lambda rel: "/" + quote(rel))
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
    read_labels(folder, index_now(), ledger)
    check_served(folder, (IMAGES_DIR,))
    app = FastAPI(title="spurbench label", docs_url=None, redoc_url=None, openapi_url=None)
    # only requests addressed to this machine by name: a web page cannot reach the labels by rebinding its DNS name here
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOCAL_NAMES))

    def state() -> tuple[DiscoveryIndex, LabelsFile]:
        index = index_now()
        return index, read_labels(folder, index, ledger)

    def common(index: DiscoveryIndex) -> dict:
        return {"model": index.model.name, "basis": index.basis, "labeler": labeler, "folder": str(folder)}

    @app.exception_handler(SpurbenchError)
    async def user_error(request: Request, exc: SpurbenchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, UnknownComponentError) else 409)

    @app.get("/", response_class=HTMLResponse)
    def index_page(request: Request) -> HTMLResponse:
        index, labels = state()
        return templates().TemplateResponse(request, "index.html", {**common(index), **class_rows(index, labels, labeler)})

    @app.get("/class/{class_index}", response_class=HTMLResponse)
    def class_page(request: Request, class_index: int) -> HTMLResponse:
        index, labels = state()
        record = index.classes.get(str(class_index))
        if record is None:
            return templates().TemplateResponse(request, "missing.html", {**common(index), "class_index": class_index}, status_code=404)
        context = {**common(index), "record": record, "state": class_state(index, labels, labeler, class_index)}
        return templates().TemplateResponse(request, "class.html", context)

    @app.get("/api/labels")
    def get_labels() -> dict:
        return all_labels(*state(), labeler)

    @app.get("/api/classes/{class_index}")
    def get_class(class_index: int) -> dict:
        index, labels = state()
        if str(class_index) not in index.classes:
            raise HTTPException(404, f"the discovery has no class {class_index}")
        return class_state(index, labels, labeler, class_index)

    @app.post("/api/labels")
    def post_label(body: LabelRequest) -> dict:
        index = index_now()
        record = record_label(folder, body.class_index, body.rank, body.label, labeler, index=index, ledger=ledger)
        return {
            "record": record.model_dump(mode="json"),
            **class_state(index, read_labels(folder, index, ledger), labeler, body.class_index),
        }

    @app.get("/images/{name:path}")
    def image(name: str) -> FileResponse:
        path = served_file(folder, IMAGES_DIR, name)
        if path is None:
            raise HTTPException(404, "no such image")
        return FileResponse(path)

    return app
