"""The load of bench/chaos.py: half the messages from a plain Celery client, half through the HTTP API,
two tenants, some with a Slack reply, and poison messages among the queue ones."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

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
POISON = {
    "surrogate": lambda k: {**k, "text": "hello \ud800 world"},
    "wrong-type": lambda k: {**k, "text": {"not": "text"}},
    "infinity": lambda k: {**k, "metadata": {"amount": float("inf")}},
    "huge-metadata": lambda k: {**k, "metadata": {"blob": "x" * 1_200_000}},
    "unknown-field": lambda k: {**k, "colour": "red"},
    "empty": lambda k: {**k, "text": "   "},
}


def message(i: int, tenants: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Message ``i``: which channel, tenant, key and kwargs; every fourth of tenant b asks for a Slack reply."""
    who = "a" if (i // 2) % 2 == 0 else "b"
    kwargs: dict[str, Any] = {
        "tenant": tenants[who]["name"],
        "label_set": "support",
        "text": f"{TEXTS[i % len(TEXTS)]} (ref {i})",
        "idempotency_key": f"m{i}",
    }
    if who == "b" and i % 4 in (1, 3):
        kwargs["reply_to"] = {"integration": "slack", "channel": "C0CHAOS", "thread_ts": f"{1700000000 + i}.000100"}
    return {"i": i, "channel": "celery" if i % 2 == 0 else "http", "tenant": who, "kwargs": kwargs, "poison": None}


def send_all(
    plan: Any, fleet: Any, tenants: dict[str, dict[str, str]], counts: Any, *, broker_url: str, queue: str
) -> None:
    """Send every message of the plan at ``plan.rate`` per second over the two channels, in parallel."""
    messages = [message(i, tenants) for i in range(plan.messages)]
    queued = [m for m in messages if m["channel"] == "celery"]
    for n, m in enumerate(queued):
        if n % plan.poison_every == plan.poison_every // 2:
            name = list(POISON)[(n // plan.poison_every) % len(POISON)]
            m["poison"], m["kwargs"] = name, POISON[name](m["kwargs"])
    http = [m for m in messages if m["channel"] == "http"]
    senders = [
        threading.Thread(target=_send_celery, args=(queued, plan.rate / 2, broker_url, queue, counts)),
        threading.Thread(target=_send_http, args=(http, plan.rate / 2, fleet, tenants, counts)),
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join()


def _paced(items: list[dict[str, Any]], rate: float) -> Any:
    started = time.monotonic()
    for n, item in enumerate(items):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield item


def _send_celery(items: list[dict[str, Any]], rate: float, broker_url: str, queue: str, counts: Any) -> None:
    """A plain Celery client, as another app would be (it declares a quorum queue as labelwise does)."""
    import uuid

    from celery import Celery

    from labelwise import brokers

    brokers.install()  # the embedded broker's sqla+ URL needs labelwise's transport to publish as well
    app = Celery(broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json", task_create_missing_queue_type="quorum" if "amqp" in broker_url else "classic"
    )
    try:
        for m in _paced(items, rate):
            task_id = str(uuid.uuid4())
            while True:
                try:
                    app.send_task("labelwise.classify", kwargs=m["kwargs"], task_id=task_id, queue=queue)
                    break
                except Exception:  # the broker is restarting: send the same message again
                    time.sleep(0.5)
            with counts.lock:
                counts.sent.append({**m, "task_id": task_id})
    finally:
        app.close()


def _send_http(
    items: list[dict[str, Any]], rate: float, fleet: Any, tenants: dict[str, dict[str, str]], counts: Any
) -> None:
    """POST /v1/jobs with an Idempotency-Key; when the API dies mid-request, retry the same request."""
    url = f"http://127.0.0.1:{fleet.api_port}/v1/jobs"
    with httpx.Client(timeout=30) as client:
        for m in _paced(items, rate):
            kwargs = m["kwargs"]
            body = {k: v for k, v in kwargs.items() if k not in ("tenant", "idempotency_key")}
            headers = {
                "Authorization": f"Bearer {tenants[m['tenant']]['token']}",
                "Idempotency-Key": kwargs["idempotency_key"],
            }
            answer = None
            while answer is None or answer.status_code >= 500:  # 503: the database is restarting
                if answer is not None:
                    time.sleep(0.5)
                try:
                    answer = client.post(url, json=body, headers=headers)
                except httpx.HTTPError:
                    answer = None
                    if fleet.revive_api():
                        with counts.lock:
                            counts.api_deaths += 1
                    else:
                        time.sleep(0.2)
            with counts.lock:
                counts.sent.append({**m, "status_code": answer.status_code})
