"""The endpoints: ``/v1/predict``, ``/v1/play``, ``/v1/console`` (the playground's), health, readiness and info."""

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import Discriminator, Tag

from lottogpt import formats, kata
from lottogpt.inference import Prediction
from lottogpt.onnx_backend import backend_of
from lottogpt.serving.batching import NotReadyError
from lottogpt.serving.console import draw, read_console
from lottogpt.serving.schemas import (
    Answer,
    BatchResult,
    CaseResult,
    ConsoleIn,
    ConsoleResult,
    PlayResult,
    Schemas,
    Status,
)
from lottogpt.serving.state import ServerState, ServiceUnavailableError

RESPONSES = {413: {"description": "request body too large"}, 503: {"description": "model not loaded"}}


def unprocessable(errors: list[dict]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422)


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


def _drawn(case: kata.Case, seed: int | None) -> dict:
    return {"amount": case.amount, "tickets": [list(t) for t in case.tickets], "winning": list(case.winning),
            "bonus": case.bonus, "seed": seed}


def range_errors(state: ServerState, cases: list[kata.Case], locs: list[list]) -> list[dict]:
    """The engine's own limits (the model's trained ticket range), as 422 details at ``locs``."""
    errors = []
    for case, loc in zip(cases, locs, strict=True):
        try:
            state.engine.check(case)
        except kata.LottoError as error:
            errors.append({"type": "lotto", "loc": loc, "msg": str(error)})
    return errors


async def _answers(state: ServerState, cases: list[kata.Case]) -> list[Prediction]:
    try:
        return await state.ready_state().batcher.submit(cases)
    except NotReadyError as error:
        raise ServiceUnavailableError(str(error)) from None


def _predict_body(schemas: Schemas) -> Any:
    """One case or a batch ``{"cases": [...]}``, told apart by the ``cases`` key."""
    def which(value: Any) -> str | None:
        if isinstance(value, dict):
            return "batch" if "cases" in value else "single"
        return "batch" if isinstance(value, schemas.batch) else "single" if isinstance(value, schemas.single) else None

    return Annotated[
        Annotated[schemas.single, Tag("single")] | Annotated[schemas.batch, Tag("batch")],
        Discriminator(which, custom_error_type="case_or_batch",
                      custom_error_message="expected one case {tickets, winning, bonus} or a batch {cases: [...]}"),
        Body(),
    ]


def api_router(state: ServerState, schemas: Schemas) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=RESPONSES)
    predict_body = _predict_body(schemas)

    @router.post("/predict", response_model=CaseResult | BatchResult)
    async def predict(body: predict_body) -> Any:
        """Answer one case, or a batch ``{"cases": [...]}`` in order."""
        state.ready_state()
        batch = isinstance(body, schemas.batch)
        items = body.cases if batch else [body]
        cases = [kata.Case.create(item.tickets, item.winning, item.bonus) for item in items]
        locs = [["body", "cases", i, "tickets"] for i in range(len(cases))] if batch else [["body", "tickets"]]
        errors = range_errors(state, cases, locs)
        if errors:
            return unprocessable(errors)
        predictions = await _answers(state, cases)
        results = [case_result(c, p, state, body.check, body.show_work)
                   for c, p in zip(cases, predictions, strict=True)]
        return {"results": results} if batch else results[0]

    @router.post("/play", response_model=PlayResult)
    async def play(body: Annotated[schemas.play, Body()]) -> Any:
        """Buy ``amount`` won of random tickets, then answer for the winning numbers and the bonus."""
        state.ready_state()
        n = body.amount // kata.TICKET_PRICE
        errors = range_errors(state, [kata.Case(((1, 2, 3, 4, 5, 6),) * n, (1, 2, 3, 4, 5, 6), 7)],
                              [["body", "amount"]])
        if errors:
            return unprocessable(errors)
        tickets, seed = draw(n, body.seed)
        case = kata.Case.create(tickets, body.winning, body.bonus)
        prediction = (await _answers(state, [case]))[0]
        return {**case_result(case, prediction, state, body.check, body.show_work), **_drawn(case, seed)}

    @router.post("/console", response_model=ConsoleResult)
    async def console(body: Annotated[ConsoleIn, Body()]) -> Any:
        """The playground's fields as typed (``amount`` to draw, or ``tickets`` one a line): checked and shown work."""
        state.ready_state()
        purchase, errors = read_console(body, state.settings.max_tickets)
        if purchase is not None:
            field = "amount" if body.amount is not None else "tickets"
            errors = range_errors(state, [purchase.case], [["body", field]])
        if errors:
            return unprocessable(errors)
        case = purchase.case
        prediction = (await _answers(state, [case]))[0]
        return {**case_result(case, prediction, state, True, True), **_drawn(case, purchase.seed),
                "transcript": kata.render_transcript(case)}

    return router


def status_router(state: ServerState) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", response_model=Status, response_model_exclude_none=True)
    async def healthz() -> dict:
        """The process is alive (whether or not the model is loaded)."""
        return {"status": "ok"}

    @router.get("/readyz", response_model=Status, response_model_exclude_none=True,
                responses={503: {"model": Status}})
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

    @router.get("/info", responses={503: {"description": "model not loaded"}})
    async def info() -> dict:
        """The engine's info: model version, shape, params, data and tokenizer hashes, trained range."""
        ready = state.ready_state()
        stats, settings = ready.batcher.stats, ready.settings
        return {**ready.engine.info(), "model_version": ready.version, "backend": backend_of(ready.engine),
                "load_seconds": ready.load_seconds,
                "limits": {"max_tickets": settings.max_tickets, "max_cases": settings.max_cases,
                           "max_body_bytes": settings.max_body_bytes, "max_batch_size": settings.max_batch_size,
                           "max_wait_ms": settings.max_wait_ms, "format_max_tickets": formats.MAX_TICKETS},
                "batching": {"batches": stats.batches, "cases": stats.cases,
                             "largest_batch": stats.largest_batch}}

    return router
