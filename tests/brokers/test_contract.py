"""The broker contract (labelwise/brokers/__init__.py), run against every broker labelwise supports:
the embedded SQL broker (on SQLite, and on PostgreSQL), Redis, RabbitMQ with a classic queue and with a
quorum queue. Consumers are real processes; a dead consumer is SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Consumer

from labelwise.brokers.acks import ack_many
from labelwise.brokers.lanes import SPILLED_HEADER, ShareHint, overflow_queue, set_share_hint
from tests.brokers.common import VISIBILITY_TIMEOUT_S, Broker
from tests.stacks import AMQP_URL, REDIS_URL, ROOT, need_service, postgres_database

pytestmark = pytest.mark.slow
BROKERS = ["sql-sqlite", "sql-postgresql", "redis", "rabbitmq", "rabbitmq-quorum"]


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    name = request.param
    if name == "sql-sqlite":
        yield Broker(name, f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    elif name == "sql-postgresql":
        with postgres_database() as url:
            yield Broker(name, f"sqla+{url}")
    elif name == "redis":
        need_service("Redis", "127.0.0.1", 6379)
        yield Broker(name, REDIS_URL)
    else:
        need_service("RabbitMQ", "127.0.0.1", 5672)
        yield Broker(name, AMQP_URL, quorum=name.endswith("quorum"))


@pytest.fixture
def queue(broker: Broker) -> Iterator[str]:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    yield name
    with broker.connection() as conn, conn.channel() as channel, contextlib.suppress(Exception):
        broker.queue(name).bind(channel).delete()
        broker.queue(overflow_queue(name)).bind(channel).delete()


class ConsumerProcess:
    def __init__(self, broker: Broker, queue: str, mode: str) -> None:
        args = [sys.executable, "-m", "tests.brokers.consumer", broker.url, queue, mode]
        self.proc = subprocess.Popen(
            [*args, *(["quorum"] if broker.quorum else [])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        )
        self.took: list[str] = []

    def wait_took(self, count: int, timeout_s: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        while len(self.took) < count:
            assert time.monotonic() < deadline, f"took {self.took}, wanted {count}"
            line = self.proc.stdout.readline()
            if not line:  # the process ended
                break
            self.took.append(line.split()[1])
        return self.took

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def drain(broker: Broker, queue: str, *, seconds: float, ack: bool = True, expect: int | None = None) -> list[str]:
    """Everything this process receives from ``queue`` within ``seconds`` (acknowledged); with ``expect``,
    it stops once that many arrived and then listens one more second for any extra."""
    got: list[str] = []
    with broker.connection() as conn, conn.channel() as channel:

        def on_message(body: Any, message: Any) -> None:
            got.append(body["id"])
            if ack:
                message.ack()

        with Consumer(channel, [broker.queue(queue)], callbacks=[on_message], prefetch_count=50, accept=["json"]):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if expect is not None and len(got) >= expect:
                    deadline = min(deadline, time.monotonic() + 1.0)
                    expect = None
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
    return got


def messages(n: int) -> list[dict[str, str]]:
    return [{"id": f"m{i}"} for i in range(n)]


def test_acknowledged_messages_are_delivered_once(broker: Broker, queue: str) -> None:
    broker.publish(queue, messages(20))
    assert sorted(drain(broker, queue, seconds=10, expect=20)) == sorted(m["id"] for m in messages(20))
    assert drain(broker, queue, seconds=VISIBILITY_TIMEOUT_S + 1) == []


def test_messages_held_by_a_killed_consumer_come_back(broker: Broker, queue: str) -> None:
    broker.publish(queue, messages(5))
    holder = ConsumerProcess(broker, queue, "hold")
    try:
        held = holder.wait_took(5)
    finally:
        holder.kill()
    assert sorted(drain(broker, queue, seconds=VISIBILITY_TIMEOUT_S + 8, expect=5)) == sorted(held)


def test_a_consumer_killed_right_after_taking_a_message_loses_nothing(broker: Broker, queue: str) -> None:
    """Killed after the broker handed the message over and before the consumer's own bookkeeping: the
    instant kombu's stock Redis transport (BRPOP, then record as unacked) and SQL transport lose it."""
    broker.publish(queue, messages(1))
    dying = ConsumerProcess(broker, queue, "die-on-take")
    try:
        assert dying.proc.wait(timeout=60) == 9  # it took the message and died
    finally:
        dying.kill()
    assert drain(broker, queue, seconds=VISIBILITY_TIMEOUT_S + 8, expect=1) == ["m0"]


