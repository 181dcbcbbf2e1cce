"""The batcher shares a worker fairly between tenants: one message of each in turn, and a light tenant's
message classified in the express lane while a heavy tenant's batch runs. Pure threads, no services."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from labelwise.priority import freeze_startup_objects
from labelwise.worker import batching
from labelwise.worker.batching import Batcher


class Recorder:
    """A batch handler that records each batch and can be held inside a batch of a given tenant."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.hold = {"b": threading.Event()}
        self.inside = {"b": threading.Event()}
        self.lock = threading.Lock()

    def __call__(self, items: list[tuple[str, int]]) -> list[str]:
        with self.lock:
            self.batches.append(list(items))
        tenants = {t for t, _ in items}
        for tenant, gate in self.hold.items():
            if tenant in tenants:
                self.inside[tenant].set()
                assert gate.wait(10), "the test never released the batch"
        return [f"{t}{i}" for t, i in items]

    def handled(self, count: int, timeout_s: float = 10) -> int:
        """Wait until ``count`` items were handed to batches (or the time runs out); how many were."""
        deadline = time.monotonic() + timeout_s
        while sum(len(b) for b in self.batches) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return sum(len(b) for b in self.batches)


def test_one_message_of_each_tenant_in_turn() -> None:
    """A tenant with 100 messages waiting does not push another tenant's single message to a later batch."""
    handler = Recorder()
    batcher: Batcher[tuple[str, int], str] = Batcher(handler, max_batch=10, key=lambda item: item[0])
    batcher.put(("b", -1))
    assert handler.inside["b"].wait(5)  # the main lane is now busy with b's first batch
    for i in range(100):
        batcher.put(("b", i))
    batcher.put(("a", 0))
    assert batcher.waiting("b") == 100 and batcher.waiting("a") == 1
    handler.hold["b"].set()
    handled = handler.handled(102)
    second = handler.batches[1]
    assert ("a", 0) in second, handler.batches[:3]
    assert [i for t, i in second if t == "b"] == list(range(9))  # b's messages stay in order
    assert handled == 102


def test_a_light_tenant_is_not_kept_waiting_by_a_heavy_batch() -> None:
    """The express lane classifies a light tenant's message while the main lane is inside a big batch."""
    handler = Recorder()
    batcher: Batcher[tuple[str, int], str] = Batcher(handler, max_batch=64, key=lambda item: item[0], express_batch=8)
    with batcher._cond:  # b is heavy from the start (its first messages alone would be light)
        for i in range(64):
            batcher.put(("b", i))
    assert handler.inside["b"].wait(5)
    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(batcher.submit, ("a", 1))
        assert outcome.result(timeout=5) == "a1"  # while b's batch is still held
    assert not handler.hold["b"].is_set()
    handler.hold["b"].set()


def test_the_express_lane_takes_no_heavy_tenant() -> None:
    """Without it (a plain first-come queue) a heavy tenant would fill the express lane as well."""
    handler = Recorder()
    batcher: Batcher[tuple[str, int], str] = Batcher(handler, max_batch=4, key=lambda item: item[0], express_batch=2)
    with batcher._cond:  # the lanes see all 40 at once (b's first two alone would be light: up to 8 held)
        for i in range(40):
            batcher.put(("b", i))
    assert handler.inside["b"].wait(5)
    time.sleep(0.3)  # the express lane had every chance to take some of b
    assert len(handler.batches) == 1 and batcher.waiting("b") == 36
    handler.hold["b"].set()
    assert handler.handled(40) == 40


def test_others_seen_tells_whether_another_tenant_is_active() -> None:
    """The consumer moves a tenant past its share aside only when someone else may be waiting."""
    batcher: Batcher[tuple[str, int], str] = Batcher(lambda items: [""] * len(items), max_batch=4, key=lambda i: i[0])
    batcher.put(("b", 0))
    assert not batcher.others_seen("b", within_s=60)
    batcher.put(("a", 0))
    assert batcher.others_seen("b", within_s=60) and batcher.others_seen("a", within_s=60)
    time.sleep(0.05)
    assert not batcher.others_seen("b", within_s=0.01)


def test_the_main_lane_leaves_a_light_tenant_to_the_free_express_lane() -> None:
    """A light tenant's message that arrives with a heavy tenant's backlog is classified in the express
    lane, not in the main lane's big batch (whichever lane wakes first)."""
    for _ in range(20):
        lanes: dict[tuple[str, int], str] = {}

        def handle(items: list[tuple[str, int]], lanes: dict[tuple[str, int], str] = lanes) -> list[str]:
            for item in items:
                lanes[item] = threading.current_thread().name
            return ["" for _ in items]

        batcher: Batcher[tuple[str, int], str] = Batcher(handle, max_batch=64, key=lambda i: i[0], express_batch=8)
        with batcher._cond:  # both lanes see everything at once when this is released
            batcher.put(("a", 0))
            for i in range(40):
                batcher.put(("b", i))
        deadline = time.monotonic() + 5
        while len(lanes) < 41 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert lanes[("a", 0)] == "labelwise-batcher-express", lanes
        assert {lanes[("b", i)] for i in range(40)} == {"labelwise-batcher-main"}


