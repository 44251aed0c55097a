"""custom-response, deny, close-connection and redirect (ngrok's docs, traffic-policy/actions/
<type>.mdx): the docs' examples give the documented answers; the configs each refuses."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, PolicyRuntimeError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, RESPONSE, TCP, Config, PhaseRun
from agentapi.engine.policy.actions.responses import CloseConnectionAction, CustomResponse, Deny, Redirect
from agentapi.engine.policy.facts import EndpointFacts, RequestFacts, ResponseFacts
from agentapi.engine.policy.outcomes import CloseConnection, Respond
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.variables import Scope
from tests.support.policy_runs import sample_conn

WHERE = "on_http_request.rules[0].actions[0] (x).config"
MAINTENANCE = (
    "<html><body><h1>Service Unavailable</h1><p>Our servers are currently down for maintenance. "
    "Please check back later.</p></body></html>"
)


def phase_run(
    phase: str = REQUEST, *, target: str = "/", host: str = "example.ngrok.app", scheme: str = "https"
) -> PhaseRun:
    conn = sample_conn()
    endpoint = EndpointFacts(
        id="ep_1",
        name="web",
        url=f"{scheme}://{host}",
        host=host,
        port=443,
        protocol=scheme,
        upstream_url="http://localhost:8080",
    )
    scope = Scope(conn=conn, endpoint=endpoint)
    if phase == TCP:
        return PhaseRun(phase=phase, scope=scope, conn=conn)
    request = RequestFacts(
        method="GET", target=target, version="1.1", scheme=scheme, host=host, headers=[("Host", host)], start=0.0
    )
    scope.request = request
    response = ResponseFacts(status=200, reason="OK", version="1.1") if phase == RESPONSE else None
    scope.response = response
    return PhaseRun(phase=phase, scope=scope, conn=conn, request=request, response=response)


def only_policy(phase: str, action_type: str, config: dict[str, Any] | None = None, proto: str = "https") -> Any:
    action: dict[str, Any] = {"type": action_type}
    if config is not None:
        action["config"] = config
    return load_policy({phase: [{"actions": [action]}]}, proto=proto)


def refused(cls: type, config: dict[str, Any], phase: str = REQUEST) -> str:
    with pytest.raises(PolicyError) as error:
        cls(Config(config, where=WHERE), phase=phase)
    return str(error.value)


# custom-response


def test_the_docs_maintenance_page_is_answered_with_its_status_and_type() -> None:
    policy = load_policy(
        "on_http_request:\n"
        "  - actions:\n"
        "      - type: custom-response\n"
        "        config:\n"
        "          status_code: 503\n"
        f"          body: {MAINTENANCE}\n"
        "          headers:\n"
        "            content-type: text/html\n",
        proto="https",
    )
    run = phase_run(target="/dashboard")
    assert run_phase(policy, run) == Respond(503, [("content-type", "text/html")], MAINTENANCE.encode())
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [
        ("custom-response", f"503, {len(MAINTENANCE)} bytes", True)
    ]


def test_the_docs_location_example_answers_a_302_with_no_body() -> None:
    policy = only_policy(
        REQUEST, "custom-response", {"status_code": 302, "headers": {"location": "https://www.example.com"}}
    )
    assert run_phase(policy, phase_run()) == Respond(302, [("location", "https://www.example.com")], b"")


def test_the_status_defaults_to_200_and_the_content_type_is_left_to_infer() -> None:
    # The proxy infers Content-Type from the body when none is given (outcomes.Respond).
    answer = CustomResponse(Config({"body": '{"ok": true}'}, where=WHERE), phase=REQUEST).run(phase_run())
    assert answer == Respond(200, [], b'{"ok": true}')


def test_the_body_is_sent_as_utf8_and_header_names_lower_cased() -> None:
    config = {"body": "grüße", "headers": {"Content-Type": "text/plain; charset=utf-8", "X-Note": "café"}}
    answer = CustomResponse(Config(config, where=WHERE), phase=REQUEST).run(phase_run())
    assert answer == Respond(
        200,
        [("content-type", "text/plain; charset=utf-8"), ("x-note", "café".encode().decode("latin-1"))],
        "grüße".encode(),
    )


def test_in_on_http_response_it_replaces_the_services_response() -> None:
    policy = only_policy(RESPONSE, "custom-response", {"status_code": 418, "body": "teapot"})
    assert run_phase(policy, phase_run(RESPONSE)) == Respond(418, [], b"teapot")


def test_nothing_after_it_runs() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "custom-response", "config": {"body": "first"}}]},
                {"actions": [{"type": "custom-response", "config": {"body": "second"}}]},
            ]
        },
        proto="http",
    )
    run = phase_run()
    assert run_phase(policy, run) == Respond(200, [], b"first")
    assert len(run.trace) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"status_code": 199}, "config.status_code: must be at least 200 and at most 599"),
        ({"status_code": 600}, "config.status_code: must be at least 200 and at most 599"),
        ({"status_code": "200"}, "config.status_code: must be a whole number"),
        ({"body": 42}, "config.body: must be a string"),
        ({"headers": {f"x-{i}": "v" for i in range(11)}}, "config.headers: must have 1 to 10 entries"),
        ({"headers": {"x-a": "a\nb"}}, "config.headers.x-a: a header value must not contain CR, LF or NUL"),
        ({"status": 200}, "config.status: unknown field"),
    ],
)
def test_custom_response_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    assert message in refused(CustomResponse, config)


# deny


def test_the_docs_http_example_answers_404_with_no_body() -> None:
    run = phase_run()
    assert run_phase(only_policy(REQUEST, "deny", {"status_code": 404}), run) == Respond(404)
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [("deny", "404", True)]


def test_deny_answers_403_by_default() -> None:
    assert run_phase(only_policy(REQUEST, "deny"), phase_run()) == Respond(403)


def test_the_docs_tcp_example_closes_the_connection() -> None:
    run = phase_run(TCP)
    assert run_phase(only_policy(TCP, "deny", proto="tcp"), run) == CloseConnection()
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [("deny", "closed connection", True)]


def test_deny_on_tcp_connect_takes_no_status_code() -> None:
    message = refused(Deny, {"status_code": 403}, TCP)
    assert "config.status_code: deny has no config fields in on_tcp_connect" in message


def test_deny_does_not_run_on_http_response() -> None:
    with pytest.raises(PolicyError, match=r"deny cannot run in on_http_response"):
        only_policy(RESPONSE, "deny")


def test_deny_refuses_an_out_of_range_status() -> None:
    assert "config.status_code: must be at least 200 and at most 599" in refused(Deny, {"status_code": 99})


# close-connection


def test_close_connection_closes_on_a_request_and_on_a_connection() -> None:
    for phase, proto in ((REQUEST, "https"), (TCP, "tls")):
        run = phase_run(phase)
        assert run_phase(only_policy(phase, "close-connection", proto=proto), run) == CloseConnection()
        assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [
            ("close-connection", "closed connection", True)
        ]


def test_close_connection_has_no_config_fields() -> None:
    assert "config.status_code: unknown field" in refused(CloseConnectionAction, {"status_code": 400})


# redirect


def redirect(config: dict[str, Any], target: str, *, host: str = "example.ngrok.app") -> Any:
    run = phase_run(target=target, host=host)
    return Redirect(Config(config, where=WHERE), phase=REQUEST).run(run), run


def test_the_docs_path_example_redirects_products_to_store_products() -> None:
    policy = only_policy(REQUEST, "redirect", {"from": "^(https?://[^/]+)/products(.*)$", "to": "$1/store/products$2"})
    run = phase_run(target="/products")
    assert run_phase(policy, run) == Respond(302, [("Location", "https://example.ngrok.app/store/products")])
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [
        ("redirect", "302 -> https://example.ngrok.app/store/products", True)
    ]


def test_the_docs_regex_example_gives_its_301_and_header_once_its_question_mark_is_escaped() -> None:
    # The docs write `from: /api/v1/users?id=([0-9]+)`, where `?` makes the `s` optional, so in
    # RE2 (as in Go) it cannot match `/api/v1/users?id=123`; escaped it gives the documented answer.
    config = {"to": "/api/v2/users/$1/", "status_code": 301, "headers": {"x-redirected": "true"}}
    answer, run = redirect({**config, "from": r"/api/v1/users\?id=([0-9]+)"}, "/api/v1/users?id=123")
    assert answer == Respond(
        301, [("Location", "https://example.ngrok.app/api/v2/users/123/"), ("x-redirected", "true")]
    )
    assert run.scope.actions["redirect"] == {
        "matches": ["/api/v1/users?id=123", "123"],
        "url": "https://example.ngrok.app/api/v2/users/123/",
        "error": {"code": "", "message": ""},
    }
    as_written, run = redirect({**config, "from": "/api/v1/users?id=([0-9]+)"}, "/api/v1/users?id=123")
    assert as_written is None
    assert run.trace[0].outcome == "no match"


@pytest.mark.parametrize(
    ("config", "url", "location"),
    [
        # "Matching": an unanchored match anywhere in the URL.
        ({"from": "/api/v1/", "to": "/api/v2/"}, "https://example.com/foobar/api/v1/users", "https://example.com/foobar/api/v2/users"),
        # "Relative example": only the matched part is replaced. The docs print
        # https://example.com/https://new.example.com/blog/foo, with a `/` that replacing `/old`
        # in the URL cannot give; we follow the rule the docs state, not that one output.
        ({"from": "/old", "to": "https://new.example.com/blog"}, "https://example.com/old/foo", "https://example.comhttps://new.example.com/blog/foo"),
        # "Absolute example": without from the whole URL is replaced.
        ({"to": "https://new.example.com/blog"}, "https://example.com/", "https://new.example.com/blog"),
        # "Redirecting to another host".
        ({"from": "^https?://[^/]+/old/(.*)$", "to": "https://new.example.com/new/$1"}, "https://example.com/old/foo", "https://new.example.com/new/foo"),
        # The docs' 301 example with headers.
        ({"from": "^(https?://[^/]+)/products(.*)$", "to": "$1/store/products$2"}, "https://example.ngrok.app/products", "https://example.ngrok.app/store/products"),
    ],
)  # fmt: skip
def test_the_docs_redirects_give_the_documented_location(config: dict[str, Any], url: str, location: str) -> None:
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    run = phase_run(target=slash + path, host=host, scheme=scheme)
    answer = Redirect(Config(config, where=WHERE), phase=REQUEST).run(run)
    assert answer == Respond(302, [("Location", location)])


def test_a_relative_target_is_resolved_against_the_request_url() -> None:
    answer, _ = redirect({"to": "/api/v2/geo?city=San Francisco"}, "/api/v2/geo")
    assert answer == Respond(302, [("Location", "https://example.ngrok.app/api/v2/geo?city=San%20Francisco")])


def test_an_unchanged_url_is_not_redirected_and_the_rule_goes_on() -> None:
    answer, run = redirect({"from": "/same", "to": "/same"}, "/same")
    assert answer is None
    assert [(e.outcome, e.terminal) for e in run.trace] == [("unchanged", False)]
    assert run.scope.actions["redirect"]["url"] == ""


def test_no_match_goes_on_to_the_next_action() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {
                    "actions": [
                        {"type": "redirect", "config": {"from": "/old", "to": "/new"}},
                        {"type": "custom-response", "config": {"body": "served"}},
                    ]
                }
            ]
        },
        proto="https",
    )
    assert run_phase(policy, phase_run(target="/current")) == Respond(200, [], b"served")


def test_go_group_names_are_as_long_as_possible_and_double_dollar_is_a_dollar() -> None:
    # Go's Regexp.Expand: `$1x` names the group "1x" (none, so nothing); `$$` is one `$`.
    answer, _ = redirect({"from": "/p/(a)", "to": "/q/$1x/$$/$1-"}, "/p/a")
    assert answer == Respond(302, [("Location", "https://example.ngrok.app/q//$/a-")])


def test_named_groups_expand() -> None:
    answer, _ = redirect({"from": "/u/(?P<id>[0-9]+)", "to": "/users/$id"}, "/u/7")
    assert answer == Respond(302, [("Location", "https://example.ngrok.app/users/7")])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.to: is required"),
        ({"to": "/x", "status_code": 200}, "config.status_code: must be at least 300 and at most 399"),
        ({"to": "/x", "status_code": 400}, "config.status_code: must be at least 300 and at most 399"),
        ({"from": "/(?=x)", "to": "/x"}, "config.from: not an RE2 regular expression"),
        ({"from": "(a)\\1", "to": "/x"}, "config.from: not an RE2 regular expression"),
        ({"from": "(", "to": "/x"}, "config.from: not an RE2 regular expression"),
        ({"to": "/x", "headers": {"location": "/y"}}, "config.headers.location: the redirect sets location itself"),
        ({"to": "/x", "headers": {f"x-{i}": "v" for i in range(11)}}, "config.headers: must have 1 to 10 entries"),
        ({"to": "/x", "replace": True}, "config.replace: unknown field"),
    ],
)
def test_redirect_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    assert message in refused(Redirect, config)


def test_redirect_runs_only_on_http_request() -> None:
    with pytest.raises(PolicyError, match=r"redirect cannot run in on_http_response"):
        only_policy(RESPONSE, "redirect", {"to": "/x"})


# With CEL interpolation, through load_policy

STARTED = 1_719_243_000.0  # 2024-06-24T15:30:00Z, the docs' connection start


def test_the_docs_json_example_interpolates_the_connection_start() -> None:
    policy = load_policy(
        "on_http_request:\n"
        "  - expressions:\n"
        "      - req.url.path == '/api/example'\n"
        "    actions:\n"
        "      - type: custom-response\n"
        "        config:\n"
        """          body: '{"connection-start":"${conn.ts.start}"}'\n"""
        "          headers:\n"
        "            content-type: application/json\n",
        proto="https",
    )
    run = phase_run(target="/api/example")
    run.conn.start = STARTED
    assert run_phase(policy, run) == Respond(
        200, [("content-type", "application/json")], b'{"connection-start":"2024-06-24T15:30:00Z"}'
    )
    assert run_phase(policy, phase_run(target="/elsewhere")) is None


def test_the_docs_plain_text_example_interpolates_twice() -> None:
    policy = only_policy(
        REQUEST,
        "custom-response",
        {
            "status_code": 418,
            "body": "connection began at ${conn.ts.start}, now ${timestamp(time.now)}",
            "headers": {"content-type": "text/plain"},
        },
    )
    run = phase_run(target="/api/example")
    run.conn.start = STARTED
    run.scope.clock = lambda: STARTED + 3600
    assert run_phase(policy, run) == Respond(
        418,
        [("content-type", "text/plain")],
        b"connection began at 2024-06-24T15:30:00Z, now 2024-06-24T16:30:00Z",
    )


def test_custom_response_header_values_are_interpolated() -> None:
    policy = only_policy(REQUEST, "custom-response", {"headers": {"x-client": "${conn.client_ip}"}})
    assert run_phase(policy, phase_run()) == Respond(200, [("x-client", "203.0.113.7")], b"")


def test_the_docs_anchored_interpolation_example_redirects_v1_to_v2() -> None:
    policy = only_policy(
        REQUEST,
        "redirect",
        {
            "from": "^${req.url.scheme}://${req.url.authority}/api/v1/",
            "to": "${req.url.scheme}://${req.url.authority}/api/v2/",
        },
    )
    run = phase_run(target="/api/v1/users?page=2")
    assert run_phase(policy, run) == Respond(302, [("Location", "https://example.ngrok.app/api/v2/users?page=2")])
    # Anchored to the path: a `/api/v1/` deeper in the URL does not match.
    assert run_phase(policy, phase_run(target="/docs/api/v1/")) is None


def test_the_docs_geo_example_is_refused_because_geo_needs_ngroks_cloud() -> None:
    with pytest.raises(PolicyError, match=r"\(redirect\)\.config\.to: conn\.geo is refused: it needs ngrok's cloud"):
        only_policy(REQUEST, "redirect", {"to": "/api/v2/geo?city=${conn.geo.city}"})


def test_an_interpolated_from_that_is_not_re2_fails_the_rule() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "set-vars", "config": {"vars": [{"pattern": "(?=lookahead)"}]}}]},
                {"name": "moved", "actions": [{"type": "redirect", "config": {"from": "${vars.pattern}", "to": "/x"}}]},
            ]
        },
        proto="https",
    )
    with pytest.raises(PolicyRuntimeError, match=r"rule 'moved', action redirect: from '\(\?=lookahead\)': not an RE2"):
        run_phase(policy, phase_run())
