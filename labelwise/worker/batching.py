"""Micro-batching inside one worker process, shared fairly between tenants.

Messages arrive one at a time (``put`` from Celery's consumer thread, or ``submit`` to wait for the
outcome) and wait per key (the tenant). Two batcher threads take them and hand each batch to ``handle``
in one go; ``handle`` returns one outcome per item, in order (a result, or the exception that item's
``submit`` raises):

- the **main lane** takes whatever waits, up to ``max_batch``, one item of each tenant in turn, so a
  tenant with a thousand messages waiting and one with a single message share the next batch (FIFO
  within a tenant). A message alone is processed at once; a burst forms batches while the previous
  batch is being processed. With an express lane, it takes a light tenant's message only while no heavy
  tenant's waits (and the express lane is busy): a light message never rides in a flood's batch. Its
  batches go to ``main_handle`` (a bulk process of the worker's: ``labelwise.worker.bulk``).
- the **express lane** (``express_batch`` > 0) takes only the messages of *light* tenants, those with
  at most ``LIGHT_BATCHES`` express batches of messages waiting or in a batch, about as many arrived
  in the last second (``RATE_WINDOW_S``), and none of that (nor a message from its backlog in the
  overflow lane: ``put(item, backlogged=True)``) in the last ``HEAVY_HOLD_S``, up to ``express_batch``
  at a time, while the main lane is busy. A tenant sending a few messages a second beside one that
  floods the worker is not made to wait for the flood's full batch to finish: its message is classified
  beside it (the model's session runs calls concurrently), in a batch of its own. The main lane leaves
  light tenants' messages to the express lane while that lane is free, and the express lane's batch
  goes first (:mod:`labelwise.priority`): the main lane waits at its next step until it is done.

``held(key)`` tells the consumer how much of a tenant is already held here, so that a tenant past its
share can be moved aside (``labelwise.worker.consumer``) instead of filling the prefetch window.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

from labelwise.priority import BULK_NICE, TURNS, background_thread

log = logging.getLogger(__name__)
# A tenant is light while it has at most this many express batches of messages in the worker. One: a
# light tenant whose express batches were slowed for a second by a busy host (10 messages piled up) was
# heavy at once, its messages went into the flood's batches, which were slower still, and it stayed
# heavy (bench/noisy_neighbour.py: p99 beside the flood 1.3 s in its batch).
LIGHT_BATCHES = 4
# ... and while about that many of its messages at most arrived in the last RATE_WINDOW_S (a count that
# decays by e each window). Held messages alone misjudge a flood: what it sends past its share is moved
# aside (labelwise.worker.consumer), so just after each of its batches it held a few, looked light, and
# its messages took the express lane from the light tenants (bench/noisy_neighbour.py: 68 of 237 express
# batches were the flood's, and a light tenant's message waited 131 ms behind one of them).
RATE_WINDOW_S = 1.0
# ... and it was not heavy (by either count, or by a message from its backlog in the overflow lane) in the
# last HEAVY_HOLD_S. A flood's rate here is how fast the main lane takes it, not how fast it sends: behind
# a slow main-lane batch (the bulk process yields the cores to everyone) its count decayed, it looked light
# for a moment, and its messages, its huge label set's too, took the express lane from the light tenants
# (bench/noisy_neighbour.py: a light tenant's message 0.5 s in its batch).
HEAVY_HOLD_S = 5.0
Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        handle: Callable[[list[Item]], list[Result | Exception]],
        *,
        max_batch: int,
        key: Callable[[Item], Hashable] | None = None,
        express_batch: int = 0,
        main_handle: Callable[[list[Item]], list[Result | Exception]] | None = None,
    ) -> None:
        self._handle = handle
        self._main_handle = main_handle or handle  # the main lane's (the express lane and submit use handle)
        self._max_batch = max_batch
        self._key = key or (lambda _: None)
        self._express_batch = express_batch
        self._waiting: OrderedDict[Hashable, deque[tuple[Item, Future[Result] | None]]] = OrderedDict()
        self._busy: Counter[Hashable] = Counter()  # items of each key in a batch being handled
        self._count = 0
        self._seen: dict[Hashable, float] = {}  # key -> when an item of it last arrived (monotonic)
        self._arrived: dict[Hashable, float] = {}  # key -> its recent arrivals (decayed: _arrivals) at _seen
        self._heavy: dict[Hashable, float] = {}  # key -> when it was last seen heavy (monotonic)
        self._cond = threading.Condition()
        self._threads: dict[str, threading.Thread] = {}
        self._express_busy = False
        self._lock = threading.Lock()
        self.batches = 0
        self.items = 0

    def put(self, item: Item, *, backlogged: bool = False) -> None:
        """Process ``item`` in a coming batch; ``handle`` deals with its outcome. ``backlogged``: it
        comes from its key's backlog (the overflow lane): that key is heavy."""
        self._ensure_threads()
        self._add(item, None, backlogged=backlogged)

    def submit(self, item: Item) -> Result:
        """Process ``item`` in a coming batch and return its outcome (or raise its exception)."""
        self._ensure_threads()
        future: Future[Result] = Future()
        self._add(item, future)
        return future.result()

    def pending(self) -> int:
        """Items waiting for a batch."""
        return self._count

    def waiting(self, key: Hashable) -> int:
        """Items of ``key`` waiting for a batch (not counting those in a batch now)."""
        with self._cond:
            queue = self._waiting.get(key)
            return len(queue) if queue is not None else 0

    def held(self, key: Hashable) -> int:
        """Items of ``key`` waiting for a batch or in one now."""
        with self._cond:
            queue = self._waiting.get(key)
            return (len(queue) if queue is not None else 0) + self._busy[key]

    def held_recently(self, *, within_s: float) -> dict[Hashable, int]:
        """``held`` of each key an item of which arrived in the last ``within_s`` seconds."""
        since = time.monotonic() - within_s
        with self._cond:
            return {
                key: len(self._waiting.get(key, ())) + self._busy[key]
                for key, seen in self._seen.items()
                if seen >= since
            }

    def others_seen(self, key: Hashable, *, within_s: float) -> bool:
        """Whether an item of another key arrived in the last ``within_s`` seconds."""
        since = time.monotonic() - within_s
        with self._cond:
            return any(seen >= since for other, seen in self._seen.items() if other != key)

    def _add(self, item: Item, future: Future[Result] | None, *, backlogged: bool = False) -> None:
        key = self._key(item)
        now = time.monotonic()
        with self._cond:
            self._arrived[key] = self._arrivals(key, now) + 1.0
            self._seen[key] = now
            if backlogged:
                self._heavy[key] = now
            if len(self._seen) > 10_000:  # forget keys not seen for an hour
                self._seen = {k: t for k, t in self._seen.items() if t > now - 3600}
                self._arrived = {k: n for k, n in self._arrived.items() if k in self._seen}
                self._heavy = {k: t for k, t in self._heavy.items() if k in self._seen}
            self._waiting.setdefault(key, deque()).append((item, future))
            self._count += 1
            if self._express_batch:
                self._light(key)  # a flood is seen heavy as it arrives, even if none of it waits when a lane looks
            self._cond.notify_all()

    def _ensure_threads(self) -> None:
        lanes = {"main": (self._max_batch, False)}
        if self._express_batch > 0:
            lanes["express"] = (self._express_batch, True)
        with self._lock:
            for lane, (size, light_only) in lanes.items():
                thread = self._threads.get(lane)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(
                        target=self._run, args=(size, light_only), name=f"labelwise-batcher-{lane}", daemon=True
                    )
                    self._threads[lane] = thread
                    thread.start()

    def _run(self, size: int, light_only: bool) -> None:
        if not light_only and self._express_batch:
            background_thread(BULK_NICE)  # the express lane (and the rest of the host) goes first
        while True:
            batch = self._take(size, light_only=light_only)
            try:
                if light_only:
                    with TURNS.urgent():
                        self._process(batch, self._handle)
                else:
                    TURNS.checkpoint()
                    self._process(batch, self._main_handle)
            finally:
                with self._cond:
                    if light_only:
                        self._express_busy = False
                    for key, _ in batch:
                        self._busy[key] -= 1
                        if self._busy[key] <= 0:
                            del self._busy[key]
                    self._cond.notify_all()  # a tenant may have become light

    def _arrivals(self, key: Hashable, now: float) -> float:
        """How many of the key's items arrived in about the last ``RATE_WINDOW_S`` (each counts
        ``exp(-age / RATE_WINDOW_S)``: a steady 10 a second counts about 10)."""
        seen = self._seen.get(key)
        if seen is None:
            return 0.0
        return self._arrived.get(key, 0.0) * math.exp(-(now - seen) / RATE_WINDOW_S)

    def _light(self, key: Hashable) -> bool:
        """At most ``LIGHT_BATCHES`` express batches of its messages here (waiting or in a batch) and about
        as many arrived in the last ``RATE_WINDOW_S``, and so for the last ``HEAVY_HOLD_S`` (called with
        ``_cond`` held)."""
        limit = self._express_batch * LIGHT_BATCHES
        held = len(self._waiting.get(key, ())) + self._busy[key]
        now = time.monotonic()
        if held > limit or self._arrivals(key, now) > limit:
            self._heavy[key] = now
            return False
        return now - self._heavy.get(key, -math.inf) >= HEAVY_HOLD_S

    def _lane_takes(self, key: Hashable, light_only: bool) -> bool:
        """The express lane takes light tenants only; the main lane leaves them to it while it is free."""
        if light_only:
            return self._light(key)
        return not self._express_batch or self._express_busy or not self._light(key)

    def _take(self, size: int, *, light_only: bool) -> list[tuple[Hashable, tuple[Item, Future[Result] | None]]]:
        """Block until an item this lane may take waits; then take up to ``size``, one per key in turn."""
        with self._cond:
            while True:
                keys = [k for k, q in self._waiting.items() if q and self._lane_takes(k, light_only)]
                if keys and not light_only and self._express_batch:
                    # the main lane takes a light tenant's messages (the express lane is busy) only when
                    # no heavy tenant's wait for it: a light message is never held behind a flood's batch
                    keys = [k for k in keys if not self._light(k)] or keys
                if keys:
                    break
                self._cond.wait()
            if light_only:
                self._express_busy = True
            batch: list[tuple[Hashable, tuple[Item, Future[Result] | None]]] = []
            while keys and len(batch) < size:
                for key in list(keys):
                    queue = self._waiting[key]
                    batch.append((key, queue.popleft()))
                    self._busy[key] += 1
                    if not queue:
                        keys.remove(key)
                        del self._waiting[key]
                    if len(batch) >= size:
                        break
            for key, _ in batch:  # the tenants served go to the back of the turn
                if key in self._waiting:
                    self._waiting.move_to_end(key)
            self._count -= len(batch)
            return batch

    def _process(
        self,
        taken: list[tuple[Hashable, tuple[Item, Future[Result] | None]]],
        handle: Callable[[list[Item]], list[Result | Exception]],
    ) -> None:
        batch = [entry for _, entry in taken]
        self.batches += 1
        self.items += len(batch)
        try:
            outcomes = handle([item for item, _ in batch])
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
