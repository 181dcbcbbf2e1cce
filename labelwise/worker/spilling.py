"""Moving a tenant's messages past its share to the overflow lane, in batches (labelwise.brokers.lanes).

The consumer thread only hands a message over (``put``); a thread of its own republishes what has
gathered on ``<queue>.overflow`` over one connection and, once the broker has them, acknowledges the
originals on the consumer's thread. RabbitMQ confirms the whole batch in one wait (the channel in
confirm mode, acknowledgements counted as they come) instead of one round trip per message: a
tenant's backlog of thousands queued ahead of another tenant's message is moved aside at the rate
the broker takes publishes, not at one confirm per message. Redis and the SQL broker have taken a
message when its publish returns.

A batch that cannot be published (the broker is away, no confirm in time) is kept: its messages go to
the batcher as if they were within the share; a message published but not acknowledged (the process
died in between) is delivered twice, and its task id makes it one job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

from celery import Celery

from labelwise.brokers import kind
from labelwise.brokers.acks import OUTSTANDING
from labelwise.brokers.lanes import SPILLED_HEADER, overflow_queue
from labelwise.priority import TURNS
from labelwise.worker.app import CLASSIFY_TASK, CONFIRM_TIMEOUT_S
from labelwise.worker.consumer import Inbound
from labelwise.worker.handling import decode

log = logging.getLogger(__name__)
MAX_BATCH = 256  # messages republished per confirm wait


class Spiller:
    def __init__(self, app: Celery, *, queue: str, keep: Callable[[Inbound], None], on_moved: Callable[[int], None]):
        self.app, self.lane, self.keep, self.on_moved = app, overflow_queue(queue), keep, on_moved
        self._amqp = kind(app.conf.broker_url or "") == "amqp"
        self._pending: SimpleQueue[Inbound] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connection: Any = None
        self._published = 0  # publishes on the current channel since confirm.select: their sequence numbers
        self._confirmed = 0
        self._nacked = False
        self.moved = 0

    def put(self, item: Inbound) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="labelwise-spiller", daemon=True)
                self._thread.start()
        self._pending.put(item)

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._pending.get_nowait())
                except Empty:
                    break
            try:
                self._publish(batch)
            except Exception as e:
                log.warning("could not move %d messages to %s (%s); keeping them", len(batch), self.lane, e)
                self._close()
                for item in batch:
                    self.keep(item)
                continue
            _acknowledge(batch)
            self.moved += len(batch)
            self.on_moved(len(batch))

    def _publish(self, batch: list[Inbound]) -> None:
        if self._connection is None:
            options = {"confirm_publish": False} if self._amqp else {}
            self._connection = self.app.connection_for_write(transport_options=options)
            self._connection.ensure_connection(max_retries=1)
            self._published = self._confirmed = 0
            if self._amqp:
                channel = self._connection.default_channel
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
                channel.confirm_select()
        producer = self._connection.Producer()
        self._nacked = False
        for item in batch:
            TURNS.checkpoint()  # a light tenant's batch goes first (labelwise.priority)
            message = decode(item)
            self.app.send_task(
                CLASSIFY_TASK,
                args=message.args if isinstance(message.args, tuple) else (),
                kwargs=message.kwargs if isinstance(message.kwargs, dict) else {},
                task_id=item.task_id,
                queue=self.lane,
                headers={SPILLED_HEADER: 1},
                producer=producer,
                retry=False,
            )
            self._published += 1
        if self._amqp:
            self._wait_confirms()

    def _wait_confirms(self) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while self._confirmed < self._published:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no publisher confirm in time")
            self._connection.drain_events(timeout=left)
        if self._nacked:
            raise RuntimeError("the broker refused (nacked) a message")

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirmed = max(self._confirmed, int(delivery_tag))

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = True
        self._on_ack(delivery_tag, multiple)

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception as e:
                log.debug("closing the spiller's connection: %s", e)
        self._connection = None


def _acknowledge(batch: list[Inbound]) -> None:
    """Acknowledge the moved messages where each may be (the consumer's thread for RabbitMQ)."""
    by_settle: dict[Any, list[Inbound]] = defaultdict(list)
    for item in batch:
        by_settle[item.settle].append(item)
    for settle, items in by_settle.items():

        def run(items: list[Inbound] = items) -> None:
            for item in items:
                try:
                    item.message.ack()
                except Exception as e:  # the connection went away: the broker gives it back (one job still)
                    log.debug("could not acknowledge moved message %s: %s", item.task_id, e)
                OUTSTANDING.settled(item.message)

        settle(run)
