"""The reconciler's thread in a worker process: every few seconds, if this process holds the lease,
publish again the jobs and deliveries that were committed but never reached (or got lost in) the broker
(labelwise.pipeline.reconciling)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid

from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import LabelwiseError
from labelwise.pipeline import reconciling
from labelwise.settings import Settings
from labelwise.worker.resources import Publisher

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.policy = reconciling.Policy(
            grace_s=settings.reconcile_interval_s,
            stuck_after_s=settings.reconcile_stuck_after_s,
            lease_ttl_s=max(3 * settings.reconcile_interval_s, 5.0),
        )
        self.interval_s = settings.reconcile_interval_s
        self.publisher = publisher
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sessions: sessionmaker[Session] | None = None

    def start(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._thread = threading.Thread(target=self._run, name="labelwise-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sessions is not None:
            with contextlib.suppress(LabelwiseError):
                reconciling.release(self._sessions, holder=self.holder)

    def _run(self) -> None:
        assert self._sessions is not None
        while not self._stop.wait(self.interval_s):
            try:
                reconciling.reconcile(
                    self._sessions,
                    holder=self.holder,
                    policy=self.policy,
                    publish_job=self.publisher.job,
                    publish_delivery=self.publisher.delivery,
                )
            except LabelwiseError as e:
                log.warning("reconciler: %s", e.message)
            except Exception:  # the thread must outlive any one pass
                log.exception("reconciler: pass failed")
