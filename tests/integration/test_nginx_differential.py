"""Differential check against nginx: the same requests, byte for byte, through nginx as a reverse
proxy and through the agent's tunnel, to the same recording service. What the service receives
(and what the client gets back) must agree, apart from what is each proxy's own business:

- hop-by-hop fields (RFC 9110 §7.6.1): Connection and the fields it lists, Keep-Alive,
  Proxy-Connection, TE, Transfer-Encoding, Upgrade. They describe one connection, not the message;
- the framing of a chunked upload: a proxy may forward it chunked or with a Content-Length (nginx
  buffers it and sends a length); the body itself must be the same. A Content-Length the client
  sent must arrive unchanged;
- fields a proxy adds about the hop: X-Forwarded-*, X-Real-IP, Forwarded, Via (the agent adds
  X-Forwarded-For/-Host/-Proto, as ngrok does; nginx adds none in this configuration);
- Expect: 100-continue: a proxy may meet the expectation itself (nginx does) or pass it on to the
  service and relay its 100 (RFC 9110 §10.1.1); either way the client must get its 100 promptly;
- in the response, Server and Date (nginx writes its own) and the framing fields;
- field name case (names are case-insensitive, RFC 9110 §5.1) and the relative order of fields with
  different names (only the order of same-name fields carries meaning, RFC 9110 §5.3).

Everything else is compared exactly: method, request target (raw bytes, no normalisation), HTTP
version, every other field with its value bytes (UTF-8 included) and the order of same-name fields,
the body. nginx is the reference because it is what people put in front of the same services.
nginx missing fails the test (scripts/ensure-test-deps installs it).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.http_wire import Message, read_head, read_response
from tests.support.nginx import INSTALL_HINT, nginx_binary, nginx_proxy
from tests.support.recording_service import ANSWER_BODY, RecordingService, recording_service

HOST = b"app.example.test"
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade"}
PROXY_OWN = {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port", b"x-real-ip"}
PROXY_OWN |= {b"forwarded", b"via", b"expect"}
RESPONSE_OWN = {b"server", b"date", b"content-length"}


@dataclass
class Case:
    name: str
    method: str
    target: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    chunks: list[bytes] | None = None  # sent with Transfer-Encoding: chunked, in these pieces
    length: bool = False  # send Content-Length even when the body is empty
    expect_continue: bool = False  # send the head with Expect: 100-continue, the body after the 100

    def raw(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1".encode(), b"Host: " + HOST]
        lines += [name + b": " + value for name, value in self.headers]
        if self.expect_continue:
            lines.append(b"Expect: 100-continue")
        if self.chunks is not None:
            lines.append(b"Transfer-Encoding: chunked")
            framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in self.chunks) + b"0\r\n\r\n"
            return b"\r\n".join(lines) + b"\r\n\r\n" + framed
        if self.body or self.length:
            lines.append(b"Content-Length: %d" % len(self.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    @property
    def sent_body(self) -> bytes:
        return b"".join(self.chunks) if self.chunks is not None else self.body


MIB = bytes(range(256)) * 4096

CASES = [
    Case("get_root", "GET", "/", [(b"User-Agent", b"curl/8.5.0"), (b"Accept", b"*/*")]),
    Case("encoded_slash_and_space", "GET", "/a%2Fb?x=1&y=%20"),
    Case("path_parameters", "GET", "/path;p?q"),
    Case("dot_segments_kept", "GET", "/a/./b/../c"),
    Case("double_slashes_kept", "GET", "//x//y/"),
    Case("odd_query", "GET", "/search?q=a+b&q=c%26d&empty=&flag&%3D=%3D"),
    Case("percent_encoded_utf8", "GET", "/caf%C3%A9/%E4%B8%96?na%C3%AFve=%F0%9F%98%80"),
    Case("unreserved_and_subdelims", "GET", "/~user/it's(1)!*,:@$+=?a=b/c?d"),
    Case("lower_case_escapes", "GET", "/a%2fb%7e%c3%a9"),
    Case("empty_query", "GET", "/trailing-question?"),
    Case("absolute_form", "GET", "http://app.example.test/abs?x=1"),
    Case(
        "end_to_end_headers",
        "GET",
        "/headers",
        [
            (b"Accept", b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
            (b"Accept-Language", b"fr-FR,fr;q=0.9,en;q=0.5"),
            (b"Authorization", b"Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"),
            (b"Cookie", b"a=1; b=2"),
            (b"X-Multi", b"first"),
            (b"Cookie", b"c=3"),
            (b"X-Multi", b"second, with comma"),
            (b"X-Multi", b"third"),
            (b"X-User", "André Grüße 世界 😀".encode()),
            (b"x-lower-case-name", b"kept"),
            (b"X-Spaces", b"a  b\tc"),
            (b"X-Padded", b"  value with outer spaces  "),
            (b"X-Latin1", b"caf\xe9"),
            (b"X-Empty", b""),
            (b"If-None-Match", b'W/"abc", "def"'),
            (b"Referer", b"http://app.example.test/page?x=1"),
            (b"Cache-Control", b"no-cache"),
        ],
    ),
    Case(
        "json_post",
        "POST",
        "/webhook?source=stripe",
        [(b"Content-Type", b"application/json; charset=utf-8"), (b"X-Signature", b"t=1,v1=5257a869e7ecebeda32a")],
        '{"event":"invoice.paid","amount":1000,"name":"Zoë"}'.encode(),
    ),
    Case("empty_post", "POST", "/empty", [(b"Content-Type", b"application/x-www-form-urlencoded")], length=True),
    Case("bodyless_post", "POST", "/no-length"),
    Case(
        "chunked_upload",
        "POST",
        "/upload",
        [(b"Content-Type", b"application/octet-stream")],
        chunks=[b"first piece,", bytes(range(256)) * 40, b"last"],
    ),
    Case("one_mib_put", "PUT", "/big", [(b"Content-Type", b"application/octet-stream")], MIB),
    Case("expect_continue", "POST", "/curl-upload", [(b"Content-Type", b"text/csv")], MIB, expect_continue=True),
    Case("form_patch", "PATCH", "/form", [(b"Content-Type", b"application/x-www-form-urlencoded")], b"a=1&b=%C3%A9"),
    Case("delete", "DELETE", "/items/42", [(b"Authorization", b"Basic dXNlcjpwYXNz")]),
    Case(
        "cors_preflight",
        "OPTIONS",
        "/api/thing",
        [
            (b"Origin", b"http://localhost:3000"),
            (b"Access-Control-Request-Method", b"PUT"),
            (b"Access-Control-Request-Headers", b"content-type,x-token"),
        ],
    ),
    Case("head", "HEAD", "/page"),
    Case("chunked_answer", "GET", "/stream", [(b"X-Answer", b"chunked")]),
    Case("close_delimited_answer", "GET", "/legacy", [(b"X-Answer", b"close")]),
    Case("no_content_answer", "DELETE", "/gone", [(b"X-Answer", b"204")]),
    Case("not_modified_answer", "GET", "/cached", [(b"X-Answer", b"304"), (b"If-None-Match", b'"v1"')]),
    Case("extension_method", "PROPFIND", "/dav/", [(b"Depth", b"1"), (b"Content-Type", b"application/xml")], b"<x/>"),
    Case(
        "hop_by_hop_from_client",
        "GET",
        "/hop",
        [
            (b"Connection", b"keep-alive, X-Hop"),
            (b"X-Hop", b"for this hop only"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"X-End-To-End", b"survives"),
        ],
    ),
]


@pytest.fixture(scope="module")
def recorder() -> Iterator[RecordingService]:
    with recording_service() as service:
        yield service


@pytest.fixture(scope="module")
def nginx_port(recorder: RecordingService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if nginx_binary() is None:
        pytest.fail(INSTALL_HINT)
    with nginx_proxy(tmp_path_factory.mktemp("nginx"), recorder.port) as port:
        yield port


@pytest.fixture(scope="module")
def tunnel_port(recorder: RecordingService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    agent = AgentProcess(tmp_path_factory.mktemp("agent")).start()
    try:
        tunnel = agent.start_tunnel(name="diff", proto="http", addr=f"127.0.0.1:{recorder.port}")
        yield int(tunnel["public_url"].rsplit(":", 1)[1])
    finally:
        agent.stop()


def exchange(port: int, case: Case, recorder: RecordingService) -> tuple[Message, Message, bytes]:
    """Sends the case on a new connection; returns what the service received, what the client got
    and the interim response line the client got before sending the body (with Expect only)."""
    recorder.take()
    raw, interim = case.raw(), b""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock, sock.makefile("rb") as reader:
        if case.expect_continue:
            head, _, body = raw.partition(b"\r\n\r\n")
            sock.sendall(head + b"\r\n\r\n")
            # curl waits 1 s for the 100 before it sends the body anyway; allow 2.
            ready, _, _ = select.select([sock], [], [], 2)
            interim_head = read_head(reader) if ready else None
            interim = interim_head.start_line if interim_head else b"(nothing within 2 s)"
            sock.sendall(body)
        else:
            sock.sendall(raw)
        response = read_response(reader, method=case.method)
    assert response is not None, f"port {port} closed without answering {case.name}"
    received = recorder.take()
    assert len(received) == 1, f"the service received {len(received)} requests for one ({case.name})"
    return received[0], response, interim


def comparable(message: Message, excluded: set[bytes]) -> list[tuple[bytes, bytes]]:
    """Fields minus the excluded ones, names lower-cased, grouped by name in first-seen order with
    same-name fields kept in their order."""
    connection_listed = {
        token.strip().lower()
        for name, value in message.headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    kept = [(name.lower(), value) for name, value in message.headers]
    kept = [(name, value) for name, value in kept if name not in excluded and name not in connection_listed]
    order = list(dict.fromkeys(name for name, _ in kept))
    return [(name, value) for group in order for name, value in kept if name == group]


def request_differences(case: Case, via_nginx: Message, via_agent: Message) -> list[str]:
    out = []
    if via_nginx.start_line != via_agent.start_line:
        out.append(f"request line: nginx {via_nginx.start_line!r}, agent {via_agent.start_line!r}")
    excluded = HOP_BY_HOP | PROXY_OWN
    # The client's own Connection-listed fields are hop-by-hop too (RFC 9110 §7.6.1).
    for name, value in case.headers:
        if name.lower() == b"connection":
            excluded |= {token.strip().lower() for token in value.split(b",")}
    if case.chunks is not None:
        excluded = excluded | {b"content-length"}  # re-framing a chunked upload is the proxy's choice
    nginx_fields, agent_fields = comparable(via_nginx, excluded), comparable(via_agent, excluded)
    if nginx_fields != _same_order(nginx_fields, agent_fields):
        only_nginx = [f for f in nginx_fields if f not in agent_fields]
        only_agent = [f for f in agent_fields if f not in nginx_fields]
        out.append(f"fields: only via nginx {only_nginx}, only via the agent {only_agent}")
        out.append(f"  nginx: {nginx_fields}\n  agent: {agent_fields}")
    for proxy, message in (("nginx", via_nginx), ("agent", via_agent)):
        if message.body != case.sent_body:
            out.append(f"{proxy} delivered a {len(message.body)}-byte body for {len(case.sent_body)} sent")
    return out


def _same_order(reference: list[tuple[bytes, bytes]], other: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`other`'s fields regrouped in `reference`'s name order: equal to `reference` when every
    name has the same values in the same order."""
    order = list(dict.fromkeys(name for name, _ in reference))
    order += [name for name in dict.fromkeys(name for name, _ in other) if name not in order]
    return [(name, value) for group in order for name, value in other if name == group]


