"""The API remembers which tenant a token belongs to for LABELWISE_TOKEN_CACHE_S (labelwise.api.tokens)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from labelwise.api.app import create_app
from labelwise.api.tokens import TokenCache, TokenOwner
from labelwise.models import tenants
from tests.apiclient import Api, settings_for

EMBEDDED = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


def test_an_answer_is_kept_for_its_seconds_found_or_not() -> None:
    asked: list[str] = []

    def look_up(token: str) -> TokenOwner | None:
        asked.append(token)
        return TokenOwner(7, "acme") if token == "lw_good" else None

    cache = TokenCache(0.2)
    assert [cache.owner("lw_good", look_up) for _ in range(3)] == [TokenOwner(7, "acme")] * 3
    assert [cache.owner("lw_bad", look_up) for _ in range(3)] == [None] * 3
    assert asked == ["lw_good", "lw_bad"]
    time.sleep(0.25)
    cache.owner("lw_good", look_up)
    assert asked == ["lw_good", "lw_bad", "lw_good"]
    cache.clear()
    cache.owner("lw_good", look_up)
    assert asked.count("lw_good") == 3
    off = TokenCache(0)
    off.owner("lw_good", look_up)
    off.owner("lw_good", look_up)
    assert asked.count("lw_good") == 5


def test_made_up_tokens_cannot_grow_it_and_push_out_the_oldest_first() -> None:
    asked: list[str] = []

    def look_up(token: str) -> TokenOwner | None:
        asked.append(token)
        return None

    cache = TokenCache(60, max_entries=3)
    for token in ("a", "b", "c", "a", "d"):  # "a" used again: "b" is the least recently used
        cache.owner(token, look_up)
    assert len(cache._answers) == 3
    asked.clear()
    for token in ("a", "c", "d", "b"):
        cache.owner(token, look_up)
    assert asked == ["b"]


@pytest.fixture
def database_sessions(api: Api) -> Iterator[list[int]]:
    """Counts the database connections the API's engine checks out while the test runs."""
    engine = api.client.app.state.labelwise.sessions.kw["bind"]  # type: ignore[attr-defined]
    checkouts: list[int] = []

    def count(*_: object) -> None:
        checkouts.append(1)

    event.listen(engine, "checkout", count)
    try:
        yield checkouts
    finally:
        event.remove(engine, "checkout", count)


@EMBEDDED
def test_requests_refused_at_once_cost_no_database_session(api: Api, database_sessions: list[int]) -> None:
    """A flood of 401s (a wrong token) or 429s (past the classify cap) looks its token up once."""
    _, h = api.tenant()
    wrong = {"Authorization": "Bearer lw_not-a-token"}
    assert api.client.get("/v1/label-sets", headers=wrong).status_code == 401
    assert api.client.get("/v1/label-sets", headers=h).status_code == 200
    database_sessions.clear()
    for _ in range(20):
        assert api.client.get("/v1/label-sets", headers=wrong).status_code == 401
    assert database_sessions == []
    for _ in range(5):
        assert api.client.get("/v1/label-sets", headers=h).status_code == 200
    assert len(database_sessions) == 5  # the listing's own query, not the token's


@EMBEDDED
def test_a_revoked_token_is_refused_within_the_cache_seconds(api: Api) -> None:
    for seconds in (0.0, 1.0):
        with TestClient(create_app(settings_for(api.stack, token_cache_s=seconds))) as client:
            tenant, h = api.tenant()
            assert client.get("/v1/label-sets", headers=h).status_code == 200
            with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
                token = h["Authorization"].removeprefix("Bearer ")
                assert tenants.revoke_token(s, tenant_id=tenants.get_tenant(s, tenant).id, token_or_prefix=token) == 1
            revoked_at = time.monotonic()
            while client.get("/v1/label-sets", headers=h).status_code != 401:
                assert time.monotonic() - revoked_at < seconds + 0.5, f"still accepted after {seconds} s"
                time.sleep(0.05)
            if seconds == 0:
                assert time.monotonic() - revoked_at < 0.5  # the first request after the revocation