def test_a_live_consumer_keeps_its_messages_past_the_visibility_timeout(broker: Broker, queue: str) -> None:
    broker.publish(queue, messages(3))
    holder = ConsumerProcess(broker, queue, "hold")
    try:
        holder.wait_took(3)
        assert drain(broker, queue, seconds=2.5 * VISIBILITY_TIMEOUT_S) == []  # renewed, not redelivered
    finally:
        holder.kill()


def test_a_rejected_message_is_requeued(broker: Broker, queue: str) -> None:
    broker.publish(queue, messages(1))
    with broker.connection() as conn, conn.channel() as channel:
        rejected: list[str] = []

        def reject(body: Any, message: Any) -> None:
            rejected.append(body["id"])
            message.reject(requeue=True)

        with Consumer(channel, [broker.queue(queue)], callbacks=[reject], accept=["json"]):
            deadline = time.monotonic() + 10
            while not rejected and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
    assert rejected[0] == "m0"  # (RabbitMQ may hand it straight back to this consumer)
    assert drain(broker, queue, seconds=5, expect=1) == ["m0"]


def test_sql_broker_deletes_acknowledged_rows(tmp_path: Path) -> None:
    """The embedded broker's table holds what is queued or held, not every message ever sent."""
    from sqlalchemy import create_engine, text

    broker = Broker("sql-sqlite", f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    broker.publish("rows", messages(30))
    assert len(drain(broker, "rows", seconds=10, expect=30)) == 30
    engine = create_engine(f"sqlite:///{tmp_path / 'broker.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM kombu_message")).scalar() == 0
    engine.dispose()


def test_a_batch_acknowledged_at_once_settles_exactly_its_messages(broker: Broker, queue: str) -> None:
    """labelwise acknowledges a batch in one call (AMQP basic.ack multiple when safe, one Redis pipeline,
    one SQL statement); the messages left out, here the first and the fifth, are not settled with it."""
    from labelwise.brokers.acks import OUTSTANDING, ack_many

    broker.publish(queue, messages(6))
    held: list[Any] = []
    with broker.connection() as conn, conn.channel() as channel:

        def hold(body: Any, message: Any) -> None:
            OUTSTANDING.received(message)
            held.append(message)

        with Consumer(channel, [broker.queue(queue)], callbacks=[hold], prefetch_count=10, accept=["json"]):
            deadline = time.monotonic() + 10
            while len(held) < 6 and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
            assert sorted(m.payload["id"] for m in held) == [f"m{i}" for i in range(6)]
            held.sort(key=lambda m: m.payload["id"])
            ack_many([held[1], held[2], held[3], held[5]])
            assert [m.acknowledged for m in held] == [False, True, True, True, False, True]
    # the consumer is gone: what it did not acknowledge comes back, nothing else
    assert sorted(drain(broker, queue, seconds=VISIBILITY_TIMEOUT_S + 8, expect=2)) == ["m0", "m4"]


def test_a_consumer_of_a_queue_and_its_lane_takes_the_queue_first_and_half_the_window_from_the_lane(
    broker: Broker, queue: str
) -> None:
    """labelwise.brokers.lanes: a full overflow lane never keeps the main queue's messages out. (RabbitMQ
    applies the prefetch per consumer: there each queue has a window of its own.)"""
    lane = overflow_queue(queue)
    broker.publish(lane, [{"id": f"lane{i}"} for i in range(30)])
    broker.publish(queue, messages(5))
    held: list[Any] = []
    with broker.connection() as conn, conn.channel() as channel:
        queues = [broker.queue(queue), broker.queue(lane)]
        with Consumer(channel, queues, callbacks=[lambda _, message: held.append(message)], prefetch_count=10):
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
            first = [m.payload["id"] for m in held]
            from_lane = [m for m in first if m.startswith("lane")]
            assert sorted(set(first) - set(from_lane)) == [f"m{i}" for i in range(5)], first
            window = 10 if broker.name.startswith("rabbitmq") else 5
            assert 0 < len(from_lane) <= window, first
            assert from_lane == [f"lane{i}" for i in range(len(from_lane))]  # oldest first
            # acknowledged (as labelwise does, a batch at once), the lane's share frees up: the rest comes
            deadline = time.monotonic() + 15
            while len(held) < 35 and time.monotonic() < deadline:
                ack_many([m for m in held if not m.acknowledged])
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
            ack_many([m for m in held if not m.acknowledged])
    everything = [f"m{i}" for i in range(5)] + [f"lane{i}" for i in range(30)]
    assert sorted(m.payload["id"] for m in held) == sorted(everything)