def response_differences(via_nginx: Message, via_agent: Message) -> list[str]:
    out = []
    if via_nginx.status != via_agent.status:
        out.append(f"status: nginx {via_nginx.start_line!r}, agent {via_agent.start_line!r}")
    excluded = HOP_BY_HOP | RESPONSE_OWN
    nginx_fields, agent_fields = comparable(via_nginx, excluded), comparable(via_agent, excluded)
    if nginx_fields != _same_order(nginx_fields, agent_fields):
        out.append(f"response fields:\n  nginx: {nginx_fields}\n  agent: {agent_fields}")
    if via_nginx.body != via_agent.body:
        out.append(f"response body: nginx {via_nginx.body[:80]!r}, agent {via_agent.body[:80]!r}")
    return out


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_service_sees_the_same_request_through_nginx_and_the_agent(
    case: Case, recorder: RecordingService, nginx_port: int, tunnel_port: int
) -> None:
    via_nginx, nginx_answer, nginx_interim = exchange(nginx_port, case, recorder)
    via_agent, agent_answer, agent_interim = exchange(tunnel_port, case, recorder)
    assert nginx_answer.status < 400, f"nginx answered {nginx_answer.start_line!r}: the reference is broken"
    differences = request_differences(case, via_nginx, via_agent) + response_differences(nginx_answer, agent_answer)
    if nginx_interim != agent_interim:
        differences.append(f"interim response: nginx {nginx_interim!r}, agent {agent_interim!r}")
    assert not differences, f"{case.name}: " + "\n".join(differences)
    if nginx_answer.status == 200 and case.method != "HEAD":
        assert agent_answer.body == ANSWER_BODY


def test_a_content_length_the_client_sent_arrives_unchanged(
    recorder: RecordingService, nginx_port: int, tunnel_port: int
) -> None:
    for case in CASES:
        if case.chunks is None and (case.body or case.length):
            for port in (nginx_port, tunnel_port):
                received, _, _ = exchange(port, case, recorder)
                assert received.header("Content-Length") == str(len(case.body)).encode(), (case.name, port)
                assert received.header("Transfer-Encoding") is None, (case.name, port)


def test_the_agent_drops_the_fields_the_client_listed_in_connection(
    recorder: RecordingService, tunnel_port: int
) -> None:
    # RFC 9110 §7.6.1: a proxy MUST remove the fields named in Connection (nginx does not; so this
    # is checked against the RFC, not against nginx).
    case = next(case for case in CASES if case.name == "hop_by_hop_from_client")
    received, _, _ = exchange(tunnel_port, case, recorder)
    names = {name.lower() for name, _ in received.headers}
    assert b"x-hop" not in names
    assert received.header("X-End-To-End") == b"survives"
