"""The main lane's batches in a process of their own (issue 11: a flood never holds a light tenant's GIL).

A worker process runs the express lane (light tenants' messages) and the main lane (everything else: a
flooding tenant's batches) side by side (:mod:`labelwise.worker.batching`). In one process they share
one GIL: each database round trip of the express batch waits for the GIL while the main lane claims,
stores and publishes 64 messages of the flood in Python, and the kernel cannot help, since the thread
holding the GIL is the flood's own (bench/noisy_neighbour.py: the GIL held 43% of the time beside a
flood, the main lane half of that).

With ``LABELWISE_BULK_PROCESS`` on (off by default; it needs the express lane, ``LABELWISE_TENANT_SHARE``),
the worker starts one child process, at ``BULK_PROCESS_NICE`` in a session of its own, with a model and a
database engine of its own, that does the whole of each main-lane batch: claim, classify, store, publish its
deliveries. The worker's own process keeps
Celery's consumer, the express lane, the deliveries and the acknowledgements: a main-lane batch is sent
to the child as decoded messages, the child answers one outcome per message, and the worker acknowledges
the ones that ended, as it does for a batch it classified itself.

Nothing depends on the child being there:

- until the first child has loaded the model (a few seconds after the worker starts), the main lane
  classifies in the worker's own process, as it does without one;
- if it dies (killed, out of memory, a message that crashes the model), a new child is started and the
  batch it held is tried again there (its messages unacknowledged meanwhile, their jobs claimed at most
  ``LABELWISE_MAX_ATTEMPTS`` times): a message that kills whoever encodes it kills bulk processes, one
  per attempt, never the worker and the light tenants it serves; if three children in a row die before
  they are ready, the worker stops starting them and classifies those batches itself;
- it exits when the worker's end of the pipe closes (the worker stopped, or was killed), once its
  batch is done. It ignores Ctrl-C and SIGTERM: the worker, which gets them, stops it after its last batch.

What the child measures (model calls, label-set index builds) goes back with each batch's outcomes into the
worker's metrics.

The child runs in a session of its own: on a Linux host with autogroups the cores are shared evenly
between sessions before any nice value counts, so in its worker's session its nice would only order it
against the worker's own threads, and as a session at nice 0 it would take as much of the cores as the
API or the database. At ``BULK_PROCESS_NICE`` in its own session, a flood's batches yield to every other
process of the host (``labelwise.priority.background_process``).

Why it is off by default: a second process costs memory (about 250 MB; the worker and its child peaked
at 750-960 MB beside a flood, against 480-740 MB without) and
a second model load at every start, and its own claims, stores and publishes are no cheaper than in
the worker, plus a pickle each way. Beside a flood on 2 cores it lowered a light tenant's p99 in five of
six interleaved pairs of runs (bench/noisy_neighbour.py, README), and a crashing message kills the
child, not the worker: where the memory is there, turn it on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from labelwise.errors import RetryableError
from labelwise.pipeline.storing import Classified
from labelwise.pipeline.working import Message
from labelwise.priority import BULK_PROCESS_NICE, background_process
from labelwise.settings import Settings
from labelwise.worker import metrics as worker_metrics

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 30.0  # how long a stopping worker waits for its child's last batch
RESTART_AFTER_S = 1.0  # the least time between two starts of a child
READY_TIMEOUT_S = 120.0  # how long a main-lane batch waits for a starting child before it is done here
MAX_FAILED_STARTS = 3  # children in a row that die before they are ready: the worker stops starting them


@dataclass
class Measured:
    """What the child measured since its last answer (replayed into the worker's metrics): its model
    calls, and the label-set indexes it built (its background builder's too)."""

    encodes: list[float] = field(default_factory=list)
    index_builds: list[tuple[bool, float]] = field(default_factory=list)

    def encode_done(self, seconds: float) -> None:
        self.encodes.append(seconds)  # list.append is atomic: take() swaps the lists, never loses one

    def label_index_built(self, *, refined: bool, seconds: float) -> None:
        self.index_builds.append((refined, seconds))

    def take(self) -> Measured:
        taken = Measured()
        self.encodes, taken.encodes = taken.encodes, self.encodes
        self.index_builds, taken.index_builds = taken.index_builds, self.index_builds
        return taken

    def replay(self) -> None:
        for seconds in self.encodes:
            worker_metrics.encode_done(seconds)
        for refined, seconds in self.index_builds:
            worker_metrics.label_index_built(refined=refined, seconds=seconds)


class BulkProcess:
    """The worker's side: starts the child, hands it a batch, takes back its outcomes.

    Only the main lane's thread calls :meth:`classify` (one batch at a time); :meth:`stop` is called once,
    at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")  # a fork would copy the worker's threads' locks
        self._process: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._started_s = float("-inf")
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # a batch, or the stop, written whole on the pipe
        self._stopped = False
        self._failed_starts = 0
        self._given_up = False
        self._was_ready = False  # a child has been ready once

    def start(self) -> None:
        """Start a child (it says it is ready once it has loaded the model); returns at once."""
        with self._lock:
            if self._stopped:
                return
            ours, theirs = self._context.Pipe()
            process = self._context.Process(
                target=serve, args=(theirs, self.settings), name="labelwise-bulk", daemon=True
            )
            process.start()
            theirs.close()
            self._process, self._conn, self._ready = process, ours, False
            self._started_s = time.monotonic()
        log.info("bulk process %d started: the main lane's batches go to it once it is ready", process.pid)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def ready(self, timeout_s: float = 0.0) -> bool:
        """Whether the child can take a batch, waiting up to ``timeout_s`` for it to load the model; a
        child that died is replaced (at most once a second)."""
        deadline = time.monotonic() + timeout_s
        while True:
            conn, process = self._conn, self._process
            if self._stopped or self._given_up or conn is None or process is None:
                return False
            if self._ready:
                return True
            try:
                if conn.poll(min(0.1, max(0.0, deadline - time.monotonic()))) and conn.recv() == "ready":
                    self._ready, self._was_ready, self._failed_starts = True, True, 0
                    log.info("bulk process %d ready", process.pid)
                    return True
            except (EOFError, OSError):
                self._died("while it started", starting=True)
            else:
                if not process.is_alive():
                    self._died("while it started", starting=True)
            if time.monotonic() >= deadline:
                return False

    def classify(self, messages: list[Message]) -> list[Classified | Exception] | None:
        """The child's outcomes for ``messages`` (each Classified, its deliveries already published, or
        the exception to retry it with); None when there is no child to take them: classify them here.

        While the first child loads its model, the worker does not wait for it (it serves from the moment
        its own model is loaded, as without a bulk process). A child that replaces one that died is waited
        for (up to ``READY_TIMEOUT_S``): the batch that killed it, with a message that kills whoever
        encodes it, is tried again there, never in the worker's own process."""
        if not self.ready(timeout_s=READY_TIMEOUT_S if self._was_ready else 0.0):
            return None
        assert self._conn is not None
        try:
            with self._sending:
                self._conn.send(messages)
            outcomes, measured = self._conn.recv()
        except (EOFError, OSError) as e:
            self._died(f"with a batch of {len(messages)} ({type(e).__name__})")
            error = RetryableError("the worker's bulk process ended during the batch; it is tried again")
            return [error] * len(messages)
        measured.replay()
        return outcomes

    def _died(self, when: str, *, starting: bool = False) -> None:
        process, code = self._process, None
        if process is not None:
            process.join(timeout=5)
            code = process.exitcode
        self._close()
        worker_metrics.bulk_process_ended()
        self._failed_starts = self._failed_starts + 1 if starting else 0
        if self._failed_starts >= MAX_FAILED_STARTS:
            self._given_up = True
            log.error(
                "bulk process %s ended %s (exit code %s), the %dth in a row not to get ready: this worker "
                "classifies its main lane's batches itself from now on",
                self.pid, when, code, self._failed_starts,
            )  # fmt: skip
            return
        log.warning("bulk process %s ended %s (exit code %s); starting another", self.pid, when, code)
        if not self._stopped:
            time.sleep(max(0.0, self._started_s + RESTART_AFTER_S - time.monotonic()))
            self.start()

    def _close(self) -> None:
        conn, self._conn, self._ready = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the child once its batch is done (the worker is stopping)."""
        with self._lock:
            self._stopped = True
            process, conn = self._process, self._conn
        if process is None:
            return
        if conn is not None:
            with self._sending, contextlib.suppress(OSError):
                conn.send(None)  # after a batch sent now: the child answers it, then stops
        process.join(timeout=timeout_s)
        if process.is_alive():
            log.warning("bulk process %d did not stop in %.0fs; terminating it", process.pid, timeout_s)
            process.terminate()
            process.join(timeout=5)
        self._close()


def serve(conn: Connection, settings: Settings) -> None:
    """The child: build what a batch needs, say ready, then classify each batch the worker sends."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # the worker stops it, after its last batch
        signal.signal(sig, signal.SIG_IGN)
    background_process(BULK_PROCESS_NICE)  # every thread of it, the model's included
    from labelwise import logs
    from labelwise.worker.resources import build_bulk_side

    logs.configure(settings.log_format, settings.log_level)
    started = time.monotonic()
    measured = Measured()
    classify, publish = build_bulk_side(settings, measured)
    log.info("bulk process %d: model loaded in %.1fs", os.getpid(), time.monotonic() - started)
    conn.send("ready")
    while True:
        try:
            messages = conn.recv()
        except (EOFError, OSError):
            return  # the worker is gone
        if messages is None:
            return
        outcomes = classify(messages)
        ended = [o for o in outcomes if isinstance(o, Classified)]
        publish([d for o in ended for d in o.deliveries])
        answer = [Classified(o.view, []) if isinstance(o, Classified) else _portable(o) for o in outcomes]
        try:
            conn.send((answer, measured.take()))
        except (EOFError, OSError):
            return


def _portable(error: Exception) -> RetryableError:
    """What goes back to the worker for a message to retry: a RetryableError of the same kind and words
    (the worker retries every outcome that is not Classified, and logs what it was).

    The pipe carries only what this module builds (messages decoded from JSON, job views, these errors);
    multiprocessing serializes it between the worker and its own child, never on a network."""
    if isinstance(error, RetryableError):
        return type(error)(error.message)
    return RetryableError(f"{type(error).__name__}: {error}")
