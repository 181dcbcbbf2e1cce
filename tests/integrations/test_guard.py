"""The outbound guard refuses private, loopback, link-local, multicast and metadata addresses before
any connection is made; only an explicit allow-list lets loopback through (the tests' stand-ins)."""

from __future__ import annotations

import ipaddress
import socket

import httpx
import pytest

from labelwise.integrations.guard import OutboundRefusedError, make_client, parse_allow, refusal
from tests.platforms import platform

REFUSED = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "127.0.0.1",
    "0.0.0.0",
    "169.254.169.254",
    "100.64.0.1",
    "100.100.100.200",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fec0::1",  # site-local (deprecated): not is_private in Python, refused as is_site_local
    "fd00:ec2::254",
    "ff02::1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",
    "2002:a00:1::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:93.184.215.14"])
def test_public_addresses_pass(address: str) -> None:
    """Judged only; no connection is made to these."""
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_lets_exactly_its_ranges_through() -> None:
    allow = parse_allow("127.0.0.0/8, ::1")
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert refusal(ipaddress.ip_address("::1"), allow) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "http://[::ffff:192.168.0.1]:8080/",
        "http://127.0.0.1:9/",
        "http://[::1]:9/",
        "http://0.0.0.0:9/",
    ],
)
def test_refusal_happens_before_any_connection(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def no_connect(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_connect)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    with make_client(timeout_s=1) as client, pytest.raises(OutboundRefusedError):
        client.post(url, json={"x": 1})
    assert attempts == []


def test_loopback_is_reached_only_when_allowed() -> None:
    with platform() as p:
        with make_client(timeout_s=2) as client, pytest.raises(OutboundRefusedError):
            client.post(f"{p.url}/hook")
        assert p.received == []
        with make_client(allow="127.0.0.0/8", timeout_s=2) as client:
            assert client.post(f"{p.url}/hook").status_code == 200
        assert len(p.received) == 1


def test_redirects_are_not_followed() -> None:
    with platform() as p:
        from tests.platforms import Reply

        p.script("/hook", Reply(status=302, headers={"Location": "http://169.254.169.254/"}))
        with make_client(allow="127.0.0.0/8", timeout_s=2) as client:
            response = client.post(f"{p.url}/hook")
        assert response.status_code == 302 and len(p.received) == 1
        assert isinstance(response, httpx.Response)
