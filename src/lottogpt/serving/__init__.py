"""The HTTP server: a FastAPI app that answers lotto cases with an engine (the model or the kata).

Endpoints
    ``GET /``             the playground: the kata in a browser, with the model's work and the check.
    ``POST /v1/predict``  one case ``{"tickets": [[6 ints], ...], "winning": [6 ints], "bonus": n}`` or a
                          batch ``{"cases": [case, ...]}``; ``"check": true`` adds the reference answer and
                          the agreement, ``"show_work": true`` the model's work lines.
    ``POST /v1/play``     ``{"amount": 8000, "winning": [...], "bonus": n, "seed": s}``: the server draws the
                          tickets (``kata.draw_ticket``, ``random.Random(seed)``) and answers as above.
    ``POST /v1/console``  the playground's fields as typed (``{"amount": "8000", "winning": "1,2,3,4,5,6",
                          "bonus": "7"}``, or ``"tickets"`` one a line instead of the amount), read by the
                          console's own parsers; answered with check and work.
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
    The engine loads once, in the lifespan, on the inference thread (by default in the background so that
    ``/healthz`` answers at once and ``/readyz`` says when the model is there). Inference never runs on the
    event loop: a micro-batcher collects the cases that queued while the engine was busy (or waits up to
    ``max_wait_ms`` for more, 0 by default: a lone case would only lose time), at most ``max_batch_size``
    of them, and runs them as one ``engine.predict`` call on that same thread (one
    thread for all torch work: see ``batching``); ``decode.greedy_decode`` groups the prompts by length, so
    that call is one forward pass per shape, and decodes a case alone in its group speculatively
    (``Settings.speculative``; same answer, fewer passes). On shutdown the server stops taking new cases,
    answers the queued ones, then stops the thread.

Modules: ``settings``, ``schemas``, ``batching``, ``middleware``, ``state``, ``console``, ``routes``, ``page``
and ``app`` (:func:`create_app`).
"""

from lottogpt.serving.app import create_app, engine_factory
from lottogpt.serving.batching import BatchStats, MicroBatcher, NotReadyError, inference_thread
from lottogpt.serving.middleware import BodySizeLimit
from lottogpt.serving.routes import case_result
from lottogpt.serving.schemas import (
    Answer,
    BatchResult,
    CaseResult,
    ConsoleIn,
    ConsoleResult,
    PlayResult,
    Schemas,
    Status,
    build_schemas,
)
from lottogpt.serving.settings import EngineFactory, Settings
from lottogpt.serving.state import ServerState, ServiceUnavailableError

__all__ = [
    "Answer", "BatchResult", "BatchStats", "BodySizeLimit", "CaseResult", "ConsoleIn", "ConsoleResult",
    "EngineFactory", "MicroBatcher", "NotReadyError", "PlayResult", "Schemas", "ServerState",
    "ServiceUnavailableError", "Settings", "Status", "build_schemas", "case_result", "create_app",
    "engine_factory", "inference_thread",
]
