"""A consumer built for batches: labelwise.classify messages go from Celery's consumer straight to the
batcher and are acknowledged per batch, after its commit.

Celery stays the framework. ``labelwise.classify`` is an ordinary registered task (any Celery client
sends it; Flower sees its events), but its *strategy*, the function Celery's consumer calls for each of
its messages, is ours: Celery's default hands each message to the pool as a request, one pool thread
per message waiting for its batch; here the consumer thread only puts the message on the batcher's
queue. The batcher thread decodes the messages, classifies and commits the batch, then acknowledges all
of them at once (``labelwise.brokers.acks``): on the consumer's own thread for RabbitMQ (through Celery's
event loop, which the batcher wakes), directly for Redis and the SQL broker. A message is acknowledged
only after its result is committed; a batch that meets a passing outage (the database is down) is held
and retried, its messages unacknowledged (their leases renewed), so nothing is republished or lost.

Every other task (labelwise.deliver, previews) keeps Celery's default strategy and its thread pool; a
thin wrapper records their AMQP delivery tags so a batch's ``basic.ack(multiple=True)`` never settles a
message that is not done.

Tenants share a worker fairly (``labelwise.worker.batching``): the batcher takes one message of each
tenant in turn, and once a tenant has ``FEED.hold_max`` messages there (waiting or in a batch), its next
ones from the main queue go to the overflow lane (``labelwise.brokers.lanes``), so one tenant's flood
cannot fill the prefetch window and the main queue while another tenant's message waits behind it. The
Redis transport moves them inside the broker as it fetches (``share_hint`` tells it who is past its
share); whatever reaches the consumer anyway (other brokers, a tenant it could not read) is republished
on the lane and acknowledged here. A message that comes back from the lane marks its tenant heavy in the
batcher (``put(backlogged=True)``): a tenant with a backlog is not light, however slowly it arrives here.

What a batch-strategy message does not get from Celery: ETA/countdown (it runs at once), rate limits,
time limits, revocation, and a place in ``celery inspect active`` (the batcher's own counters are in the
worker metrics and heartbeat).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.strategy import default as default_strategy

from labelwise.brokers.acks import OUTSTANDING, ack_many
from labelwise.brokers.lanes import SPILLED_HEADER, ShareHint
from labelwise.worker.batching import Batcher

log = logging.getLogger(__name__)
# A tenant past its share is moved aside only while another tenant has sent this worker a message this
# recently: a single tenant's burst is not slowed by moves that make room for no one (bench/throughput.py:
# 336 msgs/s without moves, 260 with them). The cost: a tenant idle for longer whose first message is
# queued behind another's backlog waits for that backlog, once; its next messages do not.
OTHERS_WITHIN_S = 300.0


@dataclass
class Inbound:
    """A labelwise.classify message as the consumer received it, not decoded yet."""

    message: Any
    task_id: str
    received_s: float
    settle: Callable[[Callable[[], None]], None]  # runs a callable where this message may be acknowledged
    tenant: str | None = None  # as the message names it (not checked yet): the batcher's fair-share key

    @classmethod
    def direct(cls, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Inbound:
        """A call of the task function itself (no broker message to acknowledge)."""
        tenant = kwargs.get("tenant") if isinstance(kwargs, dict) else None
        return cls(_Direct(args, kwargs), task_id, time.time(), _now, tenant if isinstance(tenant, str) else None)


@dataclass
class _Direct:
    """Stands in for a broker message when the task is called directly."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    acknowledged: bool = True

    def decode(self) -> Any:
        return [list(self.args), self.kwargs, {}]


class Feed:
    """Where this process's batch-strategy messages go (set when the worker's resources are built)."""

    batcher: Batcher[Inbound, Any] | None = None
    events: Any = None  # Celery's event dispatcher, when task events are on
    # A tenant's share: with this many of its messages in the batcher (waiting or in a batch), its next
    # message from the main queue goes to ``spill`` (republished on the overflow lane, then acknowledged); 0: never.
    hold_max: int = 0
    spill: Callable[[Inbound], None] | None = None
    moved: Callable[[int], None] | None = None  # counts messages moved to the overflow lane by the transport


FEED = Feed()


def batch_strategy(task: Task, app: Any, consumer: Any, **_: Any) -> Callable[..., None]:
    """Celery's consumer calls the returned handler, on its own thread, for each labelwise.classify message."""
    hub = getattr(consumer, "hub", None)
    settle = hub.call_soon if hub is not None else _now
    dispatcher = consumer.event_dispatcher
    FEED.events = dispatcher if dispatcher is not None and dispatcher.enabled and task.send_events else None

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **__: Any) -> None:
        task_id = str((message.headers or {}).get("id") or message.properties.get("correlation_id") or "")
        OUTSTANDING.received(message)
        inbound = Inbound(message, task_id, time.time(), settle, tenant_of(message))
        if _spilled(inbound):
            return
        if FEED.events is not None:
            FEED.events.send("task-received", uuid=task_id, name=task.name)
        assert FEED.batcher is not None, "the worker's resources are built before its consumer starts"
        FEED.batcher.put(inbound, backlogged=_from_overflow(inbound))

    return handler


