"""parse_definition and Traffic Policy: `traffic_policy` loaded into spec.policy, the deprecated keys
as rules before it, internal endpoints, pooling, and the refusals (agentapi/engine/tunnel_spec.py)."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agentapi.engine.policy import Policy
from agentapi.engine.policy.actions.base import Action
from agentapi.engine.tunnel_spec import TrafficPolicyError, TunnelConfigError, TunnelSpec, parse_definition

PUBLIC = "127.0.0.1"
ERR_NGROK_9026 = "(ERR_NGROK_9026)"


@pytest.fixture(autouse=True)
def closed_policies() -> Iterator[list[Policy]]:
    """Every policy a test loads is closed afterwards, as the engine does when a tunnel stops."""
    policies: list[Policy] = []
    yield policies
    for policy in policies:
        policy.close()


def specs(**definition: Any) -> list[TunnelSpec]:
    return parse_definition(definition, name="t", public_host=PUBLIC)


def parse(**definition: Any) -> TunnelSpec:
    [spec] = specs(**definition)
    return spec


def rules(spec: TunnelSpec, phase: str) -> list[tuple[str, list[str]]]:
    """(rule name, [action types]) of one phase."""
    assert spec.policy is not None
    return [(rule.name, [action.type for action in rule.actions]) for rule in spec.policy.rules[phase]]


def action(spec: TunnelSpec, phase: str, rule: int = 0, index: int = 0) -> Action:
    assert spec.policy is not None
    return spec.policy.rules[phase][rule].actions[index]


def refusal(**definition: Any) -> TunnelConfigError:
    with pytest.raises(TunnelConfigError) as caught:
        specs(**definition)
    return caught.value


DENY_ALL = "on_http_request:\n  - actions:\n      - type: deny\n        config:\n          status_code: 404\n"


def test_a_tunnel_without_a_policy_or_deprecated_keys_has_no_policy() -> None:
    spec = parse(addr="80")
    assert (spec.policy, spec.internal, spec.internal_url, spec.pooling_enabled) == (None, False, "", False)


@pytest.mark.parametrize("empty", ["", None, "# nothing\n", "{}", {}, {"on_http_request": []}])
def test_an_empty_policy_is_no_policy(empty: object) -> None:
    assert parse(addr="80", traffic_policy=empty).policy is None


def test_a_yaml_policy_is_loaded_with_its_rules_and_kept_as_given_in_the_definition() -> None:
    spec = parse(addr="80", traffic_policy=DENY_ALL)
    assert rules(spec, "on_http_request") == [("rules[0]", ["deny"])]
    assert spec.policy is not None and spec.policy.source == DENY_ALL
    assert spec.definition["traffic_policy"] == DENY_ALL


def test_a_json_policy_and_an_object_load_the_same_rules() -> None:
    document = {"on_http_request": [{"name": "nope", "actions": [{"type": "deny"}]}]}
    for raw in (json.dumps(document), document):
        spec = parse(addr="80", traffic_policy=raw)
        assert rules(spec, "on_http_request") == [("nope", ["deny"])]
        assert spec.definition["traffic_policy"] == raw


def test_policy_is_the_name_before_agent_3_14_and_its_inbound_phase_is_on_http_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        spec = parse(addr="80", policy={"inbound": [{"actions": [{"type": "deny"}]}]})
    assert rules(spec, "on_http_request") == [("rules[0]", ["deny"])]
    assert "policy has been renamed to traffic_policy in agent version 3.14.0" in caplog.text


def test_traffic_policy_and_policy_together_are_refused() -> None:
    error = refusal(addr="80", traffic_policy=DENY_ALL, policy=DENY_ALL)
    assert str(error) == "traffic_policy and policy are two names of one key: give one"


@pytest.mark.parametrize("proto", ["tcp", "tls"])
def test_tcp_and_tls_tunnels_take_an_on_tcp_connect_policy(proto: str) -> None:
    spec = parse(proto=proto, addr="5432", traffic_policy={"on_tcp_connect": [{"actions": [{"type": "deny"}]}]})
    assert rules(spec, "on_tcp_connect") == [("rules[0]", ["deny"])]


def test_an_http_phase_on_a_tcp_tunnel_is_refused_as_an_invalid_policy() -> None:
    error = refusal(proto="tcp", addr="22", traffic_policy=DENY_ALL)
    assert isinstance(error, TrafficPolicyError)
    assert str(error) == (
        "The TrafficPolicy you provided is invalid: on_http_request: tcp endpoints have only the on_tcp_connect"
        f" phase {ERR_NGROK_9026}"
    )


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("on_http_request:\n  actions: []\n", "on_http_request: must be a list of rules"),
        ("on_http_request: [", "the policy is not valid YAML"),
        ('{"on_http_request": ', "the policy is not valid JSON"),
        ({"on_http_request": [{"actions": [{"type": "oauth"}]}]}, "needs ngrok's cloud"),
        (
            {"on_http_request": [{"name": "r", "actions": [{"type": "deny", "config": {"status": 1}}]}]},
            'on_http_request.rules[0] ("r").actions[0] (deny).config.status: unknown field',
        ),
        ({"on_http_request": [{"actions": [{"type": "nope"}]}]}, "unknown action type 'nope'"),
        ({"on_http_request": [{"actions": [{"type": "deny"}]}], "on_request": []}, "unknown phase 'on_request'"),
    ],
)
def test_a_bad_policy_is_refused_with_ngroks_code_and_the_place_it_is_wrong(raw: object, names: str) -> None:
    error = refusal(addr="80", traffic_policy=raw)
    assert isinstance(error, TrafficPolicyError)
    assert str(error).startswith("The TrafficPolicy you provided is invalid: ")
    assert names in str(error)
    assert str(error).endswith(ERR_NGROK_9026)


def test_a_bad_cel_expression_is_refused_naming_the_expression_and_its_column() -> None:
    policy = {"on_http_request": [{"name": "r", "expressions": ["req.method == "], "actions": [{"type": "deny"}]}]}
    error = str(refusal(addr="80", traffic_policy=policy))
    assert 'on_http_request.rules[0] ("r").expressions[0]' in error
    assert "column" in error
    assert error.endswith(ERR_NGROK_9026)


def test_a_cloud_only_variable_is_refused_saying_so() -> None:
    policy = {"on_http_request": [{"expressions": ["conn.geo.country_code == 'US'"], "actions": [{"type": "deny"}]}]}
    assert "ngrok's cloud" in str(refusal(addr="80", traffic_policy=policy))


def test_a_policy_object_that_is_not_json_data_is_refused() -> None:
    error = refusal(addr="80", traffic_policy={"on_http_request": [{"name": datetime.date(2026, 1, 1)}]})
    assert str(error) == f"The TrafficPolicy you provided is invalid: traffic_policy must be JSON data {ERR_NGROK_9026}"


def test_a_policy_longer_than_any_other_string_is_accepted() -> None:
    # Definition strings are capped at 4096 characters; a policy has the document's own bound.
    rule = "  - name: {i}\n    actions:\n      - type: deny\n"
    text = "on_http_request:\n" + "".join(rule.format(i=f"rule-{i:03d}-" + "x" * 40) for i in range(60))
    assert len(text) > 4096
    assert len(rules(parse(addr="80", traffic_policy=text), "on_http_request")) == 60


def test_deprecated_keys_become_rules_before_the_given_policy_in_each_phase() -> None:
    spec = parse(
        addr="80",
        basic_auth=["ann:password1"],
        response_header={"remove": ["server"]},
        traffic_policy={
            "on_http_request": [{"name": "mine", "actions": [{"type": "deny"}]}],
            "on_http_response": [
                {"name": "later", "actions": [{"type": "add-headers", "config": {"headers": {"a": "b"}}}]}
            ],
        },
    )
    assert rules(spec, "on_http_request") == [("basic_auth (deprecated key)", ["basic-auth"]), ("mine", ["deny"])]
    assert rules(spec, "on_http_response") == [
        ("response_header (deprecated key)", ["remove-headers"]),
        ("later", ["add-headers"]),
    ]


def test_an_error_in_the_given_policy_names_its_own_rule_index_even_beside_deprecated_keys() -> None:
    error = refusal(
        addr="80",
        basic_auth=["ann:password1"],
        traffic_policy={"on_http_request": [{"actions": [{"type": "deny"}]}, {"actions": [{"type": "nope"}]}]},
    )
    assert "on_http_request.rules[1]" in str(error)


def test_a_deprecated_key_the_action_refuses_is_named_by_its_rule() -> None:
    error = refusal(addr="80", basic_auth=["ann:short"])
    assert not isinstance(error, TrafficPolicyError)
    assert str(error).startswith('on_http_request.rules[0] ("basic_auth (deprecated key)").actions[0] (basic-auth)')


def test_the_deprecation_notice_is_logged_with_the_tunnel_name(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentapi.engine.tunnel_spec"):
        parse(addr="80", compression=True)
    assert [record.getMessage() for record in caplog.records] == [
        'tunnel "t": compression (--compression) has been deprecated, use traffic policy instead; it runs as'
        ' the on_http_response rule "compression (deprecated key)"'
    ]


def test_basic_auth_is_a_basic_auth_action_with_the_credentials() -> None:
    spec = parse(addr="80", basic_auth=["ann:password1"])
    assert rules(spec, "on_http_request") == [("basic_auth (deprecated key)", ["basic-auth"])]


def test_ip_restriction_on_http_runs_on_requests_and_on_tcp_on_connect() -> None:
    http = parse(addr="80", ip_restriction={"allow_cidrs": ["10.0.0.0/8"]})
    tcp = parse(proto="tcp", addr="22", ip_restriction={"deny_cidrs": ["10.0.0.0/8"]})
    assert rules(http, "on_http_request") == [("ip_restriction (deprecated key)", ["restrict-ips"])]
    assert rules(tcp, "on_tcp_connect") == [("ip_restriction (deprecated key)", ["restrict-ips"])]


def test_request_header_removes_then_adds() -> None:
    spec = parse(addr="80", request_header={"add": ["X-Env: prod"], "remove": ["cookie"]})
    assert rules(spec, "on_http_request") == [("request_header (deprecated key)", ["remove-headers", "add-headers"])]


def test_compression_is_compress_response() -> None:
    assert rules(parse(addr="80", compression=True), "on_http_response") == [
        ("compression (deprecated key)", ["compress-response"])
    ]


def test_pyngroks_circuit_breaker_50_is_a_circuit_breaker_at_half_the_requests() -> None:
    spec = parse(addr="80", auth="username:password", circuit_breaker=50)
    assert rules(spec, "on_http_request") == [
        ("auth (deprecated key)", ["basic-auth"]),
        ("circuit_breaker (deprecated key)", ["circuit-breaker"]),
    ]


def test_verify_webhook_is_verify_webhook() -> None:
    spec = parse(addr="80", verify_webhook={"provider": "github", "secret": "s3cret"})
    assert rules(spec, "on_http_request") == [("verify_webhook (deprecated key)", ["verify-webhook"])]


@pytest.mark.parametrize(
    ("key", "needs"),
    [("oauth", "oauth needs ngrok's cloud"), ("oidc", "oidc needs ngrok's cloud"), ("mutual_tls_cas", "ngrok's edge")],
)
def test_cloud_only_keys_are_refused_with_the_reason(key: str, needs: str) -> None:
    assert needs in str(refusal(addr="80", **{key: {"provider": "google"}}))


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"basic_auth": ["nocolon"]}, "invalid basic_auth entry 'nocolon'"),
        ({"ip_restriction": {"allow_cidrs": ["nope"]}}, "invalid CIDR in ip_restriction.allow_cidrs"),
        ({"circuit_breaker": 500}, "invalid circuit_breaker 500"),
        ({"circuit_breaker": "50"}, "circuit_breaker must be a whole number or a number"),
        ({"response_header": {"add": ["X: a\nb"]}}, "control characters"),
        ({"user_agent_filter": {"deny": ["("]}}, "is an invalid regular expression"),
    ],
)
def test_bad_deprecated_keys_are_refused_naming_the_key(definition: dict[str, Any], message: str) -> None:
    assert message in str(refusal(addr="80", **definition))


def test_http_only_deprecated_keys_are_unknown_on_tcp() -> None:
    assert (
        str(refusal(proto="tcp", addr="22", compression=True))
        == "field compression not found in type config.TCPv2Tunnel"
    )


def test_both_schemes_get_a_policy_each() -> None:
    https, http = specs(addr="80", bind_tls="both", basic_auth=["ann:password1"])
    assert https.policy is not None and http.policy is not None
    assert https.policy is not http.policy
    assert rules(https, "on_http_request") == rules(http, "on_http_request")


# --- internal endpoints and pooling ----------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "proto", "url"),
    [
        ({"url": "https://api.internal"}, "https", "https://api.internal"),
        ({"url": "http://api.internal:8080/"}, "http", "http://api.internal:8080"),
        ({"url": "api.internal"}, "https", "https://api.internal"),
        ({"url": "api.internal", "schemes": ["http"]}, "http", "http://api.internal"),
        ({"url": "https://a.b.internal", "bindings": ["internal"]}, "https", "https://a.b.internal"),
        ({"proto": "tcp", "url": "tcp://db.internal:5432"}, "tcp", "tcp://db.internal:5432"),
        ({"proto": "tls", "url": "sec.internal"}, "tls", "tls://sec.internal"),
    ],
)
def test_a_dot_internal_url_makes_an_internal_endpoint(definition: dict[str, Any], proto: str, url: str) -> None:
    spec = parse(addr="8080", **definition)
    assert (spec.internal, spec.internal_url, spec.proto) == (True, url, proto)


def test_a_public_url_is_no_internal_endpoint() -> None:
    spec = parse(addr="8080", url="http://127.0.0.1:0", bindings=["public"])
    assert (spec.internal, spec.internal_url) == (False, "")


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"bindings": ["internal"]}, "an internal endpoint needs a url whose host ends in .internal"),
        ({"bindings": ["internal"], "url": "https://api.example.com"}, "host ends in .internal"),
        ({"bindings": ["public"], "url": "https://api.internal"}, "its binding must be internal"),
        ({"bindings": ["kubernetes"]}, "kubernetes endpoints need ngrok's cloud"),
        ({"bindings": ["public", "internal"]}, "only one binding may be given"),
        ({"bindings": ["elsewhere"]}, "unknown binding 'elsewhere'"),
        ({"bindings": [5]}, "bindings must be a list of strings"),
        ({"url": "tcp://api.internal"}, "a http endpoint's scheme is http or https"),
        ({"url": "https://api.internal/path"}, "an endpoint URL has no path"),
        ({"proto": "tcp", "url": "tcp://db.internal"}, "an internal tcp endpoint needs a port"),
        ({"url": "api.internal", "bind_tls": "both"}, "an internal endpoint has one URL"),
    ],
)
def test_bad_internal_endpoints_are_refused(definition: dict[str, Any], message: str) -> None:
    assert message in str(refusal(addr="8080", **definition))


def test_pooling_enabled_is_carried_into_the_spec() -> None:
    assert parse(addr="80", pooling_enabled=True).pooling_enabled is True
    assert parse(addr="80", pooling_enabled=False).pooling_enabled is False
    assert "pooling_enabled must be true or false" in str(refusal(addr="80", pooling_enabled="yes"))