def test_a_consumer_of_a_queue_and_its_lane_killed_right_after_taking_loses_nothing(broker: Broker, queue: str) -> None:
    """The lane's messages are taken as atomically as the queue's (Redis: one script, not BRPOP)."""
    broker.publish(overflow_queue(queue), messages(1))
    dying = ConsumerProcess(broker, f"{queue},{overflow_queue(queue)}", "die-on-take")
    try:
        assert dying.proc.wait(timeout=60) == 9
    finally:
        dying.kill()
    assert drain(broker, overflow_queue(queue), seconds=VISIBILITY_TIMEOUT_S + 8, expect=1) == ["m0"]


def test_a_tenant_past_its_share_goes_to_the_lane_in_order_and_nothing_is_lost(broker: Broker, queue: str) -> None:
    """lanes.ShareHint: with tenant b past its share, a transport that can (Redis) moves b's messages from
    the queue to the overflow lane inside the broker as it fetches, so a's message behind them is
    delivered first, and b's then come from the lane marked as moved. Every broker delivers each message
    exactly once, b's in the order sent (the others deliver all from the queue: the worker moves them)."""
    bodies = [{"id": f"b{i}"} for i in range(20)] + [{"id": "a0"}]
    headers = [{"kwargsrepr": f"{{'tenant': 'b', 'text': 'flood {i}'}}"} for i in range(20)]
    broker.publish(queue, bodies, headers=[*headers, {"kwargsrepr": "{'tenant': 'a', 'text': 'hello'}"}])
    moved: list[int] = []
    got: list[tuple[str, bool]] = []

    def on_message(body: Any, message: Any) -> None:
        got.append((body["id"], bool((message.headers or {}).get(SPILLED_HEADER))))
        message.ack()

    set_share_hint(ShareHint(share=2, held=lambda: {"b": 2, "a": 0}, moved=moved.append))
    try:
        with broker.connection() as conn, conn.channel() as channel:
            queues = [broker.queue(queue), broker.queue(overflow_queue(queue))]
            with Consumer(channel, queues, callbacks=[on_message], prefetch_count=4, accept=["json"]):
                deadline = time.monotonic() + 15
                while len(got) < len(bodies) and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.2)
                with contextlib.suppress(TimeoutError):  # and nothing more
                    conn.drain_events(timeout=0.5)
    finally:
        set_share_hint(None)
    ids = [i for i, _ in got]
    assert sorted(ids) == sorted(b["id"] for b in bodies), ids
    assert [i for i in ids if i.startswith("b")] == [f"b{i}" for i in range(20)]
    if broker.name == "redis":
        assert ids[0] == "a0" and sum(moved) == 20, got
        assert all(spilled for i, spilled in got if i.startswith("b")), got
    else:
        assert not moved


def test_two_workers_creating_the_sql_brokers_queue_at_once_both_start(tmp_path: Path) -> None:
    """Two workers starting together on the embedded broker each found no row for a new queue and inserted
    one: the second failed on the unique name and that worker exited. Here the other process's row lands
    between kombu's reads and its insert, as in that race."""
    from sqlalchemy import create_engine, text

    url = tmp_path / "broker.sqlite"
    broker = Broker("sql-sqlite", f"sqla+sqlite:///{url}")
    broker.publish("other", messages(1))  # the tables exist
    with broker.connection() as conn:
        channel = conn.default_channel
        session, add = channel.session, channel.session.add

        def add_after_the_other_worker(obj: object) -> None:
            if isinstance(obj, channel.queue_cls):
                engine = create_engine(f"sqlite:///{url}")
                with engine.begin() as other:
                    other.execute(text("INSERT INTO kombu_queue (name) VALUES (:name)"), {"name": obj.name})
                engine.dispose()
            add(obj)

        session.add = add_after_the_other_worker
        assert channel._get_or_create("racy").name == "racy"
        session.add = add
    broker.publish("racy", messages(2))
    assert len(drain(broker, "racy", seconds=10, expect=2)) == 2
