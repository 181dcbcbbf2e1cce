"""Brokers: what labelwise needs beneath Celery and kombu, per broker, in one room.

The contract every broker meets (``tests/brokers/test_contract.py`` runs it against each):

1. A message any Celery client publishes reaches a consumer.
2. An acknowledged message is never delivered again.
3. A message held unacknowledged by a consumer that dies at any instant (SIGKILL) is delivered again:
   RabbitMQ as soon as the connection drops; Redis and the SQL broker once the visibility timeout has
   passed since its consumer last renewed it.
4. While its consumer lives, a held message is delivered to no one else, however long it is held.
5. A message rejected with requeue comes back.

How each gets there:

- ``sql``: the embedded broker (kombu's SQL transport with leases, delete on acknowledgement);
- ``redis``: kombu's Redis transport with an atomic fetch (pop and record as unacknowledged in one Lua
  script) and lease renewal;
- RabbitMQ (py-amqp, kombu's own transport): publisher confirms, and with ``LABELWISE_QUEUE_TYPE=quorum``
  a quorum queue with a delivery limit whose dead letters go to ``QUEUE.dead`` instead of being dropped.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue
from kombu.transport import TRANSPORT_ALIASES

DELIVERY_LIMIT = 50  # quorum queues: after this many deliveries RabbitMQ dead-letters a message


def install() -> None:
    """Make ``sqla+`` and ``redis://`` URLs use labelwise's transports in this process."""
    for scheme in ("sqla", "sqlalchemy"):
        TRANSPORT_ALIASES[scheme] = "labelwise.brokers.sql:Transport"
    TRANSPORT_ALIASES["redis"] = "labelwise.brokers.redis:Transport"


def kind(broker_url: str) -> str:
    """``sql``, ``redis`` or ``amqp``."""
    if broker_url.startswith(("sqla+", "sqlalchemy+")):
        return "sql"
    if broker_url.startswith(("redis://", "rediss://")):
        return "redis"
    return "amqp"


def celery_options(broker_url: str, *, queue: str, visibility_timeout_s: float, queue_type: str) -> dict[str, Any]:
    """The Celery settings each broker needs for the contract above."""
    which = kind(broker_url)
    if which == "sql":
        return {"broker_transport_options": {"visibility_timeout": visibility_timeout_s}}
    if which == "redis":
        # kombu restores messages whose lease ran out every interval x throttle seconds: every tenth of
        # the visibility timeout (1-60 s) here, which is also when the consumer renews the messages it
        # holds. A worker killed during a sweep leaves its lock held until the lock expires: three
        # intervals, at least 10 s.
        interval = max(1, min(60, int(visibility_timeout_s) // 10))
        return {
            "broker_transport_options": {
                "visibility_timeout": visibility_timeout_s,
                "unacked_restore_throttle": 1,
                "unacked_restore_interval": interval,
                "unacked_mutex_expire": max(10, 3 * interval),
            }
        }
    options: dict[str, Any] = {"broker_transport_options": {"confirm_publish": True}}
    if queue_type == "quorum":
        options["task_queues"] = [quorum_queue(queue)]
        options["task_default_queue_type"] = "quorum"
    return options


def quorum_queue(name: str) -> Queue:
    """A quorum queue whose messages go to ``NAME.dead`` after DELIVERY_LIMIT deliveries."""
    return Queue(
        name,
        Exchange(name, type="direct"),
        routing_key=name,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": f"{name}.dead",
        },
    )


def declare_dead_letters(connection: Any, name: str) -> None:
    """Declare ``NAME.dead`` (a quorum queue nothing consumes: inspect it with rabbitmqctl)."""
    dead = Queue(f"{name}.dead", durable=True, queue_arguments={"x-queue-type": "quorum"})
    with connection.channel() as channel:
        dead.declare(channel=channel)
