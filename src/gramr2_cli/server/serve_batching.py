"""serve's micro-batching (`serve.py`): pairs from concurrent requests become engine calls of at most
`serve.max_batch` pairs; a request's chunks that nobody waits for any more (504, disconnect) are dropped."""

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class MicroBatcher:
    """Collects pairs from concurrent requests; one `fn(pairs)` call (in a worker thread) per batch of at most
    `max_batch` pairs: a request with more is split into chunks of `max_batch`, queued one after another, so no
    engine call is larger, other requests get their turn in between, and the rest of a request that was
    cancelled (its client got 504) is never queued."""

    def __init__(self, fn: Callable[[list[dict]], list], max_batch: int, max_wait_ms: int):
        self.fn, self.max_batch, self.max_wait = fn, max(1, max_batch), max(0, max_wait_ms) / 1000
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stats = {"requests": 0, "pairs": 0, "batches": 0, "largest_batch": 0}
        self.busy = 0                    # jobs taken from the queue whose results are not yet delivered
        # engine calls run in the batcher's own thread: request threads of the default pool may all be waiting
        # on this batcher (the group path judges from a worker thread), which would otherwise deadlock it
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="gramr2-engine")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop, self.queue = loop, asyncio.Queue()
            self.task = loop.create_task(self._worker())

    async def stop(self, drain_s: float = 0.0) -> None:
        """Stop the worker; first, up to `drain_s` seconds for queued and running batches to finish (graceful
        shutdown: requests in flight get their results)."""
        deadline = time.monotonic() + drain_s
        while self.queue is not None and (self.busy or not self.queue.empty()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, RuntimeError):
                pass
            self.task = None

    async def submit(self, pairs: list[dict]) -> list:
        """The results for `pairs`, in order, judged in chunks of at most `max_batch`, one after another: other
        requests queued meanwhile are taken between two chunks. Cancelling the caller drops its chunks."""
        self.start()
        self.stats["requests"] += 1
        loop = asyncio.get_running_loop()
        out: list = []
        for k in range(0, len(pairs), self.max_batch):
            fut = loop.create_future()
            await self.queue.put((pairs[k:k + self.max_batch], fut))
            try:
                out += await fut
            except asyncio.CancelledError:
                fut.cancel()      # the worker skips a cancelled chunk (`_next`)
                raise
        return out

    async def _next(self, timeout: float | None) -> tuple[list[dict], asyncio.Future] | None:
        """The next queued chunk whose request still waits (None after `timeout` s; None = wait for one)."""
        deadline = None if timeout is None else self.loop.time() + timeout
        while True:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = None if deadline is None else deadline - self.loop.time()
                if left is not None and left <= 0:
                    return None
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    return None
            if not job[1].done():
                return job

    async def _collect(self) -> list[tuple[list[dict], asyncio.Future]]:
        held, self._held = self._held, None
        jobs = [held if held is not None and not held[1].done() else await self._next(None)]
        size = len(jobs[0][0])
        deadline = self.loop.time() + self.max_wait
        while size < self.max_batch:
            job = await self._next(max(0.0, deadline - self.loop.time()))
            if job is None:
                break
            if size + len(job[0]) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            size += len(job[0])
        return jobs

    async def _worker(self) -> None:
        self._held = None    # a job that did not fit into the last batch opens the next one
        while True:
            jobs = await self._collect()
            self.busy = len(jobs)
            pairs = [p for ps, _ in jobs for p in ps]
            try:
                results = await self.loop.run_in_executor(self.executor, self.fn, pairs)
            except Exception as e:  # noqa: BLE001 - the engine failed: each waiting request gets it; serving goes on
                for _, f in jobs:
                    if not f.done():
                        f.set_exception(e)
                self.busy = 0
                continue
            self.stats["batches"] += 1
            self.stats["pairs"] += len(pairs)
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(pairs))
            k = 0
            for ps, f in jobs:
                if not f.done():
                    f.set_result(results[k:k + len(ps)])
                k += len(ps)
            self.busy = 0
