"""A consumer process for the broker contract tests:
``python -m tests.brokers.consumer URL QUEUE[,QUEUE...] MODE [quorum]``.

Prints one line per message it takes (``took <id>``), flushed, so the test knows what it holds.
Modes: ``hold`` (take, never acknowledge, keep polling), ``ack`` (take and acknowledge),
``die-on-take`` (exit the moment a message has been taken from the broker, before the consumer's own
bookkeeping of it runs: the instant at which kombu's stock Redis and SQL transports lose it).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from kombu import Consumer

from tests.brokers.common import Broker


def main(url: str, name: str, mode: str, quorum: bool) -> None:
    broker = Broker("consumer", url, quorum)
    if mode == "die-on-take":
        _die_in_bookkeeping()
    with broker.connection() as conn, conn.channel() as channel:

        def on_message(body: Any, message: Any) -> None:
            print("took", body["id"], flush=True)
            if mode == "die-on-take":  # AMQP has no client-side bookkeeping before this callback
                os._exit(9)
            if mode == "ack":
                message.ack()

        queues = [broker.queue(each) for each in name.split(",")]
        with Consumer(channel, queues, callbacks=[on_message], prefetch_count=10, accept=["json"]):
            while True:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)


def _die_in_bookkeeping() -> None:
    """Exit inside QoS.append (the consumer records a taken message as unacknowledged), before it runs."""
    from kombu.transport import redis, virtual

    from labelwise.brokers import redis as ours

    def die(*_: Any, **__: Any) -> None:
        os._exit(9)

    for qos in (virtual.QoS, redis.QoS, ours.QoS):
        qos.append = die  # type: ignore[method-assign]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "quorum")
