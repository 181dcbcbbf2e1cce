"""Waiting for the worker without holding a thread: previews are polled in SQL between asyncio sleeps,
and each tenant may have only so many waits open at once in this process (``preview_max_waits``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from labelwise.api.deps import State
from labelwise.errors import BrokerUnavailableError, LabelwiseError
from labelwise.labelset import LabelSetDocument
from labelwise.pipeline import previewing
from labelwise.worker.previews import enqueue_preview

POLL_S = 0.02


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
    check: Callable[[], bool], *, timeout_s: float, poll_s: float = POLL_S, max_poll_s: float | None = None
) -> bool:
    """Call ``check`` (sync, in a worker thread) until it is true or ``timeout_s`` passes; sleeps in between
    without holding a thread. With ``max_poll_s`` the sleep grows by half each time up to it (many long
    waits then cost few polls). Returns whether it came true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await run_in_threadpool(check):
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
            lambda: previewing.preview_finished(st.sessions, preview_id), timeout_s=st.settings.preview_timeout_s
        )
        return await run_in_threadpool(previewing.read_preview, st.sessions, preview_id, tenant_id=tenant_id)


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
