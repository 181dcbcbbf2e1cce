"""Dependencies: the app's resources, the caller's tenant (bearer token) and the rate limit."""

from __future__ import annotations

import functools
import hmac
import math
import threading
import time
from dataclasses import dataclass

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from labelwise.api.errors import ApiError
from labelwise.api.tokens import TokenCache, TokenOwner
from labelwise.crypto import SecretBox
from labelwise.models import tenants
from labelwise.settings import Settings

bearer = HTTPBearer(auto_error=False, description="A tenant's API token (`labelwise token create`).")


@dataclass
class State:
    settings: Settings
    sessions: sessionmaker[Session]
    celery: Celery
    limiter: RateLimiter
    box: SecretBox
    tokens: TokenCache


@dataclass(frozen=True)
class Caller:
    tenant_id: int
    tenant: str
    token_prefix: str = ""  # the token's first 10 characters (as `labelwise token revoke` takes them)


async def state(request: Request) -> State:
    """The app's resources (async: a dependency that does no I/O costs no trip through the threadpool)."""
    st = request.app.state.labelwise
    assert isinstance(st, State)
    return st


def caller(
    st: State = Depends(state),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Caller:
    """The tenant whose live token authorises the request; 401 otherwise, 429 over the rate limit. The
    lookup is remembered for ``token_cache_s`` (labelwise.api.tokens)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer lw_...)", challenge)
    owner = st.tokens.owner(credentials.credentials, functools.partial(_look_up, st))
    if owner is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token", challenge)
    wait_s = st.limiter.acquire(owner.tenant_id)
    if wait_s > 0:
        raise ApiError(
            429, "rate_limited", "too many requests for this tenant", {"Retry-After": str(math.ceil(wait_s))}
        )
    return Caller(tenant_id=owner.tenant_id, tenant=owner.tenant, token_prefix=credentials.credentials[:10])


def _look_up(st: State, token: str) -> TokenOwner | None:
    with st.sessions() as session:
        tenant = tenants.tenant_for_token(session, token)
        return None if tenant is None else TokenOwner(tenant.id, tenant.name)


async def operator(
    st: State = Depends(state),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> None:
    """The caller holds the operator token (LABELWISE_ADMIN_TOKEN); 404 when none is set, 401 otherwise."""
    expected = st.settings.admin_token.get_secret_value() if st.settings.admin_token else ""
    if not expected:
        raise ApiError(404, "not_found", "the operator routes are off (set LABELWISE_ADMIN_TOKEN)")
    given = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong operator token", {"WWW-Authenticate": "Bearer"})


class RateLimiter:
    """A token bucket per tenant: ``per_min`` requests a minute, bursts up to ``per_min``; 0 turns it off."""

    def __init__(self, per_min: int) -> None:
        self._rate_s = per_min / 60.0
        self._capacity = float(per_min)
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: int) -> float:
        """0 when allowed (and counted); else the seconds until a request would be."""
        if self._capacity <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate_s)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self._rate_s
