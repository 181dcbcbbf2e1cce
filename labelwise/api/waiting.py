"""Waiting for the worker without holding a thread: previews and jobs are polled in SQL between asyncio
sleeps, and each tenant may have only so many waits open at once in this process (``preview_max_waits``,
``sync_max_waits``). The ``POST /v1/classify`` calls waiting in one process share their polls
(``JobPolls``): one query reads the status of every job waited on, and a call whose poll comes soon after
reuses its answer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from labelwise import pipeline
from labelwise.api.deps import State
from labelwise.errors import BrokerUnavailableError, LabelwiseError
from labelwise.labelset import LabelSetDocument
from labelwise.pipeline import previewing
from labelwise.worker.previews import enqueue_preview

POLL_S = 0.02
MAX_POLLED = 500  # jobs one shared poll asks about


class TooManyWaits(LabelwiseError):
    """The tenant already has ``limit`` calls of one kind waiting in this process."""

    code = "rate_limited"


class WaitCap:
    """Counts open waits per tenant; ``hold`` refuses past ``limit``."""

    def __init__(self, limit: int, *, what: str = "previews") -> None:
        self.limit, self.what = limit, what
        self._open: dict[int, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, tenant_id: int) -> Iterator[None]:
        """Raises TooManyWaits when the tenant is at its limit."""
        with self._lock:
            if self._open.get(tenant_id, 0) >= self.limit:
                raise TooManyWaits(f"{self.limit} {self.what} of this tenant are already waiting for the worker")
            self._open[tenant_id] = self._open.get(tenant_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._open[tenant_id] -= 1
                if not self._open[tenant_id]:
                    del self._open[tenant_id]


async def wait_until(
    check: Callable[[float], bool], *, timeout_s: float, poll_s: float = POLL_S, max_poll_s: float | None = None
) -> bool:
    """Call ``check(poll_s)`` (sync, in a worker thread; ``poll_s``: the current interval between polls)
    until it is true or ``timeout_s`` passes; sleeps in between without holding a thread. With
    ``max_poll_s`` the sleep grows by half each time up to it (many long waits then cost few polls).
    Returns whether it came true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await run_in_threadpool(check, poll_s):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        if max_poll_s is not None:
            poll_s = min(max_poll_s, poll_s * 1.5)


async def preview_and_wait(
    st: State,
    cap: WaitCap,
    *,
    tenant_id: int,
    document: LabelSetDocument | None,
    label_set: str | None,
    texts: list[str],
) -> dict[str, Any]:
    """Record a preview, enqueue it, wait up to ``preview_timeout_s`` for the worker; the preview's view
    (``status`` still ``queued`` when the worker took longer). Raises TooManyWaits, NotFoundError,
    InvalidInputError and BrokerUnavailableError."""
    with cap.hold(tenant_id):

        def record() -> str:
            with st.sessions.begin() as session:
                return previewing.request_preview(
                    session,
                    tenant_id=tenant_id,
                    document=document,
                    label_set=label_set,
                    texts=texts,
                    max_text_chars=st.settings.max_text_chars,
                ).id

        preview_id = await run_in_threadpool(record)
        try:
            await run_in_threadpool(enqueue_preview, st.celery, preview_id, queue=st.settings.queue)
        except Exception as e:
            raise BrokerUnavailableError(f"could not enqueue the preview ({type(e).__name__})") from e
        await wait_until(
            lambda _: previewing.preview_finished(st.sessions, preview_id), timeout_s=st.settings.preview_timeout_s
        )
        return await run_in_threadpool(previewing.read_preview, st.sessions, preview_id, tenant_id=tenant_id)


class JobPolls:
    """The jobs this process's ``POST /v1/classify`` calls wait for, polled together: ``finished(job_id,
    max_age_s)`` answers from the last query when it began at most ``max_age_s`` ago and asked about
    ``job_id``, else runs one query for every job waited on (one at a time: while one runs, a call takes
    the last answer and polls again after its interval). Eight waits polled every 0.2 s were 40 database
    sessions a second; with a shared poll they are about 5."""

    def __init__(self, sessions: Any) -> None:
        self._sessions = sessions
        self._waiting: Counter[str] = Counter()  # two calls may wait for one job (the same idempotency key)
        self._lock = threading.Lock()  # _waiting
        self._query = threading.Lock()  # one query at a time
        self._asked_at = -math.inf
        self._asked: frozenset[str] = frozenset()
        self._finished: frozenset[str] = frozenset()

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[None]:
        with self._lock:
            self._waiting[job_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting[job_id] -= 1
                if not self._waiting[job_id]:
                    del self._waiting[job_id]

    def finished(self, job_id: str, max_age_s: float) -> bool:
        """Whether the job is done or failed (or gone), as read at most ``max_age_s`` ago, or by the query
        in flight's predecessor: a call never waits for another's query (forty calls queued on one lock
        held forty threads of the pool that other requests need). Raises RetryableError when the
        database is unreachable."""
        if not self._query.acquire(blocking=False):
            return job_id in self._finished  # a query in flight asks about this job too; its answer comes next poll
        try:
            if job_id in self._asked and time.monotonic() - self._asked_at <= max_age_s:
                return job_id in self._finished
            with self._lock:  # its own job first; at most MAX_POLLED in one query
                ids = [job_id, *itertools.islice((i for i in self._waiting if i != job_id), MAX_POLLED - 1)]
            asked_at = time.monotonic()
            done = pipeline.jobs_finished(self._sessions, ids)
            self._asked_at, self._asked, self._finished = asked_at, frozenset(ids), frozenset(done)
            return job_id in done
        finally:
            self._query.release()


def job_polls(app: Any) -> JobPolls:
    """The app's JobPolls, made on first use."""
    polls = getattr(app.state, "job_polls", None)
    if polls is None:
        polls = app.state.job_polls = JobPolls(app.state.labelwise.sessions)
    return polls


def classify_cap(app: Any) -> WaitCap:
    """The app's WaitCap for POST /v1/classify (``sync_max_waits``), made on first use."""
    cap = getattr(app.state, "classify_waits", None)
    if cap is None:
        limit = app.state.labelwise.settings.sync_max_waits
        cap = app.state.classify_waits = WaitCap(limit, what="POST /v1/classify calls")
    return cap


def preview_cap(app: Any) -> WaitCap:
    """The app's WaitCap (made on first use from its settings)."""
    cap = getattr(app.state, "preview_waits", None)
    if cap is None:
        cap = app.state.preview_waits = WaitCap(app.state.labelwise.settings.preview_max_waits)
    return cap
