"""Which of the worker's connections use RabbitMQ's publisher confirms (no broker needed: nothing connects)."""

from __future__ import annotations

from typing import Any


def test_task_events_are_published_without_confirms_and_our_own_messages_with_them() -> None:
    """A pool thread sending a task event with RabbitMQ's publisher confirms waited for its confirm, with no
    timeout, holding the event dispatcher's lock: after a broker restart a confirm that never came blocked
    every pool thread (no delivery ran for minutes, in bench/chaos.py). The consumer's write connection
    (events) has no confirms; labelwise's own messages keep them."""
    from labelwise.settings import Settings
    from labelwise.worker.app import create_app
    from labelwise.worker.consumer import Consumer

    app = create_app(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//", database_url="sqlite://"))
    assert app.conf.worker_consumer == "labelwise.worker.consumer:Consumer"

    class Bare:  # what connection_for_write uses of a running consumer, without connecting
        def __init__(self) -> None:
            self.app = app

        def ensure_connected(self, conn: Any) -> Any:
            return conn

    events = Consumer.connection_for_write(Bare())  # type: ignore[arg-type]
    assert events.transport_options["confirm_publish"] is False
    with app.connection_for_write() as ours:
        assert ours.transport_options["confirm_publish"] is True
