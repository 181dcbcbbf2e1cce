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
  a replicated quorum queue. Producers must then declare it the same way (Celery:
  ``task_create_missing_queue_type = "quorum"``), since RabbitMQ refuses a declaration with other
  arguments; so the delivery limit and dead-lettering are left to an operator's policy (README), and a
  message that kills its worker every time is failed by labelwise itself (``LABELWISE_MAX_ATTEMPTS``).
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue
from kombu.transport import TRANSPORT_ALIASES

from labelwise.brokers.lanes import side_queues


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
        options["task_queues"] = [quorum_queue(name) for name in [queue, *side_queues(queue)]]
        options["task_default_queue_type"] = "quorum"
    return options


def quorum_queue(name: str) -> Queue:
    """The queue as a quorum queue, declared exactly as Celery declares one (so producers agree)."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments={"x-queue-type": "quorum"})
