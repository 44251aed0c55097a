"""API bodies turned into tunnel definitions: the tunnels and endpoints dialects."""

from __future__ import annotations

import pytest

from agentapi.definitions import decoded_like_go, endpoint_definition, tunnel_definition
from agentapi.engine.tunnel_spec import TunnelConfigError


def test_a_tunnel_body_is_its_definition() -> None:
    body = {"name": "web", "proto": "http", "addr": "8080", "inspect": False}
    assert tunnel_definition(body) == body


def test_npm_client_options_are_dropped() -> None:
    body = {"name": "web", "addr": 8080, "authtoken": "t", "region": "eu", "configPath": "/c", "binPath": "/b"}
    assert tunnel_definition(body) == {"name": "web", "addr": 8080}


@pytest.mark.parametrize("body", [[], "x", None, 5])
def test_a_tunnel_body_must_be_an_object(body: object) -> None:
    with pytest.raises(TunnelConfigError):
        tunnel_definition(body)


def test_pyngroks_http_endpoint_is_an_inspected_http_tunnel() -> None:
    body = {"name": "web", "upstream": {"url": "http://localhost:8080"}}
    assert endpoint_definition(body) == {
        "proto": "http",
        "addr": "http://localhost:8080",
        "inspect": True,
        "name": "web",
    }


def test_pyngroks_tcp_endpoint_is_a_tcp_tunnel_on_any_address() -> None:
    body = {"name": "db", "upstream": {"url": "localhost:5432"}, "url": "tcp://", "inspect": False}
    assert endpoint_definition(body) == {"proto": "tcp", "addr": "localhost:5432", "inspect": False, "name": "db"}


def test_a_tls_endpoint_is_a_tls_tunnel() -> None:
    body = {"name": "sec", "upstream": {"url": "localhost:8443"}, "url": "tls://"}
    assert endpoint_definition(body)["proto"] == "tls"
    assert endpoint_definition(body)["inspect"] is False


def test_an_endpoint_url_with_a_host_asks_for_that_listen_address() -> None:
    body = {"name": "db", "upstream": {"url": "5432"}, "url": "tcp://127.0.0.1:2222"}
    assert endpoint_definition(body)["url"] == "tcp://127.0.0.1:2222"


def test_an_https_endpoint_asks_for_the_https_scheme() -> None:
    definition = endpoint_definition({"name": "web", "upstream": {"url": "80"}, "url": "https://"})
    assert (definition["proto"], definition["schemes"]) == ("http", ["https"])


def test_the_name_in_the_path_wins_over_the_body() -> None:
    assert endpoint_definition({"name": "a", "upstream": {"url": "80"}}, name="b")["name"] == "b"


def test_traffic_policy_pooling_and_bindings_ride_along_as_given_for_the_tunnel_checks() -> None:
    policy = "on_http_request:\n  - actions:\n      - type: deny\n"
    body = {"upstream": {"url": "80"}, "traffic_policy": policy, "pooling_enabled": True, "bindings": ["public"]}
    definition = endpoint_definition(body)
    assert (definition["traffic_policy"], definition["pooling_enabled"], definition["bindings"]) == (
        policy,
        True,
        ["public"],
    )


def test_a_config_file_endpoint_may_give_its_policy_as_an_object_and_its_upstream_as_a_port_number() -> None:
    # agent/config/v3.mdx's own example: `traffic_policy:` a YAML mapping, `upstream: {url: 8080}`.
    policy = {"on_http_request": [{"actions": [{"type": "deny"}]}]}
    body = {"upstream": {"url": 8080}, "traffic_policy": policy}
    definition = endpoint_definition(body, config_file=True)
    assert (definition["traffic_policy"], definition["addr"]) == (policy, "8080")
    with pytest.raises(TunnelConfigError):
        endpoint_definition(body)  # the API takes strings


@pytest.mark.parametrize(
    ("url", "shown", "proto"),
    [
        ("api.internal", "https://api.internal", "http"),
        ("api.internal:8443", "https://api.internal:8443", "http"),
        ("http://api.internal", "http://api.internal", "http"),
        ("tcp://db.internal:5432", "tcp://db.internal:5432", "tcp"),
    ],
)
def test_an_internal_url_without_a_scheme_is_https_as_in_ngrok(url: str, shown: str, proto: str) -> None:
    definition = endpoint_definition({"upstream": {"url": "80"}, "url": url})
    assert (definition["url"], definition["proto"]) == (shown, proto)


def test_unknown_endpoint_keys_are_left_for_the_tunnel_checks() -> None:
    assert endpoint_definition({"upstream": {"url": "80"}, "foo": 1})["foo"] == 1


@pytest.mark.parametrize(
    ("body", "err"),
    [
        ({"name": "x"}, "upstream.url is required"),
        ({"upstream": {}}, "upstream.url is required"),
        ({"upstream": "http://localhost"}, "upstream.url is required"),
        ({"upstream": {"url": "80", "foo": 1}}, "field foo not found in type config.EndpointUpstream"),
        ({"upstream": {"url": "80", "protocol": "http2"}}, "upstream.protocol: only http1 is supported by this agent"),
        ({"upstream": {"url": "80"}, "url": "udp://"}, "Invalid protocol name 'udp'"),
        ({"upstream": {"url": "80"}, "url": 5}, "url must be a string"),
        ({"upstream": {"url": "80"}, "traffic_policy": {"on_http_request": []}}, "traffic_policy must be a string"),
        ({"upstream": {"url": "80"}, "bindings": "internal"}, "bindings must be a list"),
        ({"upstream": {"url": "80"}, "pooling_enabled": 1}, "pooling_enabled must be true or false"),
    ],
)
def test_endpoint_refusals(body: dict, err: str) -> None:
    with pytest.raises(TunnelConfigError) as caught:
        endpoint_definition(body)
    assert str(caught.value) == err


def test_lone_surrogates_become_the_replacement_character_everywhere() -> None:
    body = {"name": "a\ud800", "list": ["\udfff", 1], "k\udc00": {"x": None}}
    assert decoded_like_go(body) == {"name": "a\ufffd", "list": ["\ufffd", 1], "k\ufffd": {"x": None}}


def test_valid_text_is_left_alone() -> None:
    body = {"name": "café 🚇", "n": 1.5, "b": True}
    assert decoded_like_go(body) == body


def test_a_tunnel_body_is_decoded_like_go() -> None:
    assert tunnel_definition({"name": "x\ud800", "addr": "80"})["name"] == "x\ufffd"
