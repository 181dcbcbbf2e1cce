"""The reconciler's thread in a worker process: every few seconds, if this process holds the lease,
publish again the jobs and deliveries that were committed but never reached (or got lost in) the broker
(labelwise.pipeline.reconciling)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from labelwise.pipeline import reconciling
from labelwise.settings import Settings
from labelwise.worker.periodic import LeasedLoop
from labelwise.worker.resources import Publisher


class Reconciler(LeasedLoop):
    name = "reconciler"

    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        super().__init__(settings.reconcile_interval_s)
        self.policy = reconciling.Policy(
            grace_s=settings.reconcile_interval_s,
            stuck_after_s=settings.reconcile_stuck_after_s,
            lease_ttl_s=max(3 * settings.reconcile_interval_s, 5.0),
        )
        self.publisher = publisher

    def run_pass(self, sessions: sessionmaker[Session]) -> None:
        reconciling.reconcile(
            sessions,
            holder=self.holder,
            policy=self.policy,
            publish_job=self.publisher.job,
            publish_delivery=self.publisher.delivery,
        )

    def release(self, sessions: sessionmaker[Session]) -> None:
        reconciling.release(sessions, holder=self.holder)
