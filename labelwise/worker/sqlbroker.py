"""kombu's SQL transport, tuned for the embedded SQLite broker.

kombu hands every transport option to ``create_engine``, so ``polling_interval`` (which the virtual
transport reads) would break it; this subclass drops it there and gives SQLite a busy timeout and WAL.
The rows it writes are kombu's own, so any plain Celery client with a ``sqla+sqlite://`` URL can
publish to our queue.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as _Channel
from kombu.transport.sqlalchemy import Transport as _Transport
from sqlalchemy import create_engine, event


class Channel(_Channel):
    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        url = conninfo.hostname
        if not url.startswith("sqlite"):
            return super()._engine_from_config()
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _wal)
        return engine


def _wal(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


class Transport(_Transport):
    Channel = Channel


def install() -> None:
    """Make ``sqla+`` URLs use this transport in this process."""
    TRANSPORT_ALIASES["sqla"] = "labelwise.worker.sqlbroker:Transport"
    TRANSPORT_ALIASES["sqlalchemy"] = "labelwise.worker.sqlbroker:Transport"
