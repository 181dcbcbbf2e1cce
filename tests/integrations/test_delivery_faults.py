"""Deliveries that used to end stuck ``pending`` or blow up a worker: each ends delivered (or dead) on the
schedule, through a real worker and stand-in servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest

from labelwise.models import integrations, jobs, tenants
from labelwise.models.tables import utcnow
from labelwise.pipeline.integrating import plan_deliveries
from tests.apiclient import Api
from tests.integrations.test_e2e import WHSEC, put, slack_integration, wait_delivery, webhook_job
from tests.platforms import Platform, Reply, platform

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]


@pytest.fixture
def stand_in() -> Iterator[Platform]:
    with platform() as p:
        yield p


def test_slack_answering_200_with_a_body_that_is_not_json_is_retried(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    slack_integration(api, h, stand_in)
    stand_in.script("/chat.postMessage", Reply(200, raw=b"<html>upstream hiccup</html>"), Reply(200))
    body = {"label_set": "tiny", "text": "Where is my invoice?"}
    reply_to = {"integration": "slack-main", "channel": "C1", "thread_ts": "1700000000.000100"}
    job = api.client.post("/v1/jobs", json={**body, "reply_to": reply_to}, headers=h).json()
    delivery = wait_delivery(api, job["job_id"], "delivered")
    assert delivery["attempts"] == 2 and len(stand_in.requests_to("/chat.postMessage")) == 2


def test_a_retry_after_far_ahead_is_capped_at_the_schedule(api: Api, stand_in: Platform) -> None:
    """`Retry-After: 999999999999` once overflowed timedelta and left the delivery pending forever."""
    _, job_id = webhook_job(api, stand_in, Reply(503, headers={"Retry-After": "999999999999"}), Reply(200))
    first, second = stand_in.wait_for("/hook", 2, timeout_s=30)
    assert second.at - first.at < 5  # the test stacks' schedule caps delays at 1 s
    assert wait_delivery(api, job_id, "delivered")["attempts"] == 2


def test_a_retry_after_date_without_a_zone_is_read_as_utc(api: Api, stand_in: Platform) -> None:
    """`-0000` made a naive datetime that could not be compared with an aware one."""
    _, job_id = webhook_job(api, stand_in, Reply(429, headers={"Retry-After": "Sun, 06 Nov 1994 08:49:37 -0000"}))
    stand_in.script("/hook", Reply(429, headers={"Retry-After": "Sun, 06 Nov 1994 08:49:37 -0000"}), Reply(200))
    assert wait_delivery(api, job_id, "delivered")["attempts"] >= 2


def test_a_huge_error_body_is_read_only_up_to_the_cap(api: Api, stand_in: Platform) -> None:
    """A 300 MB answer once took a worker from 42 MB to 942 MB, and every retry did it again."""
    worker = psutil.Process(api.stack.workers[0].pid)
    _, warm = webhook_job(api, stand_in, Reply(200))
    wait_delivery(api, warm, "delivered")
    before = worker.memory_info().rss
    huge = Reply(500, stream_bytes=300 << 20)
    _, job_id = webhook_job(api, stand_in, huge, huge, Reply(200))
    assert wait_delivery(api, job_id, "delivered", timeout_s=90)["attempts"] == 3
    assert worker.memory_info().rss - before < 50 << 20


def test_a_delivery_whose_publish_never_happened_is_sent_by_the_reconciler(api: Api, stand_in: Platform) -> None:
    """A worker that died between committing a batch and publishing its deliveries left them pending
    forever; the reconciler now publishes them."""
    tenant, h = api.tenant_with_set()
    put(
        api,
        h,
        "customer",
        {
            "kind": "webhook",
            "settings": {"url": f"{stand_in.url}/hook", "subscribe": ["tiny"]},
            "secrets": {"signing_secrets": [WHSEC]},
        },
    )
    sessions = api.client.app.state.labelwise.sessions  # type: ignore[attr-defined]
    with sessions.begin() as s:  # what a worker commits for a done job, without publishing anything after
        tenant_id = tenants.get_tenant(s, tenant).id
        job = jobs.add_job(
            s,
            id=f"orphan-{tenant}",
            tenant_id=tenant_id,
            tenant_name=tenant,
            label_set_name="tiny",
            idempotency_key=None,
            text="Where is my invoice?",
            metadata_=None,
            reply_to=None,
        )
        jobs.mark_done(job, result={"labels": [], "chosen": ["billing"], "abstained": False}, version_id=None)  # type: ignore[arg-type]
        job.enqueued_at = utcnow()
        [delivery_id] = plan_deliveries(s, job)
    received = stand_in.wait_for("/hook", 1, timeout_s=30)
    assert received[0].headers["webhook-id"] == delivery_id
    assert wait_delivery(api, job.id, "delivered")["attempts"] == 1
    with sessions() as s:
        assert integrations.get_delivery(s, delivery_id).status == "delivered"
