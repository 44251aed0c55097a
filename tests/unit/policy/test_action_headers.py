"""add-headers and remove-headers (ngrok's docs, traffic-policy/actions/add-headers.mdx and
remove-headers.mdx): what they do to a request and a response, and the configs they refuse."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, PolicyRuntimeError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, RESPONSE, Config, PhaseRun
from agentapi.engine.policy.actions.headers import AddHeaders, RemoveHeaders
from agentapi.engine.policy.facts import RequestFacts, ResponseFacts
from agentapi.engine.policy.runner import run_phase
from tests.support.policy_runs import RecordingScope, sample_conn, sample_endpoint

WHERE = "on_http_request.rules[0].actions[0] (add-headers).config"


def phase_run(phase: str = REQUEST, *, headers: list[tuple[str, str]] | None = None) -> PhaseRun:
    conn = sample_conn()
    endpoint = sample_endpoint()
    scope = RecordingScope(conn=conn, endpoint=endpoint)
    request = RequestFacts(
        method="GET",
        target="/get",
        version="1.1",
        scheme="https",
        host="example.ngrok.app",
        headers=headers if headers is not None else [("Host", "example.ngrok.app"), ("Accept", "*/*")],
        start=0.0,
    )
    scope.request = request
    response = None
    if phase == RESPONSE:
        response = ResponseFacts(status=200, reason="OK", version="1.1", headers=[("Content-Type", "text/plain")])
        scope.response = response
    return PhaseRun(phase=phase, scope=scope, conn=conn, request=request, response=response)


def add_headers(config: dict[str, Any], phase: str = REQUEST) -> AddHeaders:
    return AddHeaders(Config(config, where=WHERE), phase=phase)


def remove_headers(config: dict[str, Any], phase: str = REQUEST) -> RemoveHeaders:
    return RemoveHeaders(Config(config, where=WHERE), phase=phase)


def changes(run: PhaseRun) -> list[str]:
    assert isinstance(run.scope, RecordingScope)
    return run.scope.changes


# add-headers


def test_the_docs_response_example_adds_its_header_to_the_response_only() -> None:
    policy = load_policy(
        "on_http_response:\n"
        "  - actions:\n"
        "      - type: add-headers\n"
        "        config:\n"
        "          headers:\n"
        "            x-custom-header: my-custom-value\n",
        proto="https",
    )
    run = phase_run(RESPONSE)
    assert run_phase(policy, run) is None
    assert run.response is not None and run.request is not None
    assert run.response.headers == [("Content-Type", "text/plain"), ("x-custom-header", "my-custom-value")]
    assert run.request.header("x-custom-header") is None
    assert "res" in changes(run)


def test_it_appends_a_field_beside_one_of_the_same_name() -> None:
    run = phase_run(headers=[("Host", "example.ngrok.app"), ("X-Env", "prod")])
    add_headers({"headers": {"x-env": "dev"}}).run(run)
    assert run.request is not None
    assert run.request.header_values("x-env") == ["prod", "dev"]


def test_names_are_lower_cased_and_the_trace_lists_them() -> None:
    run = phase_run()
    add_headers({"headers": {"X-Env": "dev", "X-Req-Id": "42"}}).run(run)
    assert run.request is not None
    assert run.request.headers[-2:] == [("x-env", "dev"), ("x-req-id", "42")]
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [("add-headers", "x-env, x-req-id", False)]


def test_adding_host_replaces_the_host_field_and_the_requests_host() -> None:
    run = phase_run(headers=[("Host", "example.ngrok.app"), ("Accept", "*/*")])
    add_headers({"headers": {"host": "internal.example"}}).run(run)
    assert run.request is not None
    assert run.request.headers == [("Host", "internal.example"), ("Accept", "*/*")]
    assert run.request.host == "internal.example"


def test_it_reports_the_headers_added_and_that_the_request_changed() -> None:
    run = phase_run()
    add_headers({"headers": {"x-a": "1", "x-flag": True}}).run(run)
    assert run.scope.actions["add_headers"] == {"headers_added": {"x-a": "1", "x-flag": "true"}}
    assert changes(run) == ["req", "actions"]


def test_a_non_ascii_value_goes_out_as_its_utf8_bytes() -> None:
    run = phase_run()
    add_headers({"headers": {"x-city": "Zürich"}}).run(run)
    assert run.request is not None
    assert run.request.header("x-city") == "Zürich".encode().decode("latin-1")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.headers: is required"),
        ({"headers": {}}, "config.headers: must have 1 to 10 entries"),
        ({"headers": {f"x-{i}": "v" for i in range(11)}}, "config.headers: must have 1 to 10 entries"),
        ({"headers": ["x-a"]}, "config.headers: must be an object of strings"),
        ({"headers": {"x-a": ["1", "2"]}}, "config.headers: must be an object of strings"),
        ({"headers": {"x a": "1"}}, "config.headers.x a: a header name must be a token"),
        ({"headers": {"User-Agent": "bot"}}, "config.headers.User-Agent: ngrok does not allow adding the user-agent"),
        ({"headers": {"x-a": "1\r\nx-b: 2"}}, "config.headers.x-a: a header value must not contain CR, LF or NUL"),
        ({"headers": {"x-a": "1"}, "header": {}}, "config.header: unknown field"),
    ],
)
def test_add_headers_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        add_headers(config)
    assert message in str(refused.value)


def test_add_headers_cannot_run_on_tcp_connect() -> None:
    with pytest.raises(PolicyError, match=r"add-headers cannot run in on_tcp_connect"):
        load_policy(
            {"on_tcp_connect": [{"actions": [{"type": "add-headers", "config": {"headers": {"a": "b"}}}]}]}, proto="tcp"
        )


# remove-headers


def test_the_docs_example_removes_both_headers_from_the_request() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "remove-headers", "config": {"headers": ["x-client-version", "x-trace-id"]}}]}
            ]
        },
        proto="https",
    )
    run = phase_run(
        headers=[
            ("Host", "example.ngrok.app"),
            ("x-client-version", "3.1"),
            ("x-trace-id", "abc123"),
            ("Accept", "*/*"),
        ]
    )
    assert run_phase(policy, run) is None
    assert run.request is not None
    assert run.request.headers == [("Host", "example.ngrok.app"), ("Accept", "*/*")]
    assert run.scope.actions["remove_headers"] == {"headers_removed": ["x-client-version", "x-trace-id"]}
    assert run.trace[0].outcome == "removed x-client-version, x-trace-id"


def test_it_removes_every_field_of_the_name_whatever_its_case() -> None:
    run = phase_run(headers=[("Host", "h"), ("X-Debug", "1"), ("x-debug", "2"), ("X-DEBUG", "3"), ("Accept", "*/*")])
    remove_headers({"headers": ["x-Debug"]}).run(run)
    assert run.request is not None
    assert run.request.headers == [("Host", "h"), ("Accept", "*/*")]


def test_it_reports_only_the_headers_that_were_there() -> None:
    run = phase_run(headers=[("Host", "h"), ("x-a", "1")])
    remove_headers({"headers": ["x-a", "x-b"]}).run(run)
    assert run.scope.actions["remove_headers"] == {"headers_removed": ["x-a"]}
    assert changes(run) == ["req", "actions"]


def test_removing_absent_headers_changes_nothing() -> None:
    run = phase_run(headers=[("Host", "h")])
    remove_headers({"headers": ["x-b"]}).run(run)
    assert run.request is not None
    assert run.request.headers == [("Host", "h")]
    assert changes(run) == ["actions"]
    assert run.trace[0].outcome == "none present"


def test_in_on_http_response_it_removes_from_the_response() -> None:
    run = phase_run(RESPONSE, headers=[("Host", "h"), ("Content-Type", "text/html")])
    remove_headers({"headers": ["content-type"]}, RESPONSE).run(run)
    assert run.response is not None and run.request is not None
    assert run.response.headers == []
    assert run.request.header("content-type") == "text/html"


def test_remove_then_add_replaces_a_header_as_the_docs_advise() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {
                    "actions": [
                        {"type": "remove-headers", "config": {"headers": ["x-env"]}},
                        {"type": "add-headers", "config": {"headers": {"x-env": "dev"}}},
                    ]
                }
            ]
        },
        proto="http",
    )
    run = phase_run(headers=[("Host", "h"), ("X-Env", "prod")])
    run_phase(policy, run)
    assert run.request is not None
    assert run.request.header_values("x-env") == ["dev"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.headers: is required"),
        ({"headers": []}, "config.headers: must have 1 to 10 entries"),
        ({"headers": [f"x-{i}" for i in range(11)]}, "config.headers: must have 1 to 10 entries"),
        ({"headers": "x-a"}, "config.headers: must be a list of strings"),
        ({"headers": ["x-a", "x:b"]}, "config.headers[1]: a header name must be a token"),
        ({"headers": ["user-agent"]}, "config.headers[0]: ngrok does not allow removing the user-agent header"),
        ({"headers": ["x-a"], "enforce": True}, "config.enforce: unknown field"),
    ],
)
def test_remove_headers_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        remove_headers(config)
    assert message in str(refused.value)


# With CEL interpolation, through load_policy


def test_the_docs_client_ip_example_adds_the_clients_address() -> None:
    policy = load_policy(
        "on_http_request:\n"
        "  - actions:\n"
        "      - type: add-headers\n"
        "        config:\n"
        "          headers:\n"
        "            x-client-ip: ${conn.client_ip}\n",
        proto="https",
    )
    run = phase_run()
    run_phase(policy, run)
    assert run.request is not None
    assert run.request.header("x-client-ip") == "203.0.113.7"
    assert run.scope.actions["add_headers"] == {"headers_added": {"x-client-ip": "203.0.113.7"}}


def test_the_docs_response_example_interpolates_the_connection_start() -> None:
    policy = load_policy(
        {
            "on_http_response": [
                {
                    "actions": [
                        {
                            "type": "add-headers",
                            "config": {
                                "headers": {
                                    "x-custom-header": "my-custom-value",
                                    "x-string-interpolation-example": "started at ${conn.ts.start}",
                                }
                            },
                        }
                    ]
                }
            ]
        },
        proto="https",
    )
    run = phase_run(RESPONSE)
    run.conn.start = 1_720_829_416.0
    run_phase(policy, run)
    assert run.response is not None
    assert run.response.headers[-2:] == [
        ("x-custom-header", "my-custom-value"),
        ("x-string-interpolation-example", "started at 2024-07-13T00:10:16Z"),
    ]


def test_an_interpolated_value_with_a_line_break_fails_the_rule() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "set-vars", "config": {"vars": [{"v": "a\r\nx-injected: 1"}]}}]},
                {"name": "tag", "actions": [{"type": "add-headers", "config": {"headers": {"x-a": "${vars.v}"}}}]},
            ]
        },
        proto="https",
    )
    with pytest.raises(
        PolicyRuntimeError,
        match=r"rule 'tag', action add-headers: header x-a: a header value must not contain CR, LF or NUL",
    ):
        run_phase(policy, phase_run())


def test_a_value_reading_an_unknown_variable_is_refused_at_load() -> None:
    with pytest.raises(PolicyError, match=r"\(add-headers\)\.config\.headers\.x-a: unknown variable 'nope'"):
        load_policy(
            {"on_http_request": [{"actions": [{"type": "add-headers", "config": {"headers": {"x-a": "${nope.x}"}}}]}]},
            proto="https",
        )
