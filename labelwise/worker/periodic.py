"""Periodic duties of a worker process that one process at a time performs (the reconciler, the retention
purge): a thread runs a pass every ``interval_s``; the pass itself takes (or renews) its lease row in SQL
and does nothing in a process that does not hold it; the lease is given up at a clean stop so another
worker takes over at once."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid

from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import LabelwiseError

log = logging.getLogger(__name__)


class LeasedLoop:
    """Subclasses say what one pass does (``run_pass``) and how their lease is given up (``release``)."""

    name = "periodic"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sessions: sessionmaker[Session] | None = None

    def run_pass(self, sessions: sessionmaker[Session]) -> None:
        raise NotImplementedError

    def release(self, sessions: sessionmaker[Session]) -> None:
        raise NotImplementedError

    def start(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._thread = threading.Thread(target=self._run, name=f"labelwise-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sessions is not None:
            with contextlib.suppress(LabelwiseError):
                self.release(self._sessions)

    def _run(self) -> None:
        assert self._sessions is not None
        while not self._stop.wait(self.interval_s):
            try:
                self.run_pass(self._sessions)
            except LabelwiseError as e:
                log.warning("%s: %s", self.name, e.message)
            except Exception:  # the thread must outlive any one pass
                log.exception("%s: pass failed", self.name)
