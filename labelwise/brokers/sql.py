"""The embedded broker: kombu's SQL transport with leases, so a dead worker's messages come back.

kombu's own SQL transport marks a fetched row invisible and never looks at it again: a worker killed
while holding messages loses them all (up to its prefetch), and acknowledged rows are never deleted, so
the table grows with every message and an empty poll slows down with it. This transport keeps kombu's
tables and row format (any plain Celery client with a ``sqla+`` URL still publishes to it) and changes
what happens to a row once it is fetched:

- a fetch takes up to N visible rows (as many as the consumer's prefetch allows), oldest first, in one
  statement and leases them (``visible = false``, ``lease_until = now + visibility_timeout``);
- while the consumer polls it renews the leases of the messages it holds (every tenth of the timeout);
- an acknowledgement deletes the row; a rejection with requeue, and a clean shutdown, makes it visible
  again;
- every few seconds a consumer makes rows whose lease ran out visible again: the messages of a worker
  that died (SIGKILL, power loss) come back after the visibility timeout instead of being lost.

Rows a consumer of kombu's own transport left invisible (no lease) are deleted when the schema is
prepared: they were either acknowledged or lost with their worker, whose jobs the reconciler
re-publishes.
"""

from __future__ import annotations

import threading
import time
from json import dumps, loads
from queue import Empty
from typing import Any

from kombu.transport import virtual
from kombu.transport.sqlalchemy import Channel as _Channel
from kombu.transport.sqlalchemy import Transport as _Transport
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from labelwise.brokers import lanes

_prepared: set[str] = set()
_prepare_lock = threading.Lock()
DEFAULT_VISIBILITY_TIMEOUT_S = 300.0
DEFAULT_FETCH = 64  # messages one fetch takes when the consumer sets no prefetch limit


class LeasedQoS(virtual.QoS):
    """Acknowledging deletes the row; rejecting with requeue or restoring releases its lease."""

    channel: Channel

    def ack(self, delivery_tag: str) -> None:
        self.channel.settle([delivery_tag], requeue=False)
        super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        self.channel.settle([delivery_tag], requeue=requeue)
        self._quick_ack(delivery_tag)

    def restore_unacked(self) -> list[Any]:
        self._flush()
        self.channel.settle(list(self._delivered), requeue=True)
        self._delivered.clear()
        return []


