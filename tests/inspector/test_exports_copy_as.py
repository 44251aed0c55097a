"""Copy as Python requests, HTTPie and fetch: code that sends the captured request again.

The requests script runs for real against a local service that records the bytes it gets; the
HTTPie command line is read back with shlex (and its printf part run by sh); fetch is checked here
for its shape and in Chromium (tests/browser/test_webhook_tools.py) for being JavaScript that sends
the same request.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable

from django.test import Client

from agentapi.models import Capture
from tests.support.recording_service import recording_service

JSON_BODY = '{"event": "it\'s \\"paid\\"", "note": "$(rm -rf /) `x` Grüße"}'.encode()


def request_to(host: str, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A stored request as the agent forwards it: the service's Host, then the client's fields and
    the agent's X-Forwarded-*, which name the URL the client used."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1:9", *(n + b": " + v for n, v in headers)]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    lines += [b"X-Forwarded-For: 10.1.2.3", b"X-Forwarded-Host: " + host.encode(), b"X-Forwarded-Proto: http"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def copied(client: Client, capture: Capture, language: str) -> str:
    response = client.get(f"/inspect/captures/{capture.id}/as/{language}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    return response.content.decode()


HEADERS = [
    (b"Content-Type", b"application/json"),
    (b"X-Quote", b"a 'b' \"c\" $HOME `x`"),
    (b"X-User", "André".encode()),
    (b"Cookie", b"a=1"),
    (b"Cookie", b"b=2"),
]


def test_copy_as_requests_sends_the_same_request_to_a_real_service(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    with recording_service() as service:
        host = f"127.0.0.1:{service.port}"
        target = "/hooks/stripe?a=1&b=it%27s"
        capture = make_capture(method="POST", uri=target, request=request_to(host, "POST", target, HEADERS, JSON_BODY))
        code = copied(client, capture, "requests")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert run.returncode == 0, run.stderr.decode()
        assert run.stdout.decode().startswith("200\n")
        (received,) = service.take()
    assert received.start_line == f"POST {target} HTTP/1.1".encode()
    assert received.body == JSON_BODY
    for name, value in HEADERS[:3]:
        assert received.header(name.decode()) == value
    # requests takes one value a name: the two Cookie fields go out as one, as RFC 9110 allows.
    assert received.header("Cookie") == b"a=1; b=2"
    assert received.header("Host") == host.encode()
    assert "# Cookie was sent 2 times: one field here" in code


def test_copy_as_requests_sends_a_binary_body_byte_for_byte(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    body = bytes(range(256)) + b"'\"\\"
    with recording_service() as service:
        host = f"127.0.0.1:{service.port}"
        raw = request_to(host, "PUT", "/blob", [(b"Content-Type", b"application/octet-stream")], body)
        capture = make_capture(method="PUT", uri="/blob", request=raw)
        run = subprocess.run(
            [sys.executable, "-c", copied(client, capture, "requests")], capture_output=True, timeout=30
        )
        assert run.returncode == 0, run.stderr.decode()
        (received,) = service.take()
    assert received.body == body


def test_copy_as_httpie_quotes_every_argument(client: Client, make_capture: Callable[..., Capture]) -> None:
    target = "/hooks/x?a=1&b=it's"
    headers = [(b"Content-Type", b"application/json"), (b"X-Quote", b"a 'b' $HOME `x`"), (b"X-Empty", b"")]
    capture = make_capture(
        method="POST", uri=target, request=request_to("demo.example", "POST", target, headers, JSON_BODY)
    )
    args = shlex.split(copied(client, capture, "httpie"))
    assert args == [
        "http",
        "--ignore-stdin",
        "--raw",
        JSON_BODY.decode(),
        "POST",
        "http://demo.example/hooks/x?a=1&b=it's",
        "Content-Type:application/json",
        "X-Quote:a 'b' $HOME `x`",
        "X-Empty;",  # HTTPie's spelling of a header with an empty value
    ]


def test_copy_as_httpie_pipes_a_binary_body_through_printf(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    body = b"\x00\x01binary\\\xff'"
    capture = make_capture(method="PUT", request=request_to("demo.example", "PUT", "/blob", [], body))
    command = copied(client, capture, "httpie").strip()
    printf_part, _, http_part = command.partition(" | ")
    assert subprocess.run(["sh", "-c", printf_part], capture_output=True, check=True).stdout == body
    assert shlex.split(http_part) == ["http", "PUT", "http://demo.example/blob"]


def test_copy_as_httpie_spells_out_header_bytes_that_are_not_utf8(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    capture = make_capture(request=request_to("demo.example", "GET", "/", [(b"X-User", b"Andr\xe9")]))
    command = copied(client, capture, "httpie").strip()
    script = 'http() { for arg in "$@"; do printf "%s\\n" "$arg"; done; }; ' + command
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert b"X-User:Andr\xe9\n" in out.splitlines(keepends=True)


def test_copy_as_fetch_gives_json_string_literals_and_byte_exact_headers(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    capture = make_capture(
        method="POST", uri="/hooks", request=request_to("demo.example", "POST", "/hooks", HEADERS, JSON_BODY)
    )
    code = copied(client, capture, "fetch")
    assert code.startswith("// a browser drops cookie (forbidden header names); Node sends them\n")
    assert 'fetch("http://demo.example/hooks", {\n  method: "POST",\n  headers: [\n' in code
    # Each header byte is one code unit of the ByteString fetch sends: UTF-8 André as its 6 bytes.
    assert '    ["X-User", "Andr\\u00c3\\u00a9"],' in code
    assert f"  body: {json.dumps(JSON_BODY.decode())}," in code


def test_copy_as_fetch_leaves_out_a_get_body_and_says_so(client: Client, make_capture: Callable[..., Capture]) -> None:
    capture = make_capture(request=request_to("demo.example", "GET", "/q", [], b"odd"))
    code = copied(client, capture, "fetch")
    assert "// the 3-byte body is left out: fetch sends none with GET" in code
    assert "body:" not in code


def test_copy_as_names_a_request_that_was_cut(client: Client, make_capture: Callable[..., Capture]) -> None:
    raw = request_to("demo.example", "POST", "/up", [], b"z" * 300)
    capture = make_capture(method="POST", request=raw[:-100], request_size=len(raw))
    note = f"only {len(raw) - 100} of {len(raw)} bytes of this request were captured"
    assert copied(client, capture, "requests").startswith(f"# {note}\n")
    assert copied(client, capture, "httpie").startswith(f"# {note}\n")
    assert copied(client, capture, "fetch").startswith(f"// {note}\n")


def test_an_unknown_language_is_refused_by_name(client: Client, make_capture: Callable[..., Capture]) -> None:
    capture = make_capture()
    response = client.get(f"/inspect/captures/{capture.id}/as/perl")
    assert response.status_code == 404
    assert response.json() == {"error": "no export 'perl': use fetch, httpie, requests"}
