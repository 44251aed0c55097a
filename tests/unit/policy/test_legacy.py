"""The deprecated tunnel keys become the equivalent Traffic Policy document (agentapi/engine/policy/legacy.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentapi.engine.policy.cel import compile_expression
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts
from agentapi.engine.policy.legacy import LegacyKeyError, cel_string, legacy_policy
from agentapi.engine.policy.variables import Scope


def document(proto: str = "http", **definition: Any) -> dict[str, list[dict[str, Any]]]:
    return legacy_policy(definition, proto=proto).document


def only_rule(proto: str = "http", **definition: Any) -> tuple[str, dict[str, Any]]:
    [(phase, [rule])] = document(proto, **definition).items()
    return phase, rule


def refusal(proto: str = "http", **definition: Any) -> str:
    with pytest.raises(LegacyKeyError) as caught:
        legacy_policy(definition, proto=proto)
    return str(caught.value)


def test_a_definition_without_deprecated_keys_has_no_rules_and_no_notices() -> None:
    legacy = legacy_policy({"proto": "http", "addr": "80", "basic_auth": [], "compression": False}, proto="http")
    assert (legacy.document, legacy.notices) == ({}, ())


def test_basic_auth_becomes_a_basic_auth_rule_named_after_the_key() -> None:
    assert only_rule(basic_auth=["ann:password1", "bob:pass:word"]) == (
        "on_http_request",
        {
            "name": "basic_auth (deprecated key)",
            "actions": [{"type": "basic-auth", "config": {"credentials": ["ann:password1", "bob:pass:word"]}}],
        },
    )


def test_auth_is_the_2x_spelling_and_may_be_one_string() -> None:
    _, rule = only_rule(auth="user:password")
    assert rule["name"] == "auth (deprecated key)"
    assert rule["actions"][0]["config"] == {"credentials": ["user:password"]}


@pytest.mark.parametrize("entries", [["nocolon"], [":password"], "nocolon", [5]])
def test_broken_basic_auth_entries_are_refused(entries: object) -> None:
    assert "basic_auth" in refusal(basic_auth=entries)


def test_basic_auth_and_auth_together_are_refused() -> None:
    assert refusal(basic_auth=["a:password"], auth="b:password") == (
        "basic_auth and auth are two spellings of one key: give one"
    )


def test_ip_restriction_is_restrict_ips_on_requests_for_http_with_canonical_cidrs() -> None:
    phase, rule = only_rule(ip_restriction={"allow_cidrs": ["10.1.2.3/8", "192.0.2.7"], "deny_cidrs": ["::1"]})
    assert phase == "on_http_request"
    assert rule["actions"] == [
        {
            "type": "restrict-ips",
            "config": {"enforce": True, "allow": ["10.0.0.0/8", "192.0.2.7/32"], "deny": ["::1/128"]},
        }
    ]


@pytest.mark.parametrize("proto", ["tcp", "tls"])
def test_ip_restriction_is_restrict_ips_on_connect_for_tcp_and_tls_without_a_notice(proto: str) -> None:
    legacy = legacy_policy({"ip_restriction": {"allow_cidrs": ["127.0.0.1/32"]}}, proto=proto)
    assert list(legacy.document) == ["on_tcp_connect"]
    assert legacy.document["on_tcp_connect"][0]["actions"][0]["config"]["allow"] == ["127.0.0.1/32"]
    assert legacy.notices == ()  # --cidr-allow is a current flag on tcp and tls


def test_a_deny_list_alone_allows_every_other_address() -> None:
    _, rule = only_rule(ip_restriction={"deny_cidrs": ["203.0.113.0/24"]})
    assert rule["actions"][0]["config"] == {
        "enforce": True,
        "allow": ["0.0.0.0/0", "::/0"],
        "deny": ["203.0.113.0/24"],
    }


def test_empty_ip_lists_make_no_rule() -> None:
    assert document(ip_restriction={"allow_cidrs": [], "deny_cidrs": None}) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"allow_cidrs": ["nope"]}, "invalid CIDR in ip_restriction.allow_cidrs"),
        ({"allow": []}, "ip_restriction takes allow_cidrs and deny_cidrs lists"),
        (["10.0.0.0/8"], "ip_restriction takes allow_cidrs and deny_cidrs lists"),
        ({"deny_cidrs": "10.0.0.0/8"}, "ip_restriction.deny_cidrs must be a list of CIDR strings"),
    ],
)
def test_broken_ip_restrictions_are_refused(raw: object, message: str) -> None:
    assert refusal(ip_restriction=raw).startswith(message)


def test_request_header_removes_then_adds_on_requests() -> None:
    phase, rule = only_rule(request_header={"add": ["X-Env: prod", "X-Who:  ${conn.client_ip} "], "remove": ["Cookie"]})
    assert phase == "on_http_request"
    assert rule["name"] == "request_header (deprecated key)"
    assert rule["actions"] == [
        {"type": "remove-headers", "config": {"headers": ["Cookie"]}},
        {"type": "add-headers", "config": {"headers": {"X-Env": "prod", "X-Who": "${conn.client_ip}"}}},
    ]


def test_response_header_goes_to_the_response_phase() -> None:
    phase, rule = only_rule(response_header={"add": ["X-Frame-Options: DENY"]})
    assert phase == "on_http_response"
    assert rule["actions"] == [{"type": "add-headers", "config": {"headers": {"X-Frame-Options": "DENY"}}}]


def test_a_repeated_header_name_starts_a_new_add_headers_action_so_both_values_are_sent() -> None:
    _, rule = only_rule(request_header={"add": ["foo: bar", "Foo: baz", "x: 1"]})
    assert [action["config"]["headers"] for action in rule["actions"]] == [{"foo": "bar"}, {"Foo": "baz", "x": "1"}]


def test_more_than_ten_headers_are_split_into_actions_of_ten() -> None:
    _, rule = only_rule(
        request_header={"add": [f"x-{i}: {i}" for i in range(23)], "remove": [f"r-{i}" for i in range(11)]}
    )
    sizes = [(action["type"], len(action["config"]["headers"])) for action in rule["actions"]]
    assert sizes == [
        ("remove-headers", 10),
        ("remove-headers", 1),
        ("add-headers", 10),
        ("add-headers", 10),
        ("add-headers", 3),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"add": ["no colon"]}, "invalid request_header.add entry 'no colon'"),
        ({"add": ["bad name: x"]}, "invalid request_header.add entry"),
        ({"add": ["X-A: b\r\nX-Injected: 1"]}, "control characters in the value"),
        ({"add": [5]}, "invalid request_header.add entry"),
        ({"remove": ["a b"]}, "invalid request_header.remove entry 'a b'"),
        ({"add": "X-A: b"}, "request_header.add and request_header.remove must be lists of strings"),
        ({"set": []}, "request_header takes add and remove lists"),
    ],
)
def test_broken_header_lists_are_refused(raw: object, message: str) -> None:
    assert message in refusal(request_header=raw)


def test_compression_true_is_compress_response_with_its_defaults() -> None:
    assert only_rule(compression=True) == (
        "on_http_response",
        {"name": "compression (deprecated key)", "actions": [{"type": "compress-response"}]},
    )


@pytest.mark.parametrize(("raw", "threshold"), [(0.5, 0.5), (1, 1.0), (50, 0.5), (75.5, 0.755)])
def test_circuit_breaker_is_the_error_ratio_or_pyngroks_percentage(raw: float, threshold: float) -> None:
    phase, rule = only_rule(circuit_breaker=raw)
    assert phase == "on_http_request"
    assert rule["actions"] == [{"type": "circuit-breaker", "config": {"error_threshold": pytest.approx(threshold)}}]


def test_a_percentage_is_said_in_the_notice() -> None:
    [notice] = legacy_policy({"circuit_breaker": 50}, proto="http").notices
    assert notice.endswith("(circuit_breaker 50 read as 50%: error_threshold 0.5)")


def test_circuit_breaker_zero_is_off() -> None:
    assert document(circuit_breaker=0) == {}


@pytest.mark.parametrize("raw", [-0.1, 101, True, "50"])
def test_a_circuit_breaker_out_of_range_is_refused(raw: object) -> None:
    assert refusal(circuit_breaker=raw).startswith("invalid circuit_breaker")


@pytest.mark.parametrize("key", ["verify_webhook", "webhook_verification"])
def test_verify_webhook_becomes_verify_webhook_with_its_provider_and_secret(key: str) -> None:
    [(phase, [rule])] = legacy_policy(
        {key: {"provider": " GitHub ", "secret": "s3cret"}}, proto="http"
    ).document.items()
    assert (phase, rule["name"]) == ("on_http_request", f"{key} (deprecated key)")
    assert rule["actions"] == [{"type": "verify-webhook", "config": {"provider": "github", "secret": "s3cret"}}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"secret": "x"}, "verify_webhook.provider is required"),
        ({"provider": "github", "secret": 5}, "verify_webhook.secret must be a string"),
        ({"provider": "github", "key": "x"}, "verify_webhook takes provider and secret"),
    ],
)
def test_broken_webhook_verification_is_refused(raw: object, message: str) -> None:
    assert refusal(verify_webhook=raw).startswith(message)


def test_user_agent_filter_is_a_deny_rule_with_one_expression() -> None:
    phase, rule = only_rule(user_agent_filter={"allow": ["(?i)google-images"], "deny": ["(?i)google", "[Bb]ing"]})
    assert phase == "on_http_request"
    assert rule["actions"] == [{"type": "deny"}]
    agent = '("user-agent" in req.headers ? req.headers["user-agent"][0] : "")'
    assert rule["expressions"] == [
        f'!({agent}.matches("(?i)google-images")) && (!("user-agent" in req.headers)'
        f' || {agent}.matches("(?i)google") || {agent}.matches("[Bb]ing"))'
    ]


def test_an_allow_list_alone_refuses_everything_else() -> None:
    _, rule = only_rule(user_agent_filter={"allow": ["^curl/"]})
    assert rule["expressions"] == [
        '!(("user-agent" in req.headers ? req.headers["user-agent"][0] : "").matches("^curl/"))'
    ]


def test_regex_backslashes_and_quotes_are_escaped_into_the_cel_literal() -> None:
    _, rule = only_rule(user_agent_filter={"deny": [r'(foo/(\d)+.(\d)+)"x']})
    assert r'.matches("(foo/(\\d)+.(\\d)+)\"x")' in rule["expressions"][0]


@pytest.mark.parametrize("pattern", ["(", "a(?=b)", r"(a)\1", "(?<!x)y"])
def test_a_pattern_re2_would_refuse_is_refused(pattern: str) -> None:
    assert "is an invalid regular expression" in refusal(user_agent_filter={"deny": [pattern]})


@pytest.mark.parametrize(
    "text", ["plain", 'say "hi"', "back\\slash", "tab\tnew\nline\x7f", "ünï©ødé 🚇", "${not.interpolated}"]
)
def test_cel_string_escapes_what_a_cel_literal_must(text: str) -> None:
    literal = cel_string(text)
    assert literal.startswith('"') and literal.endswith('"')
    # No raw control character, no unescaped quote inside, and decoding the escapes gives the text back.
    body = literal[1:-1]
    assert not re.search(r"[\x00-\x1f\x7f]", body)
    assert not re.search(r'(?<!\\)(?:\\\\)*"', body)
    decoded = re.sub(r"\\u([0-9a-f]{4})|\\(.)", lambda m: chr(int(m[1], 16)) if m[1] else m[2], body)
    assert decoded == text


def test_each_key_gets_one_deprecation_notice_naming_its_flag_and_rule() -> None:
    legacy = legacy_policy(
        {"basic_auth": ["a:password"], "compression": True, "request_header": {"remove": ["x"]}}, proto="http"
    )
    assert legacy.notices == (
        'basic_auth (--basic-auth) has been deprecated, use traffic policy instead; it runs as the on_http_request rule "basic_auth (deprecated key)"',
        'request_header (--request-header-add/--request-header-remove) has been deprecated, use traffic policy instead; it runs as the on_http_request rule "request_header (deprecated key)"',
        'compression (--compression) has been deprecated, use traffic policy instead; it runs as the on_http_response rule "compression (deprecated key)"',
    )


def test_rules_come_in_order_who_may_connect_then_who_may_ask_then_what_changes() -> None:
    rules = document(
        request_header={"add": ["a: b"]},
        circuit_breaker=0.5,
        verify_webhook={"provider": "github", "secret": "s"},
        basic_auth=["a:password"],
        user_agent_filter={"deny": ["bot"]},
        ip_restriction={"deny_cidrs": ["10.0.0.0/8"]},
    )["on_http_request"]
    assert [rule["name"].split()[0] for rule in rules] == [
        "ip_restriction",
        "user_agent_filter",
        "basic_auth",
        "verify_webhook",
        "circuit_breaker",
        "request_header",
    ]


def test_http_keys_on_a_tcp_definition_make_no_rules() -> None:
    # tunnel_spec refuses them as unknown keys before this runs; here they are simply not read.
    assert document("tcp", basic_auth=["a:password"]) == {}


# --- the user agent filter's expression, run by CEL -------------------------------------------


def refuses(user_agent_filter: dict[str, list[str]], *user_agents: str) -> list[bool]:
    """For each User-Agent ("" for none), whether the filter's deny rule matches the request."""
    _, rule = only_rule(user_agent_filter=user_agent_filter)
    [expression] = [compile_expression(text, where="test") for text in rule["expressions"]]
    conn = ConnFacts(client_ip="127.0.0.1", client_port=50000, server_ip="127.0.0.1", server_port=8080, start=0.0)
    endpoint = EndpointFacts(
        id="ep",
        name="t",
        url="http://127.0.0.1:8080",
        host="127.0.0.1",
        port=8080,
        protocol="http",
        upstream_url="http://localhost:80",
    )
    results = []
    for agent in user_agents:
        scope = Scope(conn=conn, endpoint=endpoint)
        headers = [("Host", "x"), ("User-Agent", agent)] if agent else [("Host", "x")]
        scope.request = RequestFacts("GET", "/", "1.1", "http", "x", headers, 0.0)
        results.append(expression.evaluate(scope))
    return results


