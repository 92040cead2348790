"""Micro-batching: the cases of concurrent requests share one ``engine.predict`` call on the inference thread.

All of the server's torch work (loading the engine and every ``predict``) runs on one thread,
:func:`inference_thread`. torch's CPU kernels run on OpenMP, and OpenMP keeps one team of worker
threads per calling thread: an engine loaded on one thread and run on another makes two teams, and
once the teams hold more threads than there are cores, GNU OpenMP stops spin-waiting between parallel
regions, which made every forward pass several times slower (issue 18; the figures are in
benchmarks/README.md).
"""

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lottogpt import kata
from lottogpt.inference import Engine, Prediction

log = logging.getLogger("lottogpt.serving")


def inference_thread() -> ThreadPoolExecutor:
    """The one thread that loads the engine and runs it (see the module docstring for why one)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lottogpt-inference")


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
    """Collects the cases of concurrent requests into one ``engine.predict`` call on ``executor``'s thread.

    The batcher owns ``executor`` from here on and shuts it down in :meth:`close`.
    """

    def __init__(self, engine: Engine, max_batch_size: int, max_wait_ms: float,
                 executor: ThreadPoolExecutor | None = None) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.stats = BatchStats()
        self._pending: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._executor = executor or inference_thread()
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
