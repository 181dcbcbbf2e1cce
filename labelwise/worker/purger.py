"""The retention purge's thread in a worker process: every ``purge_interval_s``, if this process holds the
purge lease, remove what is past its retention (labelwise.pipeline.lifecycle.purge) in small batches.

It runs beside classification and never in its way: each batch is one short transaction on old rows that
no message touches, with a pause between batches."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid

from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import LabelwiseError
from labelwise.pipeline import lifecycle
from labelwise.settings import Settings

log = logging.getLogger(__name__)


class Purger:
    def __init__(self, settings: Settings) -> None:
        self.policy = lifecycle.Retention.from_settings(settings)
        self.interval_s = settings.purge_interval_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sessions: sessionmaker[Session] | None = None

    def start(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._thread = threading.Thread(target=self._run, name="labelwise-purge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sessions is not None:
            with contextlib.suppress(LabelwiseError):
                lifecycle.release_purge(self._sessions, holder=self.holder)

    def _run(self) -> None:
        assert self._sessions is not None
        while not self._stop.wait(self.interval_s):
            try:
                lifecycle.purge(self._sessions, holder=self.holder, policy=self.policy, stop=self._stop.is_set)
            except LabelwiseError as e:
                log.warning("purge: %s", e.message)
            except Exception:  # the thread must outlive any one pass
                log.exception("purge: pass failed")
