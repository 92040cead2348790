"""The app factory: settings, engine source, lifespan, error handlers and routes put together."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lottogpt.inference import Engine
from lottogpt.onnx_backend import with_backend
from lottogpt.registry import open_engine
from lottogpt.serving.middleware import BodySizeLimit
from lottogpt.serving.page import mount_page
from lottogpt.serving.routes import api_router, status_router, unprocessable
from lottogpt.serving.schemas import build_schemas
from lottogpt.serving.settings import EngineFactory, Settings
from lottogpt.serving.state import ServerState, ServiceUnavailableError

log = logging.getLogger("lottogpt.serving")
DESCRIPTION = ("A tiny GPT that imitates the lotto kata. 422: invalid content (kata [ERROR] messages where they "
               "apply); 413: body too large; 503: the model is not loaded yet. The playground is at /.")


def engine_factory(source: EngineFactory | str | Path | None, settings: Settings) -> EngineFactory:
    """A zero-argument engine factory as given, or one that opens a model path/URI (default: settings)."""
    if source is not None and not isinstance(source, (str, Path)):
        return source
    model = str(source) if source is not None else settings.model

    def factory() -> Engine:
        engine = open_engine(settings.engine, model, settings.device, settings.speculative)
        # ONNX Runtime gets the threads torch was given (serve --threads), on the thread that will run it.
        return with_backend(engine, settings.backend, torch.get_num_threads())

    return factory


def _loc(loc: tuple | list) -> list:
    """The error location without the union's tag: ``body.single.tickets`` reads ``body.tickets``."""
    loc = list(loc)
    if len(loc) > 1 and loc[0] == "body" and loc[1] in ("single", "batch"):
        del loc[1]
    return loc


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        return unprocessable([{"type": e.get("type"), "loc": _loc(e.get("loc", ())), "msg": e.get("msg")}
                              for e in error.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8...): a content error too
            return unprocessable([{"type": "json_invalid", "loc": ["body"],
                                   "msg": f"the body could not be read as JSON: {error.detail}"}])
        return await http_exception_handler(request, error)

    @app.exception_handler(ServiceUnavailableError)
    async def _unavailable(request: Request, error: ServiceUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=503, headers={"Retry-After": "1"})


def create_app(source: EngineFactory | str | Path | None = None, settings: Settings | None = None) -> FastAPI:
    """The server app. ``source``: a zero-argument engine factory, or a model path/URI (default: settings)."""
    settings = settings or Settings()
    state = ServerState(settings, engine_factory(source, settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.load(), name="lottogpt-load")
        if not settings.background_load:
            await loading
        try:
            yield
        finally:
            state.stopping = True
            log.info("shutting down: answering queued cases")
            await loading
            if state.batcher is not None:
                await state.batcher.close()
            log.info("lottogpt server stopped")

    app = FastAPI(title="lottogpt", version="1", lifespan=lifespan, description=DESCRIPTION)
    app.state.lotto = state
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    _add_error_handlers(app)
    app.include_router(api_router(state, build_schemas(settings.max_tickets, settings.max_cases)))
    app.include_router(status_router(state))
    mount_page(app)
    return app
