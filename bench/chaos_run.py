"""One stack of bench/chaos.py: servers, labelwise's processes, the load, the faults, the drain and the tally."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from cryptography.fernet import Fernet

from bench.chaos_tally import tally
from bench.services import Server, free_port, throwaway
from bench.standins import FlakyReceiver

ROOT = Path(__file__).resolve().parent.parent
ONNX_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "labelwise-test-onnx"  # shared with the tests
LABELS = ROOT / "examples" / "support.yaml"
TEXTS = [
    "I was charged twice for my subscription this month",
    "The app crashes every time I open the settings page",
    "I cannot log in, the password reset email never arrives",
    "Please cancel my account and delete my data",
    "Where can I download the invoice for last month?",
    "The export to CSV has been broken since the update",
    "How do I add a second user to our team plan?",
    "My card was declined although it has funds",
]


@dataclass(frozen=True)
class Plan:
    messages: int = 3000
    rate: float = 60.0  # messages sent per second, both channels together
    kill_every_s: float = 3.0
    seed: int = 7
    poison_every: int = 60  # one poison message in this many queue messages
    api_death_chance: float = 0.004  # per new job through the API
    drain_timeout_s: float = 300.0


@dataclass
class Counts:
    worker_kills: int = 0
    api_deaths: int = 0
    peak_rss: int = 0
    warm_rss: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # what was sent and how to find its job
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_stack(kind: str, plan: Plan, *, home: Path, log: Callable[[str], None] | None) -> dict[str, Any]:
    say = log or (lambda _: None)
    home.mkdir(parents=True)
    webhook, slack = FlakyReceiver("webhook", seed=plan.seed), FlakyReceiver("slack", seed=plan.seed + 1)
    try:
        with _servers(kind, home) as (database_url, broker_url, servers):
            env = _env(kind, home, database_url, broker_url)
            say(f"[{kind}] seeding")
            tenants = _seed(env, webhook_url=webhook.url, slack_url=slack.url)
            with _Fleet(env, home) as fleet:
                fleet.start_workers(2)
                fleet.start_api(death_chance=plan.api_death_chance)
                counts = Counts(warm_rss=fleet.rss())
                say(f"[{kind}] sending {plan.messages} messages with faults")
                _run_with_faults(kind, plan, fleet, servers, tenants, counts, env, say)
                webhook.calm()
                slack.calm()
                say(f"[{kind}] draining")
                drain_s = _drain(database_url, plan.drain_timeout_s, fleet, counts)
                fleet.stop_all()
            result = tally(database_url, counts.sent, tenants)
        result.update(
            worker_kills=counts.worker_kills,
            api_deaths=counts.api_deaths,
            db_restarts=servers["database"].restarts if "database" in servers else None,
            broker_restarts=servers["broker"].restarts if "broker" in servers else None,
            peak_rss_mb=round(counts.peak_rss / 2**20, 1),
            rss_growth_mb=round((counts.peak_rss - counts.warm_rss) / 2**20, 1),
            duplicates=webhook.receipts.duplicates() + slack.receipts.duplicates(),
            received=len(webhook.receipts.ok) + len(slack.receipts.ok),
            receiver_behaviours=dict(webhook.receipts.behaviours + slack.receipts.behaviours),
            drain_s=round(drain_s, 1),
        )
        return result
    finally:
        webhook.stop()
        slack.stop()


@contextlib.contextmanager
def _servers(kind: str, home: Path) -> Iterator[tuple[str, str, dict[str, Server]]]:
    if kind == "embedded":
        yield f"sqlite:///{home / 'labelwise.sqlite'}", f"sqla+sqlite:///{home / 'broker.sqlite'}", {}
        return
    broker_kind = "redis" if kind == "pg-redis" else "rabbitmq"
    with throwaway("postgresql", home / "pg") as pg, throwaway(broker_kind, home / broker_kind) as broker:
        from sqlalchemy import create_engine, text

        admin = create_engine(pg.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE labelwise"))
        admin.dispose()
        yield pg.url.rsplit("/", 1)[0] + "/labelwise", broker.url, {"database": pg, "broker": broker}


def _env(kind: str, home: Path, database_url: str, broker_url: str) -> dict[str, str]:
    return {
        "LABELWISE_HOME": str(home),
        "LABELWISE_DATABASE_URL": database_url,
        "LABELWISE_BROKER_URL": broker_url,
        "LABELWISE_QUEUE": "chaos",
        "LABELWISE_QUEUE_TYPE": "quorum" if kind == "pg-rabbitmq" else "classic",
        "LABELWISE_SECRET_KEY": Fernet.generate_key().decode(),
        "LABELWISE_OUTBOUND_ALLOW": "127.0.0.0/8",
        "LABELWISE_OUTBOUND_TIMEOUT_S": "2",
        "LABELWISE_DELIVERY_MAX_ATTEMPTS": "12",
        "LABELWISE_DELIVERY_BACKOFF_BASE_S": "0.5",
        "LABELWISE_DELIVERY_BACKOFF_MAX_S": "4",
        "LABELWISE_RECONCILE_INTERVAL_S": "1",
        "LABELWISE_RECONCILE_STUCK_AFTER_S": "20",
        "LABELWISE_BROKER_VISIBILITY_TIMEOUT_S": "10",
        "LABELWISE_DB_RETRY_BACKOFF_MAX_S": "2",
        "LABELWISE_WORKER_PROCESSES": "1",
        "LABELWISE_LOG_LEVEL": "WARNING",
        "LABELWISE_ONNX_DIR": str(ONNX_DIR),
        "HF_HUB_OFFLINE": "1",
    }


def _seed(env: dict[str, str], *, webhook_url: str, slack_url: str) -> dict[str, dict[str, str]]:
    """Two tenants with the support label set: ``a`` has every result sent to a webhook, ``b`` asks for a
    Slack reply in some messages. Returns each tenant's name and token."""
    from labelwise import pipeline
    from labelwise.crypto import SecretBox
    from labelwise.labelset import load_yaml
    from labelwise.models import tenants as tenants_q
    from labelwise.models.db import make_engine, make_session_factory, upgrade

    upgrade(env["LABELWISE_DATABASE_URL"])
    engine = make_engine(env["LABELWISE_DATABASE_URL"])
    box = SecretBox([env["LABELWISE_SECRET_KEY"].encode()])
    integrations = {
        "a": {
            "name": "hook",
            "kind": "webhook",
            "settings": {"url": f"{webhook_url}/hook", "subscribe": ["support"]},
            "secrets": {"signing_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
        },
        "b": {
            "name": "slack",
            "kind": "slack",
            "label_set": "support",
            "settings": {"base_url": slack_url},
            "secrets": {"bot_token": "xoxb-chaos", "signing_secret": "chaos"},
        },
    }
    out = {}
    try:
        with make_session_factory(engine).begin() as s:
            for who in ("a", "b"):
                tenant = tenants_q.create_tenant(s, f"chaos-{who}")
                _, token = tenants_q.create_token(s, tenant_id=tenant.id)
                pipeline.apply_label_set(s, tenant=tenant.name, doc=load_yaml(LABELS.read_text()))
                pipeline.apply_integration(s, box, tenant_id=tenant.id, data=integrations[who])
                out[who] = {"name": tenant.name, "token": token}
    finally:
        engine.dispose()
    return out


class _Fleet:
    """Two worker processes and one API process, each in its own process group."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env, self.home = env, home
        self.workers: list[subprocess.Popen[bytes] | None] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.api_port = free_port()
        self.api_env: dict[str, str] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> _Fleet:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop_all()

    def _spawn(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        with open(self.home / f"{name}.log", "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "labelwise", *args],
                env={**os.environ, **env},
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_workers(self, n: int) -> None:
        self.workers = [self._spawn(["worker"], self.env, f"worker-{i}") for i in range(n)]
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Until every worker has loaded its model and consumes (its heartbeat row is there)."""
        from labelwise.models import workers
        from labelwise.models.db import make_engine, make_session_factory

        engine = make_engine(self.env["LABELWISE_DATABASE_URL"])
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                with make_session_factory(engine)() as s:
                    beating = {row.pid for row in workers.list_workers(s)}
                if all(p is not None and p.pid in beating for p in self.workers):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not become ready")
                time.sleep(0.2)
        finally:
            engine.dispose()

    def kill_worker(self, i: int) -> None:
        proc = self.workers[i]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart_worker(self, i: int) -> None:
        self.workers[i] = self._spawn(["worker"], self.env, f"worker-{i}")

    def start_api(self, *, death_chance: float) -> None:
        self.api_env = {**self.env, "LABELWISE_FAULT_INJECTION": f"api-exit-before-publish={death_chance}"}
        self.api = self._spawn(["api", "--port", str(self.api_port)], self.api_env, "api")
        self.wait_api()

    def wait_api(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.api_port}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.1)

    def revive_api(self) -> bool:
        """Start the API again if it died; True if it had."""
        with self._lock:
            if self.api is not None and self.api.poll() is None:
                return False
            self.api = self._spawn(["api", "--port", str(self.api_port)], self.api_env, "api")
        self.wait_api()
        return True

    def rss(self) -> int:
        total = 0
        for proc in self.workers:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    total = max(total, psutil.Process(proc.pid).memory_info().rss)
        return total

    def stop_all(self) -> None:
        for proc in [*self.workers, self.api]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers, self.api]:
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _run_with_faults(
    kind: str,
    plan: Plan,
    fleet: _Fleet,
    servers: dict[str, Server],
    tenants: dict[str, dict[str, str]],
    counts: Counts,
    env: dict[str, str],
    say: Callable[[str], None],
) -> None:
    from bench.chaos_load import send_all

    stop = threading.Event()
    errors: list[BaseException] = []

    def inject() -> None:
        try:
            _faults(plan, fleet, servers, counts, stop, say)
        except BaseException as e:  # reported after the load: a fault that could not be injected fails the run
            errors.append(e)

    faults = threading.Thread(target=inject, daemon=True)
    faults.start()
    try:
        send_all(plan, fleet, tenants, counts, broker_url=env["LABELWISE_BROKER_URL"], queue=env["LABELWISE_QUEUE"])
    finally:
        stop.set()
        faults.join()
    if errors:
        raise RuntimeError(f"injecting faults failed: {errors[0]!r}") from errors[0]
    for i, proc in enumerate(fleet.workers):  # every worker up again for the drain
        if proc is None or proc.poll() is not None:
            fleet.restart_worker(i)


