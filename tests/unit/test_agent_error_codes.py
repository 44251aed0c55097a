"""The agent's error pages carry ngrok's `ngrok-error-code` (http1.error_response), the code chosen
by what failed, as the proxy and the replay word it."""

from __future__ import annotations

import ssl

import pytest

from agentapi.engine.http1 import agent_error_code, error_response
from agentapi.engine.upstream_dial import dial_error


@pytest.mark.parametrize(
    ("status", "detail", "code"),
    [
        (502, dial_error("localhost:8080", ConnectionRefusedError()), "ERR_NGROK_8012"),
        (502, dial_error("localhost:8080", OSError(113, "No route to host")), "ERR_NGROK_8012"),
        (502, dial_error("localhost:8443", ssl.SSLCertVerificationError(1, "verify failed")), "ERR_NGROK_8012"),
        (502, "failed to reach the local service: Connection refused", "ERR_NGROK_8012"),  # replay
        (502, "malformed response from upstream: Invalid status code", "ERR_NGROK_3004"),
        (502, "the response head is larger than 65536 bytes", "ERR_NGROK_3004"),
        (502, "the local service closed the connection without answering", "ERR_NGROK_3004"),
        (502, "the local service reset the connection: [Errno 104] Connection reset by peer", "ERR_NGROK_3004"),
        (502, "the local service switched protocols unasked", "ERR_NGROK_3004"),
        (504, "timed out connecting to the local service", "ERR_NGROK_3005"),
        (504, "the local service did not answer in time", "ERR_NGROK_3008"),
        (400, "invalid header", None),
        (408, "the request head did not arrive within 30 s", None),
        (431, "request head larger than 65536 bytes", None),
    ],
)
def test_each_failure_has_ngroks_code(status: int, detail: str, code: str | None) -> None:
    assert agent_error_code(status, detail) == code
    page = error_response(status, detail)
    if code is None:
        assert b"ngrok-error-code" not in page
    else:
        assert b"\r\nngrok-error-code: %s\r\n" % code.encode() in page.split(b"\r\n\r\n")[0] + b"\r\n"
        assert b"<p>%s</p>" % code.encode() in page


def test_a_caller_may_name_the_code() -> None:
    page = error_response(502, "anything", error_code="ERR_NGROK_3004")
    assert b"\r\nngrok-error-code: ERR_NGROK_3004\r\n" in page


def test_the_page_length_counts_the_code() -> None:
    head, _, body = error_response(502, dial_error("h:1", ConnectionRefusedError())).partition(b"\r\n\r\n")
    assert b"Content-Length: %d\r\n" % len(body) in head


def test_a_refused_certificate_is_named_in_the_page() -> None:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.verify_message = "self-signed certificate"
    assert dial_error("localhost:8443", error) == (
        "failed to connect to the local service at localhost:8443: its TLS certificate was refused "
        "(upstream_tls_verify): self-signed certificate"
    )
