"""The HTTP server: a FastAPI app that answers lotto cases with an engine (the model or the kata).

Endpoints
    ``POST /v1/predict``  one case ``{"tickets": [[6 ints], ...], "winning": [6 ints], "bonus": n}`` or a
                          batch ``{"cases": [case, ...]}``; ``"check": true`` adds the reference answer and
                          the agreement, ``"show_work": true`` the model's work lines.
    ``POST /v1/play``     ``{"amount": 8000, "winning": [...], "bonus": n, "seed": s}``: the server draws the
                          tickets (``kata.draw_ticket``, ``random.Random(seed)``) and answers as above.
    ``GET /healthz``      200 while the process is alive.
    ``GET /readyz``       200 once the model is loaded, 503 before (and while stopping, or if loading failed).
    ``GET /info``         the engine's info and model version (503 before the model is loaded).

Status codes
    200  answered.
    413  the request body is larger than ``Settings.max_body_bytes``.
    422  any content error: a body that is not JSON, a wrong type, numbers outside 1..45, not six unique
         numbers, a bonus equal to a winning number, a bad amount, more tickets than the model was trained
         on, more cases than ``Settings.max_cases``. 422 (not 400) because the request is well-formed
         HTTP but its content breaks the schema, which is also what FastAPI answers for schema errors,
         so every content error has one code and one shape: ``{"detail": [{"type", "loc", "msg"}]}``.
         Where the kata has a message, ``msg`` is the kata's ``[ERROR] ...`` text.
    503  the model is not loaded yet (or failed to load, or the server is shutting down).

Serving
    The engine loads once, in the lifespan (in a worker thread, by default in the background so that
    ``/healthz`` answers at once and ``/readyz`` says when the model is there). Inference never runs on the
    event loop: a micro-batcher collects the cases of concurrent requests for up to ``max_wait_ms`` (or
    until ``max_batch_size`` cases) and runs them as one ``engine.predict`` call in one inference thread;
    ``decode.greedy_decode`` groups the prompts by length, so that call is one forward pass per shape, and
    decodes a case alone in its group speculatively (``Settings.speculative``; same answer, fewer passes).
    On shutdown the server stops taking new cases, answers the queued ones, then stops the thread.
"""

import asyncio
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lottogpt import formats, kata
from lottogpt.inference import Engine, Prediction
from lottogpt.registry import open_engine

log = logging.getLogger("lottogpt.serving")

EngineFactory = Callable[[], Engine]


class Settings(BaseModel):
    """What the server is allowed to do; every cap is named in the error that enforces it."""

    model_config = ConfigDict(frozen=True)

    engine: Literal["model", "reference"] = "model"
    model: str = "models/checkpoint"
    device: str = "auto"
    max_batch_size: int = Field(64, ge=1, description="cases in one forward pass")
    max_wait_ms: float = Field(5.0, ge=0, description="how long the first queued case waits for company")
    max_cases: int = Field(64, ge=1, description="cases in one /v1/predict request")
    max_tickets: int = Field(100, ge=1, description="tickets in one case, whatever the engine")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="request body size")
    background_load: bool = Field(True, description="serve /healthz while the model loads (else block startup)")
    speculative: bool = Field(True, description="decode a case alone in its batch speculatively (same answer)")


# ---------------------------------------------------------------------------------------------
# Micro-batching
# ---------------------------------------------------------------------------------------------


class NotReadyError(RuntimeError):
    """The engine is not (or no longer) taking cases."""


@dataclass
class _Job:
    cases: list[kata.Case]
    future: asyncio.Future
    queued_at: float


@dataclass
class BatchStats:
    batches: int = 0
    cases: int = 0
    largest_batch: int = 0


