"""Micro-batching inside one worker process.

Celery's thread pool runs one task per message; each task hands its message to the ``Batcher`` and
waits. One batcher thread takes whatever has arrived (up to ``max_batch``) and processes it in one go:
a message alone is processed at once, a burst forms batches while the previous batch is being encoded.
Each task returns, and Celery acks its message, only after the batch is committed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """``handle`` returns one outcome per item: its result, or the exception that item's task raises."""

    def __init__(self, handle: Callable[[list[Item]], list[Result | Exception]], *, max_batch: int) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.items = 0

    def submit(self, item: Item) -> Result:
        """Process ``item`` in the next batch and return its result (or raise the batch's error)."""
        self._ensure_thread()
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future.result()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="labelwise-batcher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]  # blocks while idle
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._process(batch)

    def _process(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = self._handle([item for item, _ in batch])
        except BaseException as e:  # a whole-batch error (an outage): every waiting task sees it and retries
            for _, future in batch:
                future.set_exception(e)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
