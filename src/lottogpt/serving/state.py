"""One server's engine, its loading and its readiness."""

import asyncio
import logging
import time
from dataclasses import dataclass

from lottogpt.inference import Engine
from lottogpt.serving.batching import MicroBatcher, inference_thread
from lottogpt.serving.settings import EngineFactory, Settings

log = logging.getLogger("lottogpt.serving")


class ServiceUnavailableError(Exception):
    """Answered 503 with ``detail`` and ``Retry-After``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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

    def ready_state(self) -> "ServerState":
        """This state, or the 503 that says why it cannot answer yet."""
        if self.stopping:
            raise ServiceUnavailableError("the server is shutting down")
        if self.error is not None:
            raise ServiceUnavailableError(f"the model failed to load: {self.error}")
        if not self.ready:
            raise ServiceUnavailableError("the model is not loaded yet")
        return self

    async def load(self) -> None:
        """Load the engine on the thread that will run it (``batching.inference_thread``: one OpenMP team)."""
        # a lifespan may run more than once on one app (test clients do): each run starts afresh
        self.engine = self.version = self.batcher = self.error = None
        self.stopping = False
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        thread = inference_thread()
        try:
            engine = await loop.run_in_executor(thread, self.factory)
            version = await loop.run_in_executor(thread, engine.version)
        except Exception as error:
            thread.shutdown(wait=False)
            self.error = f"{type(error).__name__}: {error}"
            log.exception("the engine failed to load")
            return
        self.engine, self.version = engine, version
        self.batcher = MicroBatcher(engine, self.settings.max_batch_size, self.settings.max_wait_ms, thread)
        self.batcher.start()
        self.load_seconds = round(time.perf_counter() - started, 3)
        self.loaded_at = time.time()
        log.info("engine %s ready (%s) in %.2f s", engine.name, version, self.load_seconds)