class MicroBatcher:
    """Collects the cases of concurrent requests into one ``engine.predict`` call in one worker thread."""

    def __init__(self, engine: Engine, max_batch_size: int, max_wait_ms: float) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.stats = BatchStats()
        self._pending: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lottogpt-inference")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lottogpt-batcher")

    async def submit(self, cases: list[kata.Case]) -> list[Prediction]:
        if self._closing or self._task is None:
            raise NotReadyError("the server is shutting down")
        loop = asyncio.get_running_loop()
        job = _Job(cases, loop.create_future(), loop.time())
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def close(self) -> None:
        """Answer what is queued, then stop the worker thread."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    def _queued_cases(self) -> int:
        return sum(len(job.cases) for job in self._pending)

    async def _gather(self) -> None:
        """Wait until the oldest job has waited ``max_wait`` or a full batch is queued."""
        loop = asyncio.get_running_loop()
        deadline = self._pending[0].queued_at + self.max_wait
        while not self._closing and self._queued_cases() < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Job]:
        jobs = [self._pending.popleft()]
        size = len(jobs[0].cases)
        while self._pending and size + len(self._pending[0].cases) <= self.max_batch_size:
            size += len(self._pending[0].cases)
            jobs.append(self._pending.popleft())
        return [job for job in jobs if not job.future.done()]  # a client that went away is skipped

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather()
            jobs = self._take()
            if jobs:
                await self._execute(jobs)

    async def _predict(self, cases: list[kata.Case]) -> list[Prediction]:
        loop = asyncio.get_running_loop()
        self.stats.batches += 1
        self.stats.cases += len(cases)
        self.stats.largest_batch = max(self.stats.largest_batch, len(cases))
        return await loop.run_in_executor(self._executor, self.engine.predict, cases)

    async def _execute(self, jobs: list[_Job]) -> None:
        cases = [case for job in jobs for case in job.cases]
        try:
            predictions = await self._predict(cases)
        except Exception as error:  # one bad job must not fail the others: retry them one by one
            if len(jobs) == 1:
                log.exception("inference failed")
                _settle(jobs[0].future, error=error)
                return
            for job in jobs:
                await self._execute([job])
            return
        start = 0
        for job in jobs:
            _settle(job.future, result=predictions[start:start + len(job.cases)])
            start += len(job.cases)


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# ---------------------------------------------------------------------------------------------
# Schemas
# ---------------------------------------------------------------------------------------------


def _lotto(function: Callable[..., Any], *args: Any) -> Any:
    """Run a kata check; its ``LottoError`` becomes a validation error whose message is the kata's."""
    try:
        return function(*args)
    except kata.LottoError as error:
        raise PydanticCustomError("lotto", str(error)) from None


_NUMBER_SCHEMA = {"type": "integer", "minimum": kata.NUMBER_MIN, "maximum": kata.NUMBER_MAX}
_SIX_SCHEMA = {"type": "array", "items": _NUMBER_SCHEMA, "minItems": kata.NUMBERS_PER_TICKET,
               "maxItems": kata.NUMBERS_PER_TICKET, "uniqueItems": True}

Number = Annotated[StrictInt, AfterValidator(lambda n: _lotto(kata.validate_bonus, n, ())),
                   WithJsonSchema(_NUMBER_SCHEMA)]
Ticket = Annotated[list[StrictInt], AfterValidator(lambda t: list(_lotto(kata.validate_numbers, t))),
                   WithJsonSchema({**_SIX_SCHEMA, "description": "six unique numbers in 1..45"})]
