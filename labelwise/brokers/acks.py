"""Acknowledging a batch of messages in one go, per broker.

- RabbitMQ: one ``basic.ack`` with ``multiple`` up to the batch's highest delivery tag when every message
  the channel delivered below it is in the batch (``Outstanding`` tracks what is still unsettled on each
  channel); else one ``basic.ack`` per message (each an asynchronous frame, no round trip).
- Redis: one pipeline removes the whole batch from kombu's ``unacked`` structures.
- The SQL broker: one ``DELETE`` for the whole batch.

Each also settles kombu's own bookkeeping of the messages (its prefetch accounting), so the consumer
takes new messages as soon as a batch is acknowledged. Call on the consumer's thread for RabbitMQ (its
channel is not thread-safe); Redis and SQL acknowledgements may come from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from labelwise.brokers import redis as redis_broker
from labelwise.brokers import sql as sql_broker

log = logging.getLogger(__name__)


class Outstanding:
    """Delivery tags received and not yet settled, per AMQP channel (only what this process saw)."""

    def __init__(self) -> None:
        self._tags: dict[int, set[int]] = defaultdict(set)
        self._lock = threading.Lock()

    def received(self, message: Any) -> None:
        if _is_amqp(message.channel):
            with self._lock:
                self._tags[id(message.channel)].add(int(message.delivery_tag))

    def settled(self, message: Any) -> None:
        if _is_amqp(message.channel):
            with self._lock:
                self._tags[id(message.channel)].discard(int(message.delivery_tag))

    def covers(self, channel: Any, tags: set[int]) -> bool:
        """Whether acknowledging ``multiple`` up to max(tags) would settle exactly ``tags``."""
        top = max(tags)
        with self._lock:
            return all(t in tags for t in self._tags[id(channel)] if t <= top)

    def forget(self, channel: Any, tags: set[int]) -> None:
        with self._lock:
            self._tags[id(channel)] -= tags


OUTSTANDING = Outstanding()


def ack_many(messages: list[Any]) -> None:
    """Acknowledge ``messages`` (kombu Messages, possibly of several channels) in as few calls as the
    broker allows. A message whose channel is gone (a reconnect) is skipped: the broker gives it back."""
    by_channel: dict[int, list[Any]] = defaultdict(list)
    for message in messages:
        if not message.acknowledged:
            by_channel[id(message.channel)].append(message)
    for batch in by_channel.values():
        channel = batch[0].channel
        try:
            if isinstance(channel, sql_broker.Channel):
                _ack_sql(channel, batch)
            elif isinstance(channel, redis_broker.Channel):
                _ack_redis(channel, batch)
            elif _is_amqp(channel):
                _ack_amqp(channel, batch)
            else:
                for message in batch:
                    message.ack()
        except Exception as e:  # the connection went away: the broker redelivers them (idempotent)
            log.warning(
                "could not acknowledge %d messages (%s: %s); they will be delivered again",
                len(batch),
                type(e).__name__,
                e,
            )


def _mark(batch: list[Any]) -> None:
    for message in batch:
        message._state = "ACK"  # what kombu's Message.ack() records


def _ack_sql(channel: sql_broker.Channel, batch: list[Any]) -> None:
    tags = [m.delivery_tag for m in batch]
    channel.settle(tags, requeue=False)
    for tag in tags:
        channel.qos._quick_ack(tag)
    _mark(batch)


def _ack_redis(channel: redis_broker.Channel, batch: list[Any]) -> None:
    tags = [m.delivery_tag for m in batch]
    qos = channel.qos
    with channel.conn_or_acquire() as client, client.pipeline() as pipe:
        pipe.zrem(qos.unacked_index_key, *tags).hdel(qos.unacked_key, *tags).execute()
    for tag in tags:
        qos._quick_ack(tag)
    _mark(batch)


def _ack_amqp(channel: Any, batch: list[Any]) -> None:
    tags = {int(m.delivery_tag) for m in batch}
    if len(tags) > 1 and OUTSTANDING.covers(channel, tags):
        channel.basic_ack(max(tags), multiple=True)
    else:
        for tag in sorted(tags):
            channel.basic_ack(tag)
    OUTSTANDING.forget(channel, tags)
    _mark(batch)


def _is_amqp(channel: Any) -> bool:
    return type(channel).__module__.startswith("amqp")
