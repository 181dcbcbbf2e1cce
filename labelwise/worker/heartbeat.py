"""A worker process's heartbeat: a row in SQL refreshed while its consumer runs (read by /readyz)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from labelwise import pipeline
from labelwise.errors import RetryableError

log = logging.getLogger(__name__)


class Heartbeat:
    """A daemon thread that records ``name`` as alive every ``interval_s`` until ``stop``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        name: str,
        host: str,
        pid: int,
        interval_s: float,
        messages: Callable[[], int],
    ) -> None:
        self.sessions, self.name, self.host, self.pid = sessions, name, host, pid
        self.interval_s, self.messages = interval_s, messages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labelwise-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and delete the row (a worker that shut down is not alive)."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            pipeline.worker_stopped(self.sessions, name=self.name)
        except RetryableError as e:  # the row goes stale by itself
            log.warning("heartbeat: could not remove %s: %s", self.name, e.message)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pipeline.heartbeat(
                    self.sessions, name=self.name, host=self.host, pid=self.pid, messages=self.messages()
                )
            except RetryableError as e:  # /readyz will say so; keep trying
                log.warning("heartbeat: %s", e.message)
            except Exception:  # never let the thread die: readiness would then lie
                log.exception("heartbeat failed")
            self._stop.wait(self.interval_s)