def test_the_main_lane_waits_at_its_checkpoints_while_an_urgent_batch_runs() -> None:
    """The main lane's next step starts only once the express lane's batch is done (or after the longest
    wait, so a flood is slowed, never stopped); the urgent thread itself never waits."""
    from labelwise.priority import Turns

    turns = Turns(max_wait_s=5)

    def main_step(order: list[str]) -> None:
        turns.checkpoint()
        order.append("main")

    early, order = beside_an_urgent_batch(turns, main_step)
    assert early == []  # the main lane waits
    assert order == ["urgent", "main"]
    patient = Turns(max_wait_s=0.2)
    with patient.urgent():
        done = threading.Thread(target=patient.checkpoint)
        done.start()
        done.join(1)
        assert not done.is_alive()  # it waited its longest, then went on
        steps: list[float] = []

        def flood() -> None:  # urgent work never ends: the flood still gets half of its time
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                before = time.monotonic()
                patient.checkpoint()
                steps.append(time.monotonic() - before)
                time.sleep(0.01)  # a step of work

        runner = threading.Thread(target=flood)
        runner.start()
        runner.join(5)
    assert sum(steps) <= 0.65, sum(steps)  # waits of 0.2 s, each followed by 0.2 s of work
    assert max(steps) <= 0.3 and len(steps) >= 5, (max(steps), len(steps))  # it went on between waits


def test_startup_objects_stay_out_of_later_full_collections() -> None:
    """freeze_startup_objects (the worker after building its resources, the API before serving): a full
    collection afterwards walks only what was made since, not the modules and app built at startup."""
    before = len(gc.get_objects())
    try:
        freeze_startup_objects()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000 and frozen >= before // 2, (frozen, before)
        made_since = [object() for _ in range(10)] + [[] for _ in range(1000)]
        assert len(gc.get_objects()) < 10_000 + len(made_since), len(gc.get_objects())
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_a_light_message_is_not_put_in_a_flood_batch_while_the_express_lane_is_busy() -> None:
    """The main lane took one message of each tenant in turn even while the express lane was busy, so a
    light tenant's message went into the flood's batch (in a worker with a bulk process: a niced process
    with the flood's backlog) and waited for all of it. Now it waits for the express lane, unless no heavy
    tenant's message waits for the main lane."""
    batches: list[tuple[str, list[tuple[str, int]]]] = []
    inside, hold = threading.Event(), threading.Event()

    def handle(lane: str) -> Callable[[list[tuple[str, int]]], list[str]]:
        def run(items: list[tuple[str, int]]) -> list[str]:
            batches.append((lane, list(items)))
            if ("c", 0) in items:
                inside.set()
                assert hold.wait(10)
            return ["" for _ in items]

        return run

    batcher: Batcher[tuple[str, int], str] = Batcher(
        handle("express"), max_batch=64, key=lambda i: i[0], express_batch=2, main_handle=handle("main")
    )
    batcher.put(("c", 0))
    assert inside.wait(5)  # the express lane is busy with light tenant c
    with batcher._cond:  # the main lane sees both at once
        batcher.put(("a", 0))
        for i in range(10):
            batcher.put(("b", i))
    deadline = time.monotonic() + 5
    while sum(len(items) for _, items in batches) < 11 and time.monotonic() < deadline:
        time.sleep(0.005)
    flood = [items for lane, items in batches if ("b", 0) in items]
    assert flood and ("a", 0) not in flood[0], batches
    assert [lane for lane, items in batches if ("b", 0) in items] == ["main"]  # main_handle, not handle
    hold.set()
    while sum(len(items) for _, items in batches) < 12 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sum(len(items) for _, items in batches) == 12, batches  # a is classified all the same


def test_a_flood_that_holds_few_messages_is_not_light(monkeypatch: Any) -> None:
    """A flood's messages past its share are moved aside (labelwise.worker.consumer), so right after each
    of its batches it held only a few here: counted by what it held, it was light, and its messages took
    the express lane from the light tenants. Now a tenant with more than four express batches of messages
    in about the last RATE_WINDOW_S is heavy however few it holds, and light again once it slows."""
    monkeypatch.setattr(batching, "RATE_WINDOW_S", 0.5, raising=False)
    monkeypatch.setattr(batching, "HEAVY_HOLD_S", 1.0, raising=False)
    batcher, lanes, done = two_lanes()
    for i in range(40):  # one at a time: it never holds more than one (a light tenant's express limit is 8)
        batcher.put(("b", i))
        assert done.acquire(timeout=5)
    batcher.put(("b", 40))  # 41 in a window, even if sending them took the whole window: at least 25
    assert done.acquire(timeout=5)
    assert lanes[-1] == ("main", 40), lanes
    assert lanes[0] == ("express", 0)  # its first few messages were light
    time.sleep(2.0)  # four windows without a message: its count (41 at most) has decayed below 1, and it
    # has not been heavy for longer than HEAVY_HOLD_S
    batcher.put(("b", 41))
    assert done.acquire(timeout=5)
    assert lanes[-1] == ("express", 41), lanes


