"""Side queues beside the main one: the overflow lane and the deliveries queue.

Clients publish labelwise.classify on the main queue (``labelwise``). Beside it, workers consume:

- ``<queue>.overflow``: a worker holding as many of one tenant's messages as its share allows republishes
  that tenant's next ones here and acknowledges them (``labelwise.worker.consumer``), so the main queue
  keeps moving and another tenant's message behind a flood reaches a worker at once;
- ``<queue>.deliveries``: labelwise's own delivery tasks (results posted to integrations), which wait for
  network replies in the worker's thread pool; a tenant's slow webhook backs up here, not in front of
  anyone's messages.

What a consumer of several queues does here:

- the main queue is fetched first, with the whole prefetch window;
- the side queues together hold at most half of the window, so a backed-up side queue never keeps the
  main queue's next messages out;
- RabbitMQ applies the prefetch per consumer, one per queue, so there each queue has its own window.
"""

from __future__ import annotations

OVERFLOW = ".overflow"
DELIVERIES = ".deliveries"


def overflow_queue(queue: str) -> str:
    """The overflow lane of ``queue``."""
    return queue + OVERFLOW


def deliveries_queue(queue: str) -> str:
    """Where the deliveries of ``queue``'s jobs are published."""
    return queue + DELIVERIES


def side_queues(queue: str) -> list[str]:
    return [overflow_queue(queue), deliveries_queue(queue)]


def is_side(queue: str) -> bool:
    return queue.endswith((OVERFLOW, DELIVERIES))


def ordered(queues: list[str] | set[str]) -> list[str]:
    """Main queues first, then side queues (each group in name order)."""
    return sorted(queues, key=lambda q: (is_side(q), q))


def side_room(prefetch: int, held: int) -> int | None:
    """How many more messages the side queues may take when this many of theirs are held under a
    prefetch window of ``prefetch`` (0: no window, no limit: None)."""
    if not prefetch:
        return None
    return max(0, prefetch // 2 - held)
