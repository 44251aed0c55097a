"""Access checks as pure functions: a request head and connection facts in, pass or an answer out."""

from __future__ import annotations

import base64

import pytest

from agentapi.engine.access import (
    AUTHENTICATION_REQUIRED,
    FORBIDDEN,
    basic_auth_passes,
    check_request,
    connection_facts,
    ip_allowed,
)
from agentapi.engine.http1 import RequestHead
from tests.support.proxy_mocks import http_spec


def head(*headers: tuple[bytes, bytes]) -> RequestHead:
    return RequestHead(b"GET", b"/", "1.1", list(headers), keep_alive=True, chunked=False, upgrade=False)


def basic(credentials: bytes) -> tuple[bytes, bytes]:
    return (b"Authorization", b"Basic " + base64.b64encode(credentials))


@pytest.mark.parametrize(
    ("restriction", "ip", "allowed"),
    [
        ({}, "203.0.113.9", True),
        ({}, "not an address", True),  # no rule: nothing to parse
        ({"allow_cidrs": ["203.0.113.0/24"]}, "203.0.113.9", True),
        ({"allow_cidrs": ["203.0.113.0/24"]}, "198.51.100.1", False),
        ({"deny_cidrs": ["203.0.113.0/24"]}, "203.0.113.9", False),
        ({"deny_cidrs": ["203.0.113.0/24"]}, "198.51.100.1", True),
        ({"allow_cidrs": ["0.0.0.0/0"], "deny_cidrs": ["203.0.113.9/32"]}, "203.0.113.9", False),  # deny wins
        ({"allow_cidrs": ["::1/128"]}, "::1", True),
        ({"deny_cidrs": ["10.0.0.0/8"]}, "", False),  # an address that does not parse
    ],
)
def test_ip_restriction(restriction: dict, ip: str, allowed: bool) -> None:
    spec = http_spec(ip_restriction=restriction) if restriction else http_spec()
    assert ip_allowed(spec, ip) is allowed


def test_a_connection_with_nothing_to_check_costs_no_call_per_request() -> None:
    assert not connection_facts(http_spec(), "203.0.113.9").checked
    assert connection_facts(http_spec(basic_auth=["u:p"]), "203.0.113.9").checked
    denied = connection_facts(http_spec(ip_restriction={"deny_cidrs": ["203.0.113.0/24"]}), "203.0.113.9")
    assert denied.checked and not denied.ip_allowed


@pytest.mark.parametrize(
    ("header", "passes"),
    [
        (basic(b"user:secret"), True),
        (basic(b"other:pass:with:colons"), True),
        ((b"authorization", b"bAsIc " + base64.b64encode(b"user:secret")), True),
        (basic(b"user:wrong"), False),
        (basic(b"user"), False),
        ((b"Authorization", b"Bearer abc"), False),
        ((b"Authorization", b"Basic !!!not base64"), False),
        ((b"X-Other", b"x"), False),
    ],
)
def test_basic_auth(header: tuple[bytes, bytes], passes: bool) -> None:
    credentials = (("user", "secret"), ("other", "pass:with:colons"))
    assert basic_auth_passes(credentials, head(header)) is passes


def test_non_ascii_credentials_compare_as_bytes() -> None:
    assert basic_auth_passes((("zoë", "pässword"),), head(basic("zoë:pässword".encode())))


def test_the_ip_check_comes_before_credentials() -> None:
    spec = http_spec(basic_auth=["user:secret"], ip_restriction={"deny_cidrs": ["203.0.113.0/24"]})
    facts = connection_facts(spec, "203.0.113.9")
    assert check_request(spec, head(basic(b"user:secret")), facts) is FORBIDDEN
    allowed = connection_facts(spec, "198.51.100.1")
    assert check_request(spec, head(), allowed) is AUTHENTICATION_REQUIRED
    assert check_request(spec, head(basic(b"user:secret")), allowed) is None


def test_the_answer_pages() -> None:
    page = AUTHENTICATION_REQUIRED.page(keep_alive=True)
    assert page.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b'Connection: keep-alive\r\nWWW-Authenticate: Basic realm="ngrok"\r\n\r\n<!DOCTYPE html>' in page
    forbidden = FORBIDDEN.page(keep_alive=False)
    assert forbidden.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"Connection: close\r\n\r\n" in forbidden
