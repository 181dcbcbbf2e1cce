"""Light tenants go first (issue 11: no tenant starves another): in a worker, their batches; in any process, the GIL.

A worker process runs two batcher threads on the same cores: the main lane classifies a flooding
tenant's batches, the express lane the few messages of light tenants beside them
(:mod:`labelwise.worker.batching`). Left alone, both share the CPU (and the GIL), so a light tenant's
batch takes as long as the flood lets it: 5 ms alone, 25 ms beside a flood (p50, 2 cores).

Here the express lane's batch runs inside :meth:`Turns.urgent`, and the main lane passes
:meth:`Turns.checkpoint` between its steps (before each model call, before it stores a batch, before it
publishes and acknowledges): while an urgent batch runs, it waits there. A thread that waited then runs
at least as long as it waited before it waits again, and never waits more than ``MAX_WAIT_S`` at once,
so a flood gets at least half of its thread's time however many light tenants keep the express lane
busy: slowed, never stopped. A step already running finishes; the encoder splits a big batch into calls
of at most its ``batch_size``, so the urgent batch waits one such step at most. Deliveries (a flood's
results posted to its slow webhook, in the worker's pool threads) pass a checkpoint before each attempt.

Between threads the kernel decides: the main lane's thread, and the threads of the model session it
uses, run at ``BULK_NICE``, while the express lane calls a session of its own at the normal priority
(``OnnxEncoder(urgent_session=True)``), so the express batch gets the cores before a flood's batch does.
Against other processes (the API and the database serving a light tenant's message) a thread's nice
counts only where they share a session or a cgroup: with Linux's autogroups, each session first gets an
even share of the cores. The bulk process (``LABELWISE_BULK_PROCESS``) therefore starts a session of its
own at ``BULK_PROCESS_NICE`` (:func:`background_process`), and a flood's batches there yield to every
other process of the host.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

MAX_WAIT_S = 0.5
# How long a thread holding the GIL runs before one that waits for it gets it (Python's default: 5 ms).
# A light tenant's work waits for the GIL after each database or broker round trip while another
# thread does a big tenant's Python work (the worker storing a flood's batch of 64, the API parsing a
# label set of 5,000 texts): at 5 ms a switch, A's in-batch p99 beside a flood was 126 ms, at 1 ms 80 ms
# (bench/noisy_neighbour.py, one run each); one tenant alone, 398 and 399 msgs/s at 5 ms, 399 and 410 at
# 1 ms (bench/throughput.py --n 2000 --processes 1, 2026-11-30).
GIL_SWITCH_S = 0.001
BACKGROUND_NICE = 10
# A flood's own work (the main lane's thread, its model session's threads) runs this much below the
# light tenants' express lane: the cores go to it first. Nice 5 weighs about a third of nice 0 under
# Linux's scheduler. Against the other processes of the host (the API, the database) a thread's nice
# counts only where they share a session or a cgroup (see background_process).
BULK_NICE = 5
# The bulk process (LABELWISE_BULK_PROCESS): a session of its own at this nice (about a thirtieth of
# nice 0), so the API, the database and the worker's express lane serving a light tenant get the cores
# before a flood's batches. Beside a flood, tenant A's p99 at 5 and at 15: 94, 91 against 102, 81 ms
# (bench/noisy_neighbour.py, 2026-11-30); at 15 the flood still got more of its messages done than
# without a bulk process (bench/noisy_neighbour.md).
BULK_PROCESS_NICE = 15


def share_the_gil() -> None:
    """Set this process's GIL switch interval to GIL_SWITCH_S (the API and the worker call it)."""
    sys.setswitchinterval(GIL_SWITCH_S)


def freeze_startup_objects() -> None:
    """Keep what a process built to start (modules, the app, its engine and model wrappers) out of every
    later garbage collection (``gc.freeze``), once it has started.

    A full collection walks every object the collector tracks and holds the GIL while it does, so every
    thread of the process waits: in a worker beside a flood, 86-111 ms each, and the slowest of a light
    tenant's jobs was the one that met it (bench/noisy_neighbour.py). Objects made at startup live as
    long as the process; frozen, a full collection walks only what was made since."""
    gc.collect()
    gc.freeze()


class Turns:
    """Who may go on now (one per process: :data:`TURNS`)."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S) -> None:
        self.max_wait_s = max_wait_s
        self._urgent = 0
        self._cond = threading.Condition()
        self._local = threading.local()

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """While this block runs, other threads wait at their checkpoints; this thread never does."""
        with self._cond:
            self._urgent += 1
        before = getattr(self._local, "urgent", False)
        self._local.urgent = True
        try:
            yield
        finally:
            self._local.urgent = before
            with self._cond:
                self._urgent -= 1
                self._cond.notify_all()

    def is_urgent(self) -> bool:
        """Whether the calling thread is inside an urgent block."""
        return bool(getattr(self._local, "urgent", False))

    def checkpoint(self) -> None:
        """Outside an urgent block: wait while one runs (see the module docstring for how long)."""
        local = self._local
        if getattr(local, "urgent", False) or not self._urgent:
            return
        now = time.monotonic()
        if now < getattr(local, "run_until", 0.0):  # it has not yet run as long as it last waited
            return
        with self._cond:
            self._cond.wait_for(lambda: self._urgent == 0, timeout=self.max_wait_s)
        waited = time.monotonic() - now
        local.run_until = now + 2 * waited


AUTOGROUP = Path("/proc/self/autogroup")


def background_process(nice: int) -> bool:
    """Lower the calling process's CPU priority against every other process of the host (the worker that
    started it, the API, the database), not only against its own threads.

    A nice value alone does not do that on a Linux host with autogroups (``kernel.sched_autogroup_enabled``,
    on by default in most distributions; it applies to processes outside a cgroup of their own): there the
    cores are shared first evenly between sessions, and a nice value only orders the threads of one
    session. A process at nice 5 in a session of its own takes as much of the cores as the API does. So
    the process also starts a session of its own (a spawned child is not a group leader, so it may) and
    sets that session's nice. Returns whether it did; where it could not (not Linux, no autogroups,
    not permitted) the nice value of its threads still applies, as it does inside one cgroup, and the
    process stays in its parent's session (alone in a session at nice 0 it would take more, not less)."""
    with contextlib.suppress(AttributeError, OSError):  # every thread started from here on inherits it
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    if not os.access(AUTOGROUP, os.W_OK):
        return False
    try:
        os.setsid()
        AUTOGROUP.write_text(f"{nice}\n")
    except (AttributeError, OSError):
        return False
    return True


def background_thread(nice: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's CPU priority (Linux: a thread's own nice value): for work done for one
    tenant outside the hot path, such as embedding a new label-set version of 5,000 texts, which would
    otherwise take the cores from every tenant's messages (its model calls also wait at checkpoints)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted: run as is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


TURNS = Turns()
