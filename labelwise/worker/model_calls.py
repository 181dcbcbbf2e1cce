"""The model calls running in a worker process, so that a stopping worker exits only once none runs.

The lanes, the label builder and the refiner call the model (onnxruntime) from daemon threads. A worker
stopped with SIGTERM while one of them was inside a call finalized its interpreter around it, and the
process aborted (``terminate called without an active exception``, SIGABRT) instead of exiting 0: a
supervisor saw a crash. Nothing was lost (Celery had given the unacknowledged messages back), but a crash
on every stop hides the real ones. At shutdown the worker closes the gate: a new call raises
``RetryableError`` (its batch's messages are given back, a background build is scheduled again by the next
message that needs it), and the worker waits, for a bounded time, until the running ones have returned.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from labelwise.errors import RetryableError


class ModelCalls:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._closed = False

    @contextmanager
    def call(self) -> Iterator[None]:
        """Around one model call; raises RetryableError once the worker is stopping."""
        with self._cond:
            if self._closed:
                raise RetryableError("the worker is stopping")
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Refuse new calls; wait up to ``timeout_s`` for the running ones. True when none runs."""
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._running == 0, timeout=timeout_s)


MODEL_CALLS = ModelCalls()
