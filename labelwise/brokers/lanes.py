"""Side queues beside the main one: the overflow lane and the deliveries queue.

Clients publish labelwise.classify on the main queue (``labelwise``). Beside it, workers consume:

- ``<queue>.overflow``: a worker holding as many of one tenant's messages as its share allows moves
  that tenant's next ones here, so the main queue keeps moving and another tenant's message behind a
  flood reaches a worker at once: the Redis transport inside the broker as it fetches (``ShareHint``),
  the worker otherwise (it republishes them and acknowledges the originals, ``labelwise.worker.spilling``);
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

from collections.abc import Callable
from dataclasses import dataclass

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


# A message that came from a side queue carries this header (set by the transport, or by the worker that
# republished it there): the worker never moves it again.
SPILLED_HEADER = "labelwise_spilled"


@dataclass
class ShareHint:
    """What a worker sharing itself between tenants (``labelwise.worker.consumer``) tells its transport, so
    that a transport able to (Redis) moves a tenant past its share from the main queue to the overflow lane
    itself, inside the broker, before the message ever reaches the worker: a flood's backlog of hundreds
    ahead of another tenant's message is moved aside in one round trip instead of one republish each.

    ``held()`` gives the tenants that sent this worker a message recently (those a move can make room
    for) and how many of each it holds now; a tenant holding ``share`` is moved while another one is
    there. ``moved(n)`` counts what the transport moved. The tenant is read from the message's
    ``kwargsrepr`` header (Celery's protocol 2) when ``tenant`` is its first key; a message whose tenant
    cannot be read that way is delivered, and the worker decides (it reads the body)."""

    share: int
    held: Callable[[], dict[str, int]]
    moved: Callable[[int], None]


_hint: ShareHint | None = None  # set by the worker's resources, read by the transport


def share_hint() -> ShareHint | None:
    return _hint


def set_share_hint(hint: ShareHint | None) -> None:
    global _hint
    _hint = hint