def _faults(
    plan: Plan,
    fleet: _Fleet,
    servers: dict[str, Server],
    counts: Counts,
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """SIGKILL a worker every ``kill_every_s`` (alternating, each restarted a second later); restart the
    database and the broker once each along the way; sample the workers' RSS."""
    rng = random.Random(plan.seed)
    send_s = plan.messages / plan.rate
    restarts = {"database": 0.35 * send_s, "broker": 0.65 * send_s}
    started, next_kill, victim = time.monotonic(), time.monotonic() + plan.kill_every_s, 0
    while not stop.is_set():
        now = time.monotonic()
        counts.peak_rss = max(counts.peak_rss, fleet.rss())
        if now >= next_kill:
            fleet.kill_worker(victim)
            counts.worker_kills += 1
            time.sleep(rng.uniform(0.3, 1.0))
            fleet.restart_worker(victim)
            victim = 1 - victim
            next_kill = time.monotonic() + plan.kill_every_s * rng.uniform(0.7, 1.3)
        for name, at in list(restarts.items()):
            if name in servers and now - started >= at:
                say(f"  restarting the {name}")
                servers[name].restart()
                del restarts[name]
        stop.wait(0.2)


def _drain(database_url: str, timeout_s: float, fleet: _Fleet, counts: Counts) -> float:
    """Until no job is queued or running and no delivery pending or retrying (or ``timeout_s``)."""
    from sqlalchemy import func, select

    from labelwise.models.db import make_engine, make_session_factory
    from labelwise.models.tables import Delivery, Job

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            counts.peak_rss = max(counts.peak_rss, fleet.rss())
            fleet.revive_api()
            with sessions() as s:
                open_jobs = s.scalar(select(func.count()).where(Job.status.in_(("queued", "running"))))
                open_deliveries = s.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status.in_(("pending", "retrying")))
                )
            if not open_jobs and not open_deliveries:
                time.sleep(2)  # a last redelivery or duplicate would show up now
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    return time.monotonic() - started
