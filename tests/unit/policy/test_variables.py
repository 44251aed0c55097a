"""The variables of an exchange as ngrok names and shapes them
(`snippets/traffic-policy/variables/*.mdx`), read through CEL, lazily and cached per Scope."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from agentapi.engine.policy.cel import compile_expression
from agentapi.engine.policy.errors import PolicyRuntimeError
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts, ResponseFacts
from agentapi.engine.policy.variables import Missing, Scope

START = 1719243000.0  # 2024-06-24T15:30:00Z


def make_scope(*, tls: dict[str, str] | None = None) -> Scope:
    scope = Scope(
        conn=ConnFacts("203.0.113.7", 51234, "192.168.1.1", 443, START, tls),
        endpoint=EndpointFacts(
            "ep_2iL8",
            "web",
            "https://my-subdomain.ngrok.app",
            "my-subdomain.ngrok.app",
            443,
            "https",
            "http://localhost:3000",
        ),
        clock=lambda: START + 3600.5,
    )
    scope.request = RequestFacts(
        "POST",
        "/api/players%20all?number=23&name=jordan&foo=bar&foo=baz",
        "1.1",
        "https",
        "NBA.com:8443",
        [
            ("Host", "NBA.com:8443"),
            ("Content-Type", 'application/json; Charset="utf-8"'),
            ("Content-Length", "42"),
            ("Content-Encoding", "br, GZIP"),
            ("Baz", "Fizz"),
            ("baz", "Buzz"),
            ("User-Agent", "curl/8.5.0"),
            ("Cookie", 'sessionId=value1; other="quoted"'),
            ("Cookie", "sessionId=value2"),
        ],
        START + 1,
    )
    return scope


def read(source: str, scope: Scope | None = None) -> Any:
    return compile_expression(source, where="w").evaluate(scope or make_scope())


REQUEST_VARIABLES = [
    ("req.method", "POST"),
    ("req.url", "https://NBA.com:8443/api/players%20all?number=23&name=jordan&foo=bar&foo=baz"),
    ("req.url.raw", "https://NBA.com:8443/api/players%20all?number=23&name=jordan&foo=bar&foo=baz"),
    ("req.url.authority", "NBA.com:8443"),
    ("req.url.host", "nba.com"),
    ("req.url.port", 8443),
    ("req.url.path", "/api/players all"),
    ("req.url.raw_path", "/api/players%20all"),
    ("req.url.query", "number=23&name=jordan&foo=bar&foo=baz"),
    ("req.url.query_params['foo']", ["bar", "baz"]),
    ("req.url.scheme", "https"),
    ("req.url.uri", "/api/players%20all?number=23&name=jordan&foo=bar&foo=baz"),
    ("req.headers['baz']", ["Fizz", "Buzz"]),
    ("req.headers['Baz']", ["Fizz", "Buzz"]),
    ("'Fizz' in req.headers['baz']", True),
    ("req.headers.baz", ["Fizz", "Buzz"]),
    ("req.host", "NBA.com:8443"),
    ("req.content_type", "application/json"),
    ("req.content_type.raw", 'application/json; Charset="utf-8"'),
    ("req.content_type.parameters['charset'] == 'utf-8'", True),
    ("req.content_length", 42),
    ("req.content_encoding", ["br", "gzip"]),
    ("req.content_encoding[0] == 'br'", True),
    ("size(req.cookies) > 0", True),
    ("req.cookies['sessionId'][0].name == 'sessionId'", True),
    ("req.cookies['sessionId'].map(c, c.value)", ["value1", "value2"]),
    ("req.cookies['other'][0].value", "quoted"),
    ("req.version", "HTTP/1.1"),
    ("req.user_agent.contains('curl')", True),
    ("req.location", ""),
    ("req.trailers", {}),
    ("req.ts.header_received > timestamp('2023-12-31T00:00:00Z')", True),
    ("req.ts.header_received", dt.datetime(2024, 6, 24, 15, 30, 1, tzinfo=dt.UTC)),
]


@pytest.mark.parametrize(("source", "expected"), REQUEST_VARIABLES, ids=[case[0] for case in REQUEST_VARIABLES])
def test_request_variables_have_ngrok_names_and_shapes(source: str, expected: Any) -> None:
    assert read(source) == expected


def test_req_url_is_a_string_and_an_object_with_fields() -> None:
    assert read("req.url.startsWith('https://') && req.url.path.startsWith('/api')") is True
    assert read("url.parse(req.url).host") == "NBA.com:8443"


def test_absent_request_values_read_as_ngrok_leaves_them() -> None:
    scope = make_scope()
    scope.request = RequestFacts("GET", "/", "1.1", "http", "example.test", [("Host", "example.test")], START)
    assert read("req.content_length", scope) == 0
    assert read("has(req.content_length)", scope) is False
    assert read("req.url.port", scope) == 0
    assert read("has(req.url.port)", scope) is False
    assert read("req.content_type == '' && req.user_agent == '' && req.content_type.parameters == {}", scope) is True
    assert read("req.url.query_params", scope) == {}
    assert read("req.url", scope) == "http://example.test/"
    with pytest.raises(PolicyRuntimeError, match=r"no such key: req.ts.body_received"):
        read("req.ts.body_received", scope)


def test_an_absolute_form_target_keeps_its_user_and_port() -> None:
    scope = make_scope()
    scope.request = RequestFacts("GET", "http://user:pw@[::1]:81/x?y=1", "1.1", "http", "[::1]:81", [], START)
    assert read("[req.url.user_password, req.url.host, string(req.url.port), req.url.path]", scope) == [
        "user:pw",
        "::1",
        "81",
        "/x",
    ]


RESPONSE_VARIABLES = [
    ("res.status_code", 302),
    ("res.location", "/index.html"),
    ("res.headers['x-multi']", ["a", "b"]),
    ("res.content_type", "text/html"),
    ("res.content_type.parameters", {}),
    ("res.content_length", 0),
    ("res.content_encoding", []),
    ("res.cookies['id'].map(c, c.path)", ["/app/deep", "/app", ""]),
    ("res.cookies['id'][0].secure && res.cookies['id'][0].http_only", True),
    ("res.cookies['id'][0].same_site", "Lax"),
    ("res.cookies['id'][0].domain", "example.test"),
    ("res.cookies['id'][0].max_age", dt.timedelta(seconds=3600)),
    ("res.cookies['id'][0].expires", dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC)),
    ("res.cookies['id'][0].unparsed_attributes", {"Partitioned": ""}),
    ("has(res.cookies['id'][2].expires)", False),
    ("res.trailers", {}),
]


@pytest.mark.parametrize(("source", "expected"), RESPONSE_VARIABLES, ids=[case[0] for case in RESPONSE_VARIABLES])
def test_response_variables_have_ngrok_names_and_shapes(source: str, expected: Any) -> None:
    scope = make_scope()
    scope.response = ResponseFacts(
        302,
        "Found",
        "1.1",
        [
            ("Location", "/index.html"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("Content-Type", "TEXT/HTML"),
            ("Set-Cookie", "id=plain"),
            ("Set-Cookie", "id=short; Path=/app"),
            (
                "Set-Cookie",
                "id=long; Path=/app/deep; Domain=example.test; Secure; HttpOnly; SameSite=lax; Max-Age=3600; "
                "Expires=Wed, 21 Oct 2015 07:28:00 GMT; Partitioned",
            ),
        ],
    )
    assert read(source, scope) == expected


CONNECTION_VARIABLES = [
    ("conn.client_ip in ['::1', '203.0.113.7']", True),
    ("conn.client_port", 51234),
    ("conn.server_ip == '192.168.1.1'", True),
    ("conn.server_port", 443),
    ("conn.ts.start > timestamp('2023-12-31T00:00:00Z')", True),
    ("endpoint.addr == 'my-subdomain.ngrok.app:443'", True),
    ("endpoint.host == 'my-subdomain.ngrok.app'", True),
    ("endpoint.id", "ep_2iL8"),
    ("endpoint.port == 443", True),
    ("endpoint.protocol == 'https'", True),
    ("endpoint.url == 'https://my-subdomain.ngrok.app'", True),
    ("time.now", "2024-06-24T16:30:00Z"),
    ("conn.ts.start < timestamp(time.now)", True),
]


@pytest.mark.parametrize(("source", "expected"), CONNECTION_VARIABLES, ids=[case[0] for case in CONNECTION_VARIABLES])
def test_connection_endpoint_and_time_variables(source: str, expected: Any) -> None:
    assert read(source) == expected


def test_tls_variables_are_there_only_on_a_tls_connection() -> None:
    scope = make_scope(
        tls={"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "sni": "a.test", "alpn": "http/1.1"}
    )
    assert read("[conn.tls.version, conn.tls.cipher_suite, conn.tls.sni, conn.tls.negotiated_alpn]", scope) == [
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "a.test",
        "http/1.1",
    ]
    assert read("conn.tls.session_resumed", scope) is False
    assert read("has(conn.tls.version)") is False
    with pytest.raises(PolicyRuntimeError, match=r"conn\.tls: the connection does not use TLS"):
        read("conn.tls.version")


def test_vars_and_action_results_are_read_live() -> None:
    scope = make_scope()
    expression = compile_expression("vars.tier == 'gold' && actions.ngrok.basic_auth.credentials.authorized", where="w")
    scope.vars["tier"] = "gold"
    scope.actions["basic_auth"] = {"credentials": {"presented": True, "username": "u", "authorized": False}}
    assert expression.evaluate(scope) is False
    scope.actions["basic_auth"]["credentials"]["authorized"] = True  # changed in place, no changed() call
    assert expression.evaluate(scope) is True


def test_request_values_are_kept_until_changed() -> None:
    scope = make_scope()
    request = scope.request
    assert request is not None
    expression = compile_expression("req.headers['x-env']", where="w")
    with pytest.raises(PolicyRuntimeError):
        expression.evaluate(scope)
    request.headers.append(("X-Env", "dev"))
    assert read("req.method", scope) == "POST"
    assert compile_expression("hasReqHeader('x-env')", where="w").evaluate(scope) is True  # macros read the facts
    scope.changed("req")
    assert expression.evaluate(scope) == ["dev"]


def test_values_are_built_only_when_read_and_then_reused() -> None:
    scope = make_scope()
    first = scope.value(("req", "headers"))
    assert scope.value(("req", "headers")) is first
    scope.request = RequestFacts("GET", "/", "1.1", "http", "h", [("A", "1")], START)  # a new request
    assert scope.value(("req", "headers")) == {"a": ["1"]}


def test_a_missing_path_raises_missing_with_the_path() -> None:
    scope = make_scope()
    with pytest.raises(Missing, match=r"index out of range: req.headers.baz\[5\] \(the list has 2\)"):
        scope.value(("req", "headers", "baz", 5))
    with pytest.raises(Missing, match="req: there is no HTTP request in on_tcp_connect"):
        Scope(conn=scope.conn, endpoint=scope.endpoint).value(("req", "method"))


def test_whole_roots_read_as_maps() -> None:
    scope = make_scope()
    assert read("req.method", scope) == "POST"
    whole = read("req", scope)
    assert whole["url"] == read("req.url", scope)
    assert "#url" not in whole
    assert read("conn", scope)["ts"]["start"] == dt.datetime(2024, 6, 24, 15, 30, tzinfo=dt.UTC)
