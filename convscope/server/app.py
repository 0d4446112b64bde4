"""The FastAPI app: the page, the JSON API of docs/api.md (its routers are in
:mod:`convscope.server.routes`) and the training WebSocket.

Model-running endpoints are plain functions, so FastAPI runs them in its thread pool and the
event loop stays free for the WebSocket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from ..bundle import BUNDLED
from ..errors import ConvscopeError
from ..layer_kinds import Volume
from ..live.features import MODULE_INPUT
from .catalog import Catalog
from .encode import StrictJSONResponse
from .errors import install_error_handlers
from .limits import MAX_BODY_BYTES, BodyLimit
from .live import Jobs
from .module_entry import module_entry
from .origin import LOOPBACK_HOSTS, HostOriginCheck, HostOriginPolicy
from .routes.audio import audio_router
from .routes.datasets import chapter_router, datasets_router
from .routes.explain import explain_router
from .routes.live import live_router
from .routes.models import models_router
from .routes.runs import runs_router
from .routes.state import Explorer
from .routes.training import training_router
from .routes.wavenet import wavenet_router
from .samples import Samples

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
ROUTERS = (models_router, audio_router, datasets_router, chapter_router, training_router,
           runs_router, live_router, explain_router, wavenet_router)


def create_app(runs: Sequence[Path] = (), runs_dir: Path | None = None, data_dir: str | None = None,
               *, bundled_dir: Path = BUNDLED, static_dir: Path = STATIC,
               allowed_hosts: Collection[str] = LOOPBACK_HOSTS,
               allowed_origins: Collection[str] = (), trust_code: bool = False,
               modules: Sequence[str] = (), module_input: Volume = MODULE_INPUT) -> FastAPI:
    """The explorer for the bundled models plus the runs given and those in ``runs_dir``.

    Live training writes under ``<runs_dir>/live/`` (``runs/live/`` without one); datasets are
    read from ``data_dir`` (default as for training) or the bundled samples. Requests must name
    one of ``allowed_hosts`` in their Host header; state-changing requests and WebSockets from
    a page must come from the server's own origin or one of ``allowed_origins``
    (:mod:`convscope.server.origin`). Runs of Python models are offered only with
    ``trust_code`` (``serve --trust-code``), which imports the model code each run keeps;
    ``modules`` (``file.py:factory``, needing ``trust_code``) are offered as they are, taking
    ``module_input`` (:mod:`convscope.server.module_entry`).
    """
    policy = HostOriginPolicy(allowed_hosts, allowed_origins)
    catalog = Catalog(bundled_dir / "models", list(runs), runs_dir, trust_code)
    if data_dir is not None:  # --data-dir: its ml4a/ snapshots are the chapter's own networks
        catalog.add_chapter_snapshots(data_dir)
    for ref in modules:
        if not trust_code:
            raise ConvscopeError(f"--module {ref} is Python code: importing it runs it; add "
                                 "--trust-code if you trust the file")
        catalog.add(module_entry(ref, module_input))
    samples = Samples(data_dir, bundled_dir / "samples")
    jobs = Jobs(catalog, samples, (runs_dir or Path("runs")) / "live", data_dir)
    explorer = Explorer(catalog, samples, jobs)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(jobs.shutdown)

    app = FastAPI(title="convscope explorer", lifespan=lifespan, docs_url=None, redoc_url=None,
                  default_response_class=StrictJSONResponse)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(HostOriginCheck, policy=policy)  # added last: runs first
    serve_page(app, static_dir)
    for router in ROUTERS:
        app.include_router(router(explorer))
    return app


def serve_page(app: FastAPI, static_dir: Path) -> None:
    """The page at ``/`` and its modules under ``/static``."""

    @app.get("/", include_in_schema=False, response_model=None)
    def page() -> Response:
        index = static_dir / "index.html"
        if index.is_file():
            return FileResponse(index)
        return PlainTextResponse(f"convscope explorer: the page is not installed ({index} is "
                                 "missing); the API answers under /api (try /api/models).")

    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")
