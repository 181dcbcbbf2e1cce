"""The retention purge's thread in a worker process: every ``purge_interval_s``, if this process holds the
purge lease, remove what is past its retention (labelwise.pipeline.lifecycle.purge) in small batches.

It runs beside classification and never in its way: each batch is one short transaction on old rows that
no message touches, with a pause between batches."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from labelwise.pipeline import lifecycle
from labelwise.settings import Settings
from labelwise.worker.periodic import LeasedLoop


class Purger(LeasedLoop):
    name = "purge"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.purge_interval_s)
        self.policy = lifecycle.Retention.from_settings(settings)

    def run_pass(self, sessions: sessionmaker[Session]) -> None:
        lifecycle.purge(sessions, holder=self.holder, policy=self.policy, stop=self._stop.is_set)

    def release(self, sessions: sessionmaker[Session]) -> None:
        lifecycle.release_purge(sessions, holder=self.holder)
