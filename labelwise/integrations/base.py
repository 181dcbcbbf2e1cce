"""The contract every integration follows.

Outbound: ``build_steps(payload, config, secrets)`` is pure: it returns the HTTP requests that deliver one
result, each a named ``Step`` with a ``check`` that turns the response into success or a
Retryable/PermanentDeliveryError. ``send_steps`` sends them through an injected ``httpx.Client``,
skipping steps an earlier attempt completed, so a retry never posts the same reply twice.

Inbound: ``verify(headers, body, secrets, now_s)`` checks the platform's signature before anything is
parsed; ``parse(body, config, headers)`` turns a verified event into an ``Inbound`` (headers such as
GitHub's event name and delivery id are read only after the signature is checked). A hook without the
integration's id in its URL is routed by ``route_key(body)`` to the one integration whose
``inbound_key(config)`` it equals, and only that integration's secret is tried.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import BaseModel

from labelwise.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError, UnauthorizedError
from labelwise.integrations.guard import OutboundRefusedError

RETRYABLE_STATUS = {408, 409, 429}


@dataclass(frozen=True)
class Payload:
    """What a delivery carries: the job's result view, its text, the delivery id and the target."""

    delivery_id: str
    result: dict[str, Any]
    text: str
    target: dict[str, Any]


@dataclass(frozen=True)
class Step:
    name: str
    request: httpx.Request
    check: Callable[[httpx.Response], None] = field(default=lambda r: check_status(r))


@dataclass(frozen=True)
class Inbound:
    """A verified inbound event: answer it directly, ignore it, or classify ``text``."""

    event_id: str | None = None
    text: str | None = None
    target: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None  # e.g. Slack's url_verification challenge
    ignored: str | None = None  # why nothing is classified
    needs_text: bool = False  # the text is fetched from the platform (the adapter's fetch_text) once verified


class Adapter(Protocol):
    kind: str
    settings_model: type[BaseModel]
    secrets_model: type[BaseModel]
    inbound: bool

    def build_steps(self, payload: Payload, config: BaseModel, secrets: BaseModel) -> list[Step]: ...

    def verify(
        self, headers: Mapping[str, str], body: bytes, secrets: BaseModel, now_s: float, tolerance_s: int
    ) -> None: ...

    def parse(self, body: bytes, config: BaseModel, headers: Mapping[str, str] | None = None) -> Inbound: ...

    def inbound_key(self, config: BaseModel) -> str | None:
        """The key that routes hooks without an integration id to this integration (None: such routing off)."""
        ...

    def route_key(self, body: bytes) -> str | None:
        """The routing key an unverified event names (only looked up, never trusted: the signature of the
        integration it leads to is checked next); None when it names none."""
        ...


class NoRouting:
    """For adapters whose hooks always carry the integration's id in their URL."""

    def inbound_key(self, config: BaseModel) -> str | None:
        return None

    def route_key(self, body: bytes) -> str | None:
        return None


def json_request(method: str, url: str, body: dict[str, Any], auth: httpx.Auth | None = None) -> httpx.Request:
    """A JSON request with ``auth`` applied (Basic auth needs no round trip, so its first flow step is it)."""
    request = httpx.Request(method, url, json=body, headers={"Accept": "application/json"})
    return next(auth.auth_flow(request)) if auth else request


def check_status(response: httpx.Response) -> None:
    """2xx: done. 408/409/429/5xx: retryable (honouring Retry-After). Redirects and other 4xx: permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"HTTP {status} from {response.request.url.host}: {response.text[:200]!r}"
    if status in RETRYABLE_STATUS or status >= 500:
        raise RetryableDeliveryError(detail, retry_after_s=retry_after_s(response.headers.get("Retry-After")))
    if 300 <= status < 400:
        raise PermanentDeliveryError(f"HTTP {status}: redirects are not followed")
    raise PermanentDeliveryError(detail)


MAX_RETRY_AFTER_S = 86_400.0  # a peer's Retry-After beyond a day is read as a day (the schedule caps it lower)


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, a date without zone read as UTC),
    at most a day; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value[:12]), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no zone information
        when = when.replace(tzinfo=dt.UTC)
    return min(max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()), MAX_RETRY_AFTER_S)


@dataclass
class SendOutcome:
    steps_done: list[str]
    error: DeliveryError | None = None


MAX_RESPONSE_BYTES = 65_536


def send_steps(
    client: httpx.Client,
    steps: list[Step],
    *,
    steps_done: list[str],
    on_step_done: Callable[[list[str]], None] | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> SendOutcome:
    """Send the steps not yet done, in order; stop at the first failure. ``on_step_done`` is called with
    the steps done so far after each one succeeds (to record it before the next is sent). A response's
    body is read up to ``max_response_bytes``; an answer a step cannot read is a retryable failure."""
    done = list(steps_done)
    for step in steps:
        if step.name in done:
            continue
        try:
            step.check(send_capped(client, step.request, max_bytes=max_response_bytes))
        except OutboundRefusedError as e:
            return SendOutcome(done, PermanentDeliveryError(str(e)))
        except httpx.TimeoutException as e:
            return SendOutcome(done, RetryableDeliveryError(f"{step.name}: timed out ({type(e).__name__})"))
        except httpx.HTTPError as e:
            return SendOutcome(done, RetryableDeliveryError(f"{step.name}: {type(e).__name__}: {e}"))
        except DeliveryError as e:
            e.message = f"{step.name}: {e.message}"
            return SendOutcome(done, e)
        except (ValueError, TypeError, KeyError, AttributeError) as e:  # an answer the check cannot read
            return SendOutcome(done, RetryableDeliveryError(f"{step.name}: unreadable answer: {type(e).__name__}"))
        done.append(step.name)
        if on_step_done is not None:
            on_step_done(done)
    return SendOutcome(done)


def send_capped(client: httpx.Client, request: httpx.Request, *, max_bytes: int) -> httpx.Response:
    """Send and read at most ``max_bytes`` of the (decoded) body, within the client's read timeout for
    the whole body: a huge or slowly dripping answer costs neither memory nor an unbounded wait."""
    response = client.send(request, stream=True)
    try:
        body = bytearray()
        deadline = time.monotonic() + (client.timeout.read or 10.0)
        for chunk in response.iter_bytes():
            body += chunk[: max_bytes - len(body)]
            if len(body) >= max_bytes or time.monotonic() > deadline:
                break
    finally:
        response.close()
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in ("content-encoding", "content-length")]
    return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=request)


def check_hmac(expected: bytes, given: str) -> None:
    """Constant-time comparison; raises UnauthorizedError on mismatch."""
    if not hmac.compare_digest(expected, given.encode("utf-8", "replace")):
        raise UnauthorizedError("signature does not match")


def check_fresh(timestamp_s: float, now_s: float, tolerance_s: int) -> None:
    if abs(now_s - timestamp_s) > tolerance_s:
        raise UnauthorizedError(f"timestamp outside the {tolerance_s} s window")


def header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise UnauthorizedError(f"missing {name} header")
    return value