Winning = Annotated[list[StrictInt], AfterValidator(lambda t: list(_lotto(kata.validate_numbers, t, "당첨 번호"))),
                    WithJsonSchema({**_SIX_SCHEMA, "description": "the six winning numbers"})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_bonus(bonus: int, winning: list[int]) -> None:
    _lotto(kata.validate_bonus, bonus, winning)


@dataclass
class Schemas:
    """The request models of one app (their caps come from its settings)."""

    case: type[BaseModel]
    batch: type[BaseModel]
    single: type[BaseModel]
    play: type[BaseModel]


def build_schemas(settings: Settings) -> Schemas:
    max_tickets, max_cases = settings.max_tickets, settings.max_cases

    def check_count(n: int) -> None:
        if n < 1:
            raise PydanticCustomError("lotto", "[ERROR] 로또를 한 장 이상 구매해야 합니다.")
        if n > max_tickets:
            raise PydanticCustomError(
                "too_many_tickets", "[ERROR] 한 번에 {limit}장까지 구매할 수 있습니다 "
                "(at most {limit} tickets per case, got {got})", {"limit": max_tickets, "got": n})

    tickets_field = Field(description=f"1..{max_tickets} tickets (the model's trained range applies too)",
                          json_schema_extra={"minItems": 1, "maxItems": max_tickets})

    class CaseIn(_Strict):
        """One case in the ``predict`` JSON form."""

        tickets: list[Ticket] = tickets_field
        winning: Winning
        bonus: Number

        @field_validator("tickets")
        @classmethod
        def _count(cls, tickets: list[list[int]]) -> list[list[int]]:
            check_count(len(tickets))
            return tickets

        @model_validator(mode="after")
        def _bonus_not_winning(self) -> "CaseIn":
            _check_bonus(self.bonus, self.winning)
            return self

    class PredictOne(CaseIn):
        """One case, with options."""

        check: StrictBool = Field(False, description="also answer with the reference program and compare")
        show_work: StrictBool = Field(False, description="include the model's work lines")

    class PredictBatch(_Strict):
        """Several cases, answered in order."""

        cases: list[CaseIn] = Field(description=f"1..{max_cases} cases",
                                    json_schema_extra={"minItems": 1, "maxItems": max_cases})
        check: StrictBool = False
        show_work: StrictBool = False

        @field_validator("cases")
        @classmethod
        def _count(cls, cases: list) -> list:
            if not cases:
                raise PydanticCustomError("no_cases", "at least one case is needed")
            if len(cases) > max_cases:
                raise PydanticCustomError("too_many_cases", "at most {limit} cases per request, got {got}",
                                          {"limit": max_cases, "got": len(cases)})
            return cases

    class PlayIn(_Strict):
        """The kata's three inputs; the server buys the tickets."""

        amount: StrictInt = Field(description="purchase amount in won, a multiple of 1,000",
                                  json_schema_extra={"minimum": kata.TICKET_PRICE,
                                                     "maximum": kata.TICKET_PRICE * max_tickets,
                                                     "multipleOf": kata.TICKET_PRICE})
        winning: Winning
        bonus: Number
        seed: StrictInt | None = Field(None, ge=0, le=2**63 - 1, description="draw the same tickets again")
        check: StrictBool = False
        show_work: StrictBool = False

        @field_validator("amount")
        @classmethod
        def _amount(cls, amount: int) -> int:
            amount = _lotto(kata.parse_amount, str(amount))
            check_count(amount // kata.TICKET_PRICE)
            return amount

        @model_validator(mode="after")
        def _bonus_not_winning(self) -> "PlayIn":
            _check_bonus(self.bonus, self.winning)
            return self

    return Schemas(CaseIn, PredictBatch, PredictOne, PlayIn)


class Answer(BaseModel):
    """Six statistics lines, and what they say when they are in the kata's form."""

    output: str
    counts: dict[str, int] | None
    return_rate: str | None
    format_valid: bool


class CaseResult(Answer):
    model_version: str
    engine: str
    n_tickets: int
    tool_used: bool = False
    work: list[str] | None = None
    reference: Answer | None = Field(None, description="with check: the reference program's answer")
    agrees: bool | None = Field(None, description="with check: the output equals the reference's")
    lines_agree: list[bool] | None = Field(None, description="with check: each of the six lines")


class BatchResult(BaseModel):
    results: list[CaseResult]


class PlayResult(CaseResult):
    amount: int
    tickets: list[list[int]]
    winning: list[int]
    bonus: int
    seed: int


class Status(BaseModel):
    status: str
    detail: str | None = None
    model_version: str | None = None


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


@dataclass
class ServerState:
    settings: Settings
    factory: EngineFactory
    engine: Engine | None = None
    version: str | None = None
    batcher: MicroBatcher | None = None
    error: str | None = None
    stopping: bool = False
    loaded_at: float | None = None
    load_seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self.batcher is not None and not self.stopping

    async def load(self) -> None:
        # a lifespan may run more than once on one app (test clients do): each run starts afresh
        self.engine = self.version = self.batcher = self.error = None
        self.stopping = False
        started = time.perf_counter()
        try:
            engine = await asyncio.to_thread(self.factory)
            version = await asyncio.to_thread(engine.version)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            log.exception("the engine failed to load")
            return
        self.engine, self.version = engine, version
        self.batcher = MicroBatcher(engine, self.settings.max_batch_size, self.settings.max_wait_ms)
        self.batcher.start()
        self.load_seconds = round(time.perf_counter() - started, 3)
        self.loaded_at = time.time()
        log.info("engine %s ready (%s) in %.2f s", engine.name, version, self.load_seconds)


class ServiceUnavailableError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BodySizeLimit:
    """Answer 413 to a request body over ``max_bytes``, whether it is announced or chunked."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await self._reject(send, 400, "the Content-Length header is not a number")
                return
            if int(length) > self.max_bytes:
                await self._reject(send, 413, self._too_large(int(length)))
                return
            await self.app(scope, receive, send)
            return
        body, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._reject(send, 413, self._too_large(total, more=True))
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int, more: bool = False) -> str:
        got = f"more than {size:,}" if more else f"{size:,}"
        return f"the request body is too large: {got} bytes, the limit is {self.max_bytes:,} bytes"

    @staticmethod
    async def _reject(send: Callable, status: int, detail: str) -> None:
        response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


def _answer(prediction: Prediction | kata.Result) -> Answer:
    if isinstance(prediction, kata.Result):
        return Answer(output=prediction.output, counts=dict(prediction.counts),
                      return_rate=prediction.return_rate, format_valid=True)
    return Answer(output=prediction.output, counts=prediction.counts, return_rate=prediction.return_rate,
                  format_valid=prediction.format_valid)


def case_result(case: kata.Case, prediction: Prediction, state: ServerState, check: bool,
                show_work: bool) -> dict:
    """The JSON answer for one case (the shape of :class:`CaseResult`)."""
    data = _answer(prediction).model_dump()
    data.update(model_version=state.version, engine=state.engine.name, n_tickets=len(case.tickets),
                tool_used=prediction.tool_used)
    if show_work:
        data["work"] = list(prediction.work)
    if check:
        expected = kata.score(case)
        got = prediction.output.split("\n")
        data["reference"] = _answer(expected).model_dump()
        data["agrees"] = prediction.output == expected.output
        data["lines_agree"] = [i < len(got) and got[i] == line for i, line in enumerate(expected.lines)]
    return data


def _loc(loc: tuple | list) -> list:
    """The error location without the union's tag: ``body.single.tickets`` reads ``body.tickets``."""
    loc = list(loc)
    if len(loc) > 1 and loc[0] == "body" and loc[1] in ("single", "batch"):
        del loc[1]
    return loc


def _unprocessable(errors: list[dict]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(source: EngineFactory | str | Path | None = None, settings: Settings | None = None) -> FastAPI:
    """The server app. ``source``: a zero-argument engine factory, or a model path/URI (default: settings)."""
    settings = settings or Settings()
    if source is None or isinstance(source, (str, Path)):
        model = str(source) if source is not None else settings.model
        engine_name, device, speculative = settings.engine, settings.device, settings.speculative

        def factory() -> Engine:
            return open_engine(engine_name, model, device, speculative)
    else:
        factory = source
    state = ServerState(settings, factory)
    schemas = build_schemas(settings)

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

    app = FastAPI(title="lottogpt", version="1", lifespan=lifespan,
                  description="A tiny GPT that imitates the lotto kata. 422: invalid content "
                              "(kata [ERROR] messages where they apply); 413: body too large; "
                              "503: the model is not loaded yet.")
    app.state.lotto = state
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"type": e.get("type"), "loc": _loc(e.get("loc", ())), "msg": e.get("msg")}
                  for e in error.errors()]
        return _unprocessable(errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8...): a content error too
            return _unprocessable([{"type": "json_invalid", "loc": ["body"],
                                    "msg": f"the body could not be read as JSON: {error.detail}"}])
        return await http_exception_handler(request, error)

    @app.exception_handler(ServiceUnavailableError)
    async def _unavailable(request: Request, error: ServiceUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=503, headers={"Retry-After": "1"})

    def ready_state() -> ServerState:
        if state.stopping:
            raise ServiceUnavailableError("the server is shutting down")
        if state.error is not None:
            raise ServiceUnavailableError(f"the model failed to load: {state.error}")
        if not state.ready:
            raise ServiceUnavailableError("the model is not loaded yet")
        return state

    async def answer(cases: list[kata.Case]) -> list[Prediction]:
        try:
            return await ready_state().batcher.submit(cases)
        except NotReadyError as error:
            raise ServiceUnavailableError(str(error)) from None

    def range_errors(cases: list[kata.Case], locs: list[list]) -> list[dict]:
        errors = []
        for case, loc in zip(cases, locs, strict=True):
            try:
                state.engine.check(case)
            except kata.LottoError as error:
                errors.append({"type": "lotto", "loc": loc, "msg": str(error)})
        return errors

    responses = {413: {"description": "request body too large"}, 503: {"description": "model not loaded"}}
    predict_body = Annotated[
        Annotated[schemas.single, Tag("single")] | Annotated[schemas.batch, Tag("batch")],
        Discriminator(lambda v: ("batch" if "cases" in v else "single") if isinstance(v, dict) else (
            "batch" if isinstance(v, schemas.batch) else "single" if isinstance(v, schemas.single) else None),
            custom_error_type="case_or_batch",
            custom_error_message="expected one case {tickets, winning, bonus} or a batch {cases: [...]}"),
        Body(),
    ]

    @app.post("/v1/predict", response_model=CaseResult | BatchResult, responses=responses)
    async def predict(body: predict_body) -> Any:
        """Answer one case, or a batch ``{"cases": [...]}`` in order."""
        ready_state()
        batch = isinstance(body, schemas.batch)
        items = body.cases if batch else [body]
        cases = [kata.Case.create(item.tickets, item.winning, item.bonus) for item in items]
        locs = [["body", "cases", i, "tickets"] for i in range(len(cases))] if batch else [["body", "tickets"]]
        errors = range_errors(cases, locs)
        if errors:
            return _unprocessable(errors)
        predictions = await answer(cases)
        results = [case_result(c, p, state, body.check, body.show_work)
                   for c, p in zip(cases, predictions, strict=True)]
        return {"results": results} if batch else results[0]

    @app.post("/v1/play", response_model=PlayResult, responses=responses)
    async def play(body: Annotated[schemas.play, Body()]) -> Any:
        """Buy ``amount`` won of random tickets, then answer for the winning numbers and the bonus."""
        ready_state()
        n = body.amount // kata.TICKET_PRICE
        errors = range_errors([kata.Case(((1, 2, 3, 4, 5, 6),) * n, (1, 2, 3, 4, 5, 6), 7)],
                              [["body", "amount"]])
        if errors:
            return _unprocessable(errors)
        seed = body.seed if body.seed is not None else secrets.randbits(63)
        rng = random.Random(seed)
        tickets = [kata.draw_ticket(rng) for _ in range(n)]
        case = kata.Case.create(tickets, body.winning, body.bonus)
        prediction = (await answer([case]))[0]
        data = case_result(case, prediction, state, body.check, body.show_work)
        data.update(amount=body.amount, tickets=[list(t) for t in case.tickets], winning=list(case.winning),
                    bonus=case.bonus, seed=seed)
        return data

    @app.get("/healthz", response_model=Status, response_model_exclude_none=True)
    async def healthz() -> dict:
        """The process is alive (whether or not the model is loaded)."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Status, response_model_exclude_none=True, responses={503: {"model": Status}})
    async def readyz() -> Any:
        """200 once the model is loaded; 503 while loading, after a failed load, and while stopping."""
        if state.ready:
            return {"status": "ready", "model_version": state.version}
        if state.stopping:
            body = {"status": "stopping"}
        elif state.error is not None:
            body = {"status": "failed", "detail": state.error}
        else:
            body = {"status": "loading"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.get("/info", responses={503: {"description": "model not loaded"}})
    async def info() -> dict:
        """The engine's info: model version, shape, params, data and tokenizer hashes, trained range."""
        ready = ready_state()
        stats = ready.batcher.stats
        return {**ready.engine.info(), "model_version": ready.version, "load_seconds": ready.load_seconds,
                "limits": {"max_tickets": settings.max_tickets, "max_cases": settings.max_cases,
                           "max_body_bytes": settings.max_body_bytes, "max_batch_size": settings.max_batch_size,
                           "max_wait_ms": settings.max_wait_ms, "format_max_tickets": formats.MAX_TICKETS},
                "batching": {"batches": stats.batches, "cases": stats.cases,
                             "largest_batch": stats.largest_batch}}

    return app