def tenant_of(message: Any) -> str | None:
    """The tenant a labelwise.classify message names, if it can be read (protocol 2 or 1)."""
    try:
        body = message.decode()
    except Exception:
        return None
    if isinstance(body, dict):
        kwargs = body.get("kwargs")
    elif isinstance(body, list | tuple) and len(body) >= 2:
        kwargs = body[1]
    else:
        return None
    tenant = kwargs.get("tenant") if isinstance(kwargs, dict) else None
    return tenant if isinstance(tenant, str) else None


def share_hint() -> ShareHint:
    """What the transport may move aside on its own (``labelwise.brokers.lanes.ShareHint``): the tenants
    that sent this worker a message in the last ``OTHERS_WITHIN_S``, with how many of each it holds."""
    return ShareHint(share=FEED.hold_max, held=_held_recently, moved=_moved)


def _held_recently() -> dict[str, int]:
    batcher = FEED.batcher
    if batcher is None:
        return {}
    return {k: n for k, n in batcher.held_recently(within_s=OTHERS_WITHIN_S).items() if isinstance(k, str)}


def _moved(count: int) -> None:
    if FEED.moved is not None:
        FEED.moved(count)


def _from_overflow(item: Inbound) -> bool:
    """It came from the overflow lane: its tenant has a backlog there (the batcher does not count it light)."""
    return bool((item.message.headers or {}).get(SPILLED_HEADER))


def _spilled(item: Inbound) -> bool:
    """Hand the message to the spiller (``labelwise.worker.spilling``: republished on the overflow lane, then
    acknowledged) when its tenant already has its share here; a message that came from the lane is never
    moved again. True when it was handed over."""
    batcher, spill = FEED.batcher, FEED.spill
    if spill is None or batcher is None or FEED.hold_max <= 0 or item.tenant is None:
        return False
    if _from_overflow(item) or batcher.held(item.tenant) < FEED.hold_max:
        return False
    if not batcher.others_seen(item.tenant, within_s=OTHERS_WITHIN_S):
        return False  # one tenant alone: nobody to make room for, and moving costs (a quarter of its rate)
    spill(item)
    return True


def tracked_strategy(task: Task, app: Any, consumer: Any, **kwargs: Any) -> Callable[..., None]:
    """Celery's default strategy, recording each message's AMQP delivery tag until it is settled."""
    handle = default_strategy(task, app, consumer, **kwargs)

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> None:
        OUTSTANDING.received(message)
        _settles(message, "ack")
        _settles(message, "reject")
        return handle(message, body, ack, reject, callbacks, **kw)

    return handler


def _settles(message: Any, method: str) -> None:
    """Record the message as settled once its ``ack`` or ``reject`` has really been sent (on the consumer's
    thread, in order with a batch's acknowledgement there), not merely requested."""
    sent = getattr(message, method)

    def settle(*args: Any, **kwargs: Any) -> Any:
        try:
            return sent(*args, **kwargs)
        finally:
            OUTSTANDING.settled(message)

    setattr(message, method, settle)


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer; the connection it writes on (task events for Flower, the worker's event heartbeats)
    publishes without RabbitMQ's publisher confirms. Events are monitoring, and with confirms a pool thread
    sending one waits for its confirm holding the dispatcher's lock, with no timeout: a confirm that never
    came (seen after a broker restart) blocked every pool thread, so no delivery ran, for minutes."""

    def connection_for_write(self, url: str | None = None, heartbeat: float | None = None) -> Any:
        return self.ensure_connected(
            self.app.connection_for_write(url=url, heartbeat=heartbeat, transport_options={"confirm_publish": False})
        )


class BatchTask(Task):  # type: ignore[misc]
    """labelwise.classify: its messages go to the batcher (batch_strategy)."""

    Strategy = "labelwise.worker.consumer:batch_strategy"


class TrackedTask(Task):  # type: ignore[misc]
    """Every other labelwise task: Celery's pool, with its delivery tags tracked (tracked_strategy)."""

    Strategy = "labelwise.worker.consumer:tracked_strategy"


def acknowledge(batch: list[Inbound], outcomes: list[Any], *, failed: Callable[[Any], bool]) -> None:
    """Acknowledge a committed batch on the consumer's thread, and tell Flower how each ended."""
    batch = [item for item in batch if not isinstance(item.message, _Direct)]
    if not batch:
        return
    messages = [item.message for item in batch]
    events = FEED.events

    def run() -> None:
        ack_many(messages)
        if events is not None:
            now = time.time()
            for item, outcome in zip(batch, outcomes, strict=True):
                kind = "task-failed" if failed(outcome) else "task-succeeded"
                events.send(kind, uuid=item.task_id, runtime=now - item.received_s)

    batch[0].settle(run)


def _now(callback: Callable[[], None]) -> None:
    callback()


def requeue(batch: list[Inbound]) -> None:
    """Give messages back to the broker (rejected with requeue), on the consumer's thread."""
    batch = [item for item in batch if not isinstance(item.message, _Direct)]
    if not batch:
        return

    def run() -> None:
        for item in batch:
            try:
                item.message.reject(requeue=True)
            except Exception as e:  # the connection went away: the broker gives it back anyway
                log.debug("could not requeue %s: %s", item.task_id, e)
            OUTSTANDING.settled(item.message)

    batch[0].settle(run)
