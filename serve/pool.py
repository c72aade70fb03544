"""The model's thread pool with a bounded queue: model calls never run on the event loop, and when
``workers + queue`` calls are already running or waiting a new one is refused at once (HTTP 503 with
``Retry-After``; a live session gets a ``busy`` error) instead of piling up latency for everyone."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar, TypeVarTuple

from serve import metrics

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Busy(Exception):
    """Every worker is busy and the queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the model is busy")
        self.retry_after = retry_after
        self.message = (
            f"the server is at capacity (every model worker busy and the queue full); retry in {retry_after} s"
        )


class ModelPool:
    """``workers`` threads and at most ``queue`` calls waiting for one."""

    def __init__(self, workers: int, queue: int, *, retry_after: int = 1) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got {workers} and {queue}")
        self.capacity = workers + queue
        self.retry_after = retry_after
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._held = 0

    @property
    def held(self) -> int:
        """Calls running or waiting now."""
        return self._held

    def start(self) -> None:
        """Start the worker threads (the app's startup)."""
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="podskazka-model")

    def shutdown(self) -> None:
        """Stop taking calls; queued ones are cancelled, running ones finish (the app's shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``fn(*args)`` in the pool; raises :class:`Busy` at once when it is full. A call whose
        caller went away still holds its place until its thread is done with it."""
        if self._executor is None:
            raise RuntimeError("the model pool is not running")
        with self._lock:
            if self._held >= self.capacity:
                metrics.rejected()
                raise Busy(self.retry_after)
            self._held += 1
        try:
            # the caller's context (request id for log lines) goes with the call
            call = functools.partial(fn, *args)
            future: Future[T] = self._executor.submit(contextvars.copy_context().run, call)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self._held -= 1
