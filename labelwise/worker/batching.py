"""Micro-batching inside one worker process.

Messages arrive one at a time (``put`` from Celery's consumer thread, or ``submit`` to wait for the
outcome); one batcher thread takes whatever has arrived, up to ``max_batch``, and hands it to ``handle``
in one go: a message alone is processed at once, a burst forms batches while the previous batch is being
processed. ``handle`` returns one outcome per item, in order (a result, or the exception that item's
``submit`` raises).
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
    def __init__(self, handle: Callable[[list[Item]], list[Result | Exception]], *, max_batch: int) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result] | None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.items = 0

    def put(self, item: Item) -> None:
        """Process ``item`` in a coming batch; ``handle`` deals with its outcome."""
        self._ensure_thread()
        self._queue.put((item, None))

    def submit(self, item: Item) -> Result:
        """Process ``item`` in the next batch and return its outcome (or raise its exception)."""
        self._ensure_thread()
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future.result()

    def pending(self) -> int:
        """Items waiting for a batch (approximate)."""
        return self._queue.qsize()

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

    def _process(self, batch: list[tuple[Item, Future[Result] | None]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            outcomes = self._handle([item for item, _ in batch])
        except BaseException as e:  # a whole-batch error: every waiting caller sees it
            log.exception("a batch of %d failed as a whole", len(batch))
            outcomes = [e] * len(batch)  # type: ignore[list-item]
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future is None:
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