def test_ngroks_example_allows_google_images_and_denies_other_google_and_bing() -> None:
    # The User Agent Filter module's own example: a specific allow overrides a broader deny.
    filter_ = {"allow": ["(?i)google-images"], "deny": ["(?i)google", "[Bb]ing"]}
    assert refuses(filter_, "Google-Images/1.0", "Googlebot/2.1", "bingbot", "curl/8.0", "") == [
        False,
        True,
        True,
        False,
        True,  # no User-Agent: refused unless an allow pattern matches ""
    ]


def test_an_allow_list_alone_lets_only_matching_agents_through() -> None:
    assert refuses({"allow": ["^curl/"]}, "curl/8.0", "Mozilla/5.0", "") == [False, True, True]


def test_an_allow_pattern_for_the_empty_string_lets_requests_without_the_header_through() -> None:
    assert refuses({"allow": ["^$"], "deny": ["bot"]}, "", "somebot") == [False, True]


def test_regexes_with_backslashes_and_quotes_match_what_they_say() -> None:
    # ngrok's docs' pattern, and a quote that must survive the CEL string literal.
    assert refuses({"deny": [r"(foo/(\d)+.(\d)+)", r'say "hi"']}, "foo/12.3", "foo/x.y", 'they say "hi"') == [
        True,
        False,
        True,
    ]
