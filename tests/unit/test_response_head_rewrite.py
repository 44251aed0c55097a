"""What the agent changes in a service's response head: ngrok-error-code is the agent's alone, and
host_header: rewrite points the service's own redirects back at the public URL."""

from __future__ import annotations

import pytest

from agentapi.engine.response_head_rewrite import LocationRewrite, location_rewrite, rewrite_response_head
from agentapi.engine.tunnel_spec import TunnelSpec, parse_definition

PUBLIC = b"https://app.example:8443"


def spec(**definition: object) -> TunnelSpec:
    return parse_definition(definition, name="t", public_host="127.0.0.1")[0]


def rewrite(data: bytes, location: LocationRewrite | None = None) -> bytes:
    return rewrite_response_head(data, location, PUBLIC)


REWRITE = location_rewrite(spec(addr="8000", host_header="rewrite"))


def test_only_host_header_rewrite_rewrites_location() -> None:
    assert location_rewrite(spec(addr="8000")) is None
    assert location_rewrite(spec(addr="8000", host_header="preserve")) is None
    assert location_rewrite(spec(addr="8000", host_header="example.com")) is None
    assert REWRITE is not None


@pytest.mark.parametrize(
    ("location", "rewritten"),
    [
        (b"http://localhost:8000/next", b"https://app.example:8443/next"),
        (b"http://LOCALHOST:8000/next?a=1#f", b"https://app.example:8443/next?a=1#f"),
        (b"https://localhost:8000/secure", b"https://app.example:8443/secure"),  # behind X-Forwarded-Proto
        (b"//localhost:8000/x", b"https://app.example:8443/x"),
        (b"http://localhost:8000", b"https://app.example:8443"),
        (b"http://localhost:8000?q", b"https://app.example:8443?q"),
    ],
)
def test_a_redirect_to_the_upstreams_host_goes_back_to_the_public_url(location: bytes, rewritten: bytes) -> None:
    head = b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location
    assert rewrite(head, REWRITE) == b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % rewritten


@pytest.mark.parametrize(
    "location",
    [
        b"/next",
        b"next",
        b"http://example.com/",
        b"http://localhost:80001/",
        b"http://localhost/",
        b"http://127.0.0.1:8000/",
    ],
)
def test_other_locations_are_left_alone(location: bytes) -> None:
    head = b"HTTP/1.1 302 Found\r\nLocation: %s\r\n\r\n" % location
    assert rewrite(head, REWRITE) is head


def test_a_default_port_may_be_written_or_left_out() -> None:
    location = location_rewrite(spec(addr="http://localhost:80", host_header="rewrite"))
    for written in (b"http://localhost/a", b"http://localhost:80/a"):
        head = b"HTTP/1.1 301 Moved Permanently\r\nlocation:%s\r\n\r\n" % written
        assert (
            rewrite(head, location) == b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://app.example:8443/a\r\n\r\n"
        )


def test_content_location_and_the_body_are_untouched() -> None:
    head = (
        b"HTTP/1.1 201 Created\r\nContent-Location: http://localhost:8000/x\r\nLocation: http://localhost:8000/x\r\n"
        b"Content-Length: 26\r\n\r\nhttp://localhost:8000/body"
    )
    assert rewrite(head, REWRITE) == head.replace(
        b"Location: http://localhost:8000/x\r\nContent-Length",
        b"Location: https://app.example:8443/x\r\nContent-Length",
    )


def test_a_services_ngrok_error_code_never_reaches_the_client() -> None:
    head = b"HTTP/1.1 502 Bad Gateway\r\nNgrok-Error-Code: ERR_NGROK_8012\r\nContent-Length: 2\r\n\r\nno"
    assert rewrite(head) == b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 2\r\n\r\nno"
    folded = b"HTTP/1.1 200 OK\r\nngrok-error-code : x\r\n  folded\r\nA: b\r\n\r\n"
    assert rewrite(folded) == b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"


def test_a_head_with_nothing_to_change_is_returned_as_is() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Ngrok-Error-Code-Like: 1\r\nContent-Length: 27\r\n\r\n\r\nngrok-error-code: in body"
    assert rewrite(head) is head
    assert rewrite(head, REWRITE) is head


def test_only_the_final_head_after_interim_ones_changes() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 303 See Other\r\nLocation: http://localhost:8000/done\r\n\r\n"
    assert rewrite(data, REWRITE) == (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 303 See Other\r\nLocation: https://app.example:8443/done\r\n\r\n"
    )


def test_an_ipv6_upstream_is_matched_in_brackets() -> None:
    location = location_rewrite(spec(addr="[::1]:8000", host_header="rewrite"))
    head = b"HTTP/1.1 302 Found\r\nLocation: http://[::1]:8000/x\r\n\r\n"
    assert rewrite(head, location) == b"HTTP/1.1 302 Found\r\nLocation: https://app.example:8443/x\r\n\r\n"


def test_the_field_is_dropped_from_a_final_head_after_an_interim_one() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nngrok-error-code: x\r\nContent-Length: 0\r\n\r\n"
    assert rewrite(data) == b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
