"""The tally of bench/chaos.py: what became of every message sent, and of every delivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select


def tally(database_url: str, sent: list[dict[str, Any]], tenants: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Counts over the messages sent (found by task id, or by tenant and key) and over all deliveries."""
    from labelwise.errors import NotFoundError
    from labelwise.models import jobs
    from labelwise.models import tenants as tenants_q
    from labelwise.models.db import make_engine, make_session_factory
    from labelwise.models.tables import Delivery, Job

    engine = make_engine(database_url)
    keys = ("done", "failed", "poison_failed", "good_failed", "lost", "poison_done", "deliveries_expected")
    out: dict[str, Any] = dict.fromkeys(keys, 0)
    out["sent"] = len(sent)
    out["lost_examples"] = []
    try:
        with make_session_factory(engine)() as s:
            tenant_ids = {who: tenants_q.get_tenant(s, t["name"]).id for who, t in tenants.items()}
            for m in sent:
                job = None
                if "task_id" in m:
                    try:
                        job = jobs.get_job(s, m["task_id"])
                    except NotFoundError:
                        job = None
                else:
                    job = jobs.find_by_key(s, tenant_id=tenant_ids[m["tenant"]], key=m["kwargs"]["idempotency_key"])
                _count(out, m, job)
            out["classified_twice"] = s.scalar(select(func.count()).where(Job.classifications > 1))
            out["retried"] = s.scalar(select(func.count()).where(Job.attempts > 1))
            by_status = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    finally:
        engine.dispose()
    out["delivered"] = by_status.get("delivered", 0)
    out["dead"] = by_status.get("dead", 0)
    out["stuck"] = by_status.get("pending", 0) + by_status.get("retrying", 0)
    out["lost_examples"] = out["lost_examples"][:5]
    return out


def _count(out: dict[str, Any], m: dict[str, Any], job: Any) -> None:
    if job is None or job.status in ("queued", "running"):
        out["lost"] += 1
        out["lost_examples"].append({"i": m["i"], "channel": m["channel"], "status": job.status if job else None})
        return
    if job.status == "done":
        out["done"] += 1
        out["poison_done"] += bool(m["poison"])
        # tenant a's set has a subscribed webhook; tenant b's messages with a reply_to get a Slack reply
        out["deliveries_expected"] += m["tenant"] == "a" or "reply_to" in m["kwargs"]
        return
    if job.error:
        out["failed"] += 1
        out["poison_failed" if m["poison"] else "good_failed"] += 1