def test_a_flood_stays_heavy_for_a_while_however_slowly_it_arrives(monkeypatch: Any) -> None:
    """A flood's rate here is how fast the main lane takes it, not how fast it sends: behind a slow main-lane
    batch its count decayed, it looked light for a moment, and its messages (its huge label set's too) took
    the express lane from the light tenants. A tenant seen heavy (by its count, or by a message from its
    backlog in the overflow lane) is not light for HEAVY_HOLD_S, whatever its rate; then it is again."""
    monkeypatch.setattr(batching, "RATE_WINDOW_S", 0.2, raising=False)
    monkeypatch.setattr(batching, "HEAVY_HOLD_S", 1.5, raising=False)
    batcher, lanes, done = two_lanes()
    batcher.put(("a", 0))
    assert done.acquire(timeout=5)
    batcher.put(("b", 0), backlogged=True)  # one message, from the overflow lane
    assert done.acquire(timeout=5)
    for i in range(1, 20):  # a burst: heavy by its count too
        batcher.put(("c", i))
    for _ in range(1, 20):
        assert done.acquire(timeout=5)
    time.sleep(0.6)  # three rate windows: both counts have decayed, the hold has not passed
    batcher.put(("b", 1))
    batcher.put(("c", 20))
    assert done.acquire(timeout=5) and done.acquire(timeout=5)
    assert ("express", 0) in lanes and ("main", 0) in lanes, lanes
    assert ("main", 1) in lanes and ("main", 20) in lanes, lanes  # still heavy, one message each
    time.sleep(1.6)
    batcher.put(("b", 2))
    batcher.put(("c", 21))
    assert done.acquire(timeout=5) and done.acquire(timeout=5)
    assert ("express", 2) in lanes and ("express", 21) in lanes, lanes  # not heavy for a while: light again


def two_lanes() -> tuple[Batcher[tuple[str, int], str], list[tuple[str, int]], threading.Semaphore]:
    """A batcher of (tenant, n) items with an express lane of 2; the (lane, n) each item was classified in,
    in order, and a semaphore released once per item done."""
    lanes: list[tuple[str, int]] = []
    done = threading.Semaphore(0)

    def handle(lane: str) -> Callable[[list[tuple[str, int]]], list[str]]:
        def run(items: list[tuple[str, int]]) -> list[str]:
            lanes.extend((lane, i) for _, i in items)
            for _ in items:
                done.release()
            return ["" for _ in items]

        return run

    batcher: Batcher[tuple[str, int], str] = Batcher(
        handle("express"), max_batch=64, key=lambda i: i[0], express_batch=2, main_handle=handle("main")
    )
    return batcher, lanes, done


def test_a_delivery_waits_while_an_express_batch_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood's deliveries run in the worker's pool threads beside the express lane (even with a bulk
    process): each attempt starts at a checkpoint, so it waits while a light tenant's express batch runs, as
    the main lane does (before it leases the delivery: an attempt killed holding its lease is sent again
    only when the lease ends)."""
    from labelwise.pipeline import delivering
    from labelwise.priority import Turns

    turns = Turns(max_wait_s=5)
    monkeypatch.setattr(delivering, "TURNS", turns, raising=False)

    def attempt(order: list[str]) -> None:
        class Sessions:  # the attempt's first step: lock the delivery's row
            def begin(self) -> Any:
                order.append("delivery")
                raise RuntimeError("no database in this test")

        with contextlib.suppress(RuntimeError):
            delivering.deliver(Sessions(), None, None, "d1", max_attempts=3, delay_s=lambda n, after: 0.0)  # type: ignore[arg-type]

    early, order = beside_an_urgent_batch(turns, attempt)
    assert early == []  # the delivery waits for the express batch
    assert order == ["urgent", "delivery"]


def beside_an_urgent_batch(turns: Any, step: Callable[[list[str]], None]) -> tuple[list[str], list[str]]:
    """Run ``step(order)`` in a thread while another holds an urgent batch (which passes a checkpoint of its
    own, never waiting on itself, then appends "urgent" as it ends): what ``order`` held 0.2 s after the
    step started, and once both threads ended."""
    inside, release, order = threading.Event(), threading.Event(), []

    def urgent_batch() -> None:
        with turns.urgent():
            inside.set()
            turns.checkpoint()
            release.wait(5)
            order.append("urgent")

    first = threading.Thread(target=urgent_batch)
    first.start()
    assert inside.wait(5)
    second = threading.Thread(target=step, args=(order,))
    second.start()
    time.sleep(0.2)
    early = list(order)
    release.set()
    first.join(5)
    second.join(5)
    return early, order
