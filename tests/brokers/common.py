"""Brokers under test: how to connect as labelwise's worker does, the queue to use, publishing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import Connection, Queue

from labelwise import brokers

VISIBILITY_TIMEOUT_S = 2


@dataclass(frozen=True)
class Broker:
    name: str
    url: str
    quorum: bool = False

    def connection(self) -> Connection:
        """A kombu connection with labelwise's transports and options."""
        brokers.install()
        options = brokers.celery_options(
            self.url,
            queue="unused",
            visibility_timeout_s=VISIBILITY_TIMEOUT_S,
            queue_type="quorum" if self.quorum else "classic",
        )["broker_transport_options"]
        return Connection(self.url, transport_options=options)

    def queue(self, name: str) -> Queue:
        return brokers.quorum_queue(name) if self.quorum else Queue(name, routing_key=name)

    def publish(self, name: str, bodies: list[dict[str, Any]], headers: list[dict[str, Any]] | None = None) -> None:
        queue = self.queue(name)
        with self.connection() as conn, conn.Producer(serializer="json") as producer:
            for i, body in enumerate(bodies):
                extra = {"headers": headers[i]} if headers else {}
                producer.publish(body, exchange=queue.exchange, routing_key=name, declare=[queue], **extra)
