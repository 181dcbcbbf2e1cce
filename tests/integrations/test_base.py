"""Status mapping, Retry-After, and step-wise sending that never repeats a completed step."""

from __future__ import annotations

import httpx
import pytest

from labelwise.errors import PermanentDeliveryError, RetryableDeliveryError
from labelwise.integrations.base import Step, check_status, retry_after_s, send_steps


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "https://example.invalid/x"))


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_is_success(status: int) -> None:
    check_status(response(status))


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses(status: int) -> None:
    with pytest.raises(RetryableDeliveryError):
        check_status(response(status))


@pytest.mark.parametrize("status", [301, 302, 400, 401, 403, 404, 410, 422])
def test_permanent_statuses(status: int) -> None:
    with pytest.raises(PermanentDeliveryError):
        check_status(response(status))


def test_retry_after_seconds_and_dates() -> None:
    with pytest.raises(RetryableDeliveryError) as info:
        check_status(response(429, **{"Retry-After": "7"}))
    assert info.value.retry_after_s == 7
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_send_steps_skips_done_steps_and_stops_at_the_first_failure() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(500 if request.url.path == "/b" else 200)

    steps = [Step(name, httpx.Request("POST", f"https://example.invalid/{name}")) for name in ("a", "b", "c")]
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        outcome = send_steps(client, steps, steps_done=["a"])
    assert seen == ["/b"] and outcome.steps_done == ["a"]
    assert isinstance(outcome.error, RetryableDeliveryError) and outcome.error.message.startswith("b: HTTP 500")
