"""Shared fixtures: real databases, real brokers, real worker processes, the real packaged model.

Service-backed stacks (PostgreSQL + Redis, PostgreSQL + RabbitMQ) skip when the service is not
reachable, and fail instead when ``LABELWISE_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apiclient import Api, settings_for
from tests.stacks import Stack, make_stack

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
# Worker and CLI subprocesses (`python -m labelwise`, run from their own directories) import this checkout's
# labelwise, not whichever one the virtualenv's editable install points at (a second worktree, say).
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    """The real packaged model, loaded once per test session."""
    from labelwise.classify.sentence import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder()
    enc.load()
    return enc


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from labelwise.models.db import upgrade

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    from labelwise.models.db import upgrade
    from tests.stacks import postgres_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
        upgrade(url)
        yield url
        return
    with postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture
def sessions(db_url: str):  # type: ignore[no-untyped-def]
    from labelwise.models.db import make_engine, make_session_factory

    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


STACKS = ["embedded", "pg-redis", "pg-rabbitmq"]
_started: dict[str, Stack] = {}


@pytest.fixture(scope="session", params=STACKS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A database, a broker and one running worker process, shared by the tests of a session."""
    home = tmp_path_factory.mktemp(f"stack-{request.param}")
    with make_stack(request.param, home=home, queue=f"lw-test-{uuid.uuid4().hex[:8]}") as s:
        s.start_worker()
        s.warm_up()
        yield s


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[Api]:
    """The HTTP API in-process (TestClient) on the stack, sharing its database, broker and worker."""
    from fastapi.testclient import TestClient

    from labelwise.api.app import create_app

    with TestClient(create_app(settings_for(stack))) as client:
        yield Api(client, stack)