class Channel(_Channel):
    QoS = LeasedQoS
    from_transport_options = (*_Channel.from_transport_options, "visibility_timeout")
    visibility_timeout = DEFAULT_VISIBILITY_TIMEOUT_S

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        self._held: dict[str, int] = {}  # delivery tag -> row id of the messages this channel leased
        self._held_lock = threading.Lock()
        self._lane_tags: set[str] = set()  # held messages that came from a side queue
        self._renewed_at = time.monotonic()
        self._swept_at = float("-inf")

    # --- engine and schema --------------------------------------------------------------------

    def _engine_from_config(self) -> Any:
        url = self.connection.client.hostname
        if not url.startswith("sqlite"):
            return create_engine(url, pool_pre_ping=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _wal)
        return engine

    def _open(self) -> Any:
        engine, sessions = super()._open()
        _prepare(engine, self.message_cls.__tablename__)
        return engine, sessions

    @property
    def engine(self) -> Engine:
        return self._open()[0]

    # --- fetching, renewing, settling -----------------------------------------------------------

    def _get(self, queue: str) -> Any:
        payloads = self.fetch(queue, 1)
        if not payloads:
            raise Empty()
        return payloads[0]

    def _get_many(self, queues: list[str], timeout: float | None = None) -> None:
        """Take as many messages as the prefetch allows, each queue in one statement, and deliver them
        (kombu's virtual channel calls this instead of one ``_get`` per message when it exists). Main
        queues come first; the side queues take at most half the window (``labelwise.brokers.lanes``)."""
        room = self.qos.can_consume_max_estimate() or DEFAULT_FETCH
        delivered = 0
        for queue in lanes.ordered(queues):
            allowed = room - delivered
            if lanes.is_side(queue):
                with self._held_lock:
                    self._lane_tags.intersection_update(self._held)
                    lane_room = lanes.side_room(self.qos.prefetch_count or 0, len(self._lane_tags))
                allowed = allowed if lane_room is None else min(allowed, lane_room)
            if allowed <= 0:
                continue
            for payload in self.fetch(queue, allowed, lane=lanes.is_side(queue)):
                self.connection._deliver(payload, queue)
                delivered += 1
            if delivered >= room:
                break
        if not delivered:
            raise Empty()

    def fetch(self, queue: str, limit: int, *, lane: bool = False) -> list[dict[str, Any]]:
        """Lease up to ``limit`` visible messages of ``queue``, oldest first, in one statement."""
        queue_id = self._get_or_create(queue).id
        self.session.commit()  # the queue lookup's transaction must not hold SQLite's lock
        table = self.message_cls.__tablename__
        lock = " FOR UPDATE SKIP LOCKED" if self.engine.dialect.name == "postgresql" else ""
        sql = text(
            f"UPDATE {table} SET visible = false, lease_until = :deadline WHERE id IN "
            f"(SELECT id FROM {table} WHERE queue_id = :queue_id AND visible = true ORDER BY id LIMIT :n{lock}) "
            "RETURNING id, payload"
        )
        deadline = time.time() + self.visibility_timeout
        with self.engine.begin() as conn:
            rows = sorted(conn.execute(sql, {"deadline": deadline, "queue_id": queue_id, "n": limit}).all())
        payloads = [loads(bytes_to_str(payload)) for _, payload in rows]
        with self._held_lock:
            for (row_id, _), payload in zip(rows, payloads, strict=True):
                self._held[payload["properties"]["delivery_tag"]] = row_id
                if lane:
                    self._lane_tags.add(payload["properties"]["delivery_tag"])
        return payloads

    def settle(self, delivery_tags: list[str], *, requeue: bool) -> None:
        """Delete (acknowledged) or release (requeued) the rows of these messages, in one statement."""
        with self._held_lock:
            ids = [self._held.pop(tag) for tag in delivery_tags if tag in self._held]
        if not ids:
            return
        table = self.message_cls.__tablename__
        marks = ", ".join(str(int(i)) for i in ids)
        sql = (
            f"UPDATE {table} SET visible = true, lease_until = NULL WHERE id IN ({marks})"
            if requeue
            else f"DELETE FROM {table} WHERE id IN ({marks})"
        )
        with self.engine.begin() as conn:
            conn.execute(text(sql))

    def drain_events(self, timeout: float | None = None, callback: Any = None) -> Any:
        self._maintain()  # before the prefetch check: a full prefetch is when leases matter most
        return super().drain_events(timeout=timeout, callback=callback)

    def _maintain(self) -> None:
        """Renew the leases this channel holds; now and then release expired leases of dead consumers."""
        now = time.monotonic()
        interval = max(0.5, self.visibility_timeout / 10)
        if now - self._renewed_at >= interval:
            self._renewed_at = now
            self._renew()
        if now - self._swept_at >= interval:
            self._swept_at = now
            self._release_expired()

    def _renew(self) -> None:
        with self._held_lock:
            ids = list(self._held.values())
        if not ids:
            return
        table = self.message_cls.__tablename__
        marks = ", ".join(str(int(i)) for i in ids)
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {table} SET lease_until = :deadline WHERE id IN ({marks})"),
                {"deadline": time.time() + self.visibility_timeout},
            )

    def _release_expired(self) -> int:
        table = self.message_cls.__tablename__
        with self.engine.begin() as conn:
            released = "UPDATE {t} SET visible = true, lease_until = NULL WHERE visible = false AND lease_until < :now"
            result = conn.execute(
                text(released.format(t=table)),
                {"now": time.time()},
            )
        return int(result.rowcount or 0)

    def _restore(self, message: Any) -> None:
        """Requeue a held message by releasing its row; a message we do not hold is put back as new."""
        tag = message.delivery_tag
        with self._held_lock:
            held = tag in self._held
        if held:
            self.settle([tag], requeue=True)
            return
        super()._restore(message)

    def _get_or_create(self, queue: str) -> Any:
        """kombu's, but a queue row another process inserted meanwhile (two workers starting together on a
        new queue) is found instead of ending this one with an IntegrityError."""
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            found = self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).first()
            if found is None:
                raise
            return found

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        obj = self._get_or_create(queue)
        message = self.message_cls(dumps(payload), obj)
        self.session.add(message)
        try:
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise

    def _size(self, queue: str) -> int:
        count = super()._size(queue)
        self.session.commit()
        return int(count)

    def held(self) -> int:
        """How many messages this channel holds leased (for tests and metrics)."""
        with self._held_lock:
            return len(self._held)


class Transport(_Transport):
    Channel = Channel


def _wal(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def _prepare(engine: Engine, table: str) -> None:
    """Add the lease column and an index for the fetch to kombu's message table (once per process)."""
    key = f"{engine.url}|{table}"
    if key in _prepared:
        return
    with _prepare_lock:
        if key in _prepared:
            return
        if "lease_until" not in {c["name"] for c in inspect(engine).get_columns(table)}:
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN lease_until FLOAT"))
                    # invisible rows without a lease were acknowledged, or lost by kombu's own transport
                    conn.execute(text(f"DELETE FROM {table} WHERE visible = false AND lease_until IS NULL"))
            except DBAPIError:  # another process added it first
                if "lease_until" not in {c["name"] for c in inspect(engine).get_columns(table)}:
                    raise
        with engine.begin() as conn:
            conn.execute(
                text(f"CREATE INDEX IF NOT EXISTS ix_{table}_queue_visible_id ON {table} (queue_id, visible, id)")
            )
        _prepared.add(key)
