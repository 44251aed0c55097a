"""url-rewrite (ngrok's docs, traffic-policy/actions/url-rewrite.mdx), and the Go regexp rules
it and redirect share: the docs' rewrites reach the service's logs as documented; Go's own
ReplaceAllString examples give Go's results; bad configs are refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, RESPONSE, Config, PhaseRun
from agentapi.engine.policy.actions.url_rewrite import UrlRewrite, compile_regex, replace_all
from agentapi.engine.policy.facts import RequestFacts
from agentapi.engine.policy.runner import run_phase
from tests.support.policy_runs import RecordingScope, sample_conn, sample_endpoint

WHERE = "on_http_request.rules[0].actions[0] (url-rewrite).config"


def phase_run(target: str, *, host: str = "example.ngrok.app") -> PhaseRun:
    conn = sample_conn()
    endpoint = sample_endpoint()
    scope = RecordingScope(conn=conn, endpoint=endpoint)
    headers = [("Host", host), ("Accept", "*/*")] if host else [("Accept", "*/*")]
    request = RequestFacts(
        method="GET", target=target, version="1.1", scheme="https", host=host, headers=headers, start=0.0
    )
    scope.request = request
    return PhaseRun(phase=REQUEST, scope=scope, conn=conn, request=request)


def rewrite(config: dict[str, Any], target: str, **kwargs: Any) -> PhaseRun:
    run = phase_run(target, **kwargs)
    assert UrlRewrite(Config(config, where=WHERE), phase=REQUEST).run(run) is None
    return run


def target_of(run: PhaseRun) -> str:
    assert run.request is not None
    return run.request.target


def test_the_docs_path_example_sends_products_php_to_the_service() -> None:
    policy = load_policy({"on_http_request": [{"actions": [{"type": "url-rewrite", "config": {"from": "/products", "to": "/products.php"}}]}]}, proto="https")  # fmt: skip
    run = phase_run("/products")
    assert run_phase(policy, run) is None
    assert target_of(run) == "/products.php"
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [
        ("url-rewrite", "/products -> /products.php", False)
    ]


def test_the_docs_regex_example_gives_the_documented_query() -> None:
    # The docs' server log: GET /product.php?query=123 (their `product` is a typo for the `to`).
    run = rewrite({"from": "/products/?([.*]+)?", "to": "/products.php?query=$1"}, "/products/123")
    assert target_of(run) == "/products.php?query=123"


def test_it_reports_the_match_and_the_new_url_and_that_the_request_changed() -> None:
    run = rewrite({"from": "/u/([0-9]+)", "to": "/users/$1"}, "/u/42?full=1")
    assert target_of(run) == "/users/42?full=1"
    assert run.scope.actions["url_rewrite"] == {
        "matches": ["/u/42", "42"],
        "url": "https://example.ngrok.app/users/42?full=1",
        "error": {"code": "", "message": ""},
    }
    assert isinstance(run.scope, RecordingScope)
    assert run.scope.changes == ["req", "actions"]


def test_no_match_leaves_the_request_as_it_was() -> None:
    run = rewrite({"from": "/products", "to": "/products.php"}, "/orders/7")
    assert target_of(run) == "/orders/7"
    assert run.trace[0].outcome == "no match"
    assert run.scope.actions["url_rewrite"]["matches"] == []
    assert run.scope.actions["url_rewrite"]["url"] == "https://example.ngrok.app/orders/7"
    assert isinstance(run.scope, RecordingScope)
    assert run.scope.changes == ["actions"]


def test_every_match_is_replaced() -> None:
    assert target_of(rewrite({"from": "/v1/", "to": "/v2/"}, "/v1/a/v1/b")) == "/v2/a/v2/b"


def test_without_from_the_whole_url_is_replaced() -> None:
    run = rewrite({"to": "/maintenance.html"}, "/anything?x=1")
    assert target_of(run) == "/maintenance.html"


def test_a_new_host_in_the_result_becomes_the_host_field() -> None:
    run = rewrite({"from": r"^https://example\.ngrok\.app/", "to": "https://api.internal:8443/v2/"}, "/users")
    assert run.request is not None
    assert run.request.target == "/v2/users"
    assert run.request.host == "api.internal:8443"
    assert run.request.headers == [("Host", "api.internal:8443"), ("Accept", "*/*")]
    assert run.trace[0].outcome == "/users -> /v2/users (host api.internal:8443)"


def test_a_request_without_host_is_matched_with_the_endpoints_host() -> None:
    run = rewrite({"from": r"^https://example\.ngrok\.app/old", "to": "https://example.ngrok.app/new"}, "/old", host="")
    assert target_of(run) == "/new"


def test_characters_a_url_cannot_hold_are_percent_encoded() -> None:
    assert target_of(rewrite({"from": "/search", "to": "/find?q=a b|ü"}, "/search")) == "/find?q=a%20b%7C%C3%BC"


def test_the_regex_is_not_anchored_and_sees_the_whole_url() -> None:
    # The docs: "Matching is performed against the entire URL, including the scheme ... host".
    run = rewrite({"from": "^/products", "to": "/products.php"}, "/products")
    assert target_of(run) == "/products"
    run = rewrite({"from": "example.ngrok.app/products", "to": "example.ngrok.app/products.php"}, "/products")
    assert target_of(run) == "/products.php"


@pytest.mark.parametrize(
    ("to", "result"),
    [("T", "-T-T-"), ("$1", "--xx-"), ("$1W", "---"), ("${1}W", "-W-xxW-")],
)
def test_go_replace_all_string_examples_give_gos_results(to: str, result: str) -> None:
    # Go's regexp package, ExampleRegexp_ReplaceAllString.
    assert replace_all(compile_regex("a(x*)b"), "-ab-axxb-", to)[0] == result


@pytest.mark.parametrize(
    ("pattern", "text", "result"),
    [("a*", "baaac", "xbxcx"), ("", "abc", "xaxbxcx"), ("b", "abc", "axc")],
)
def test_an_empty_match_right_after_a_match_is_not_replaced(pattern: str, text: str, result: str) -> None:
    # Go's rule (regexp's replace tests); Python's re.sub("a*", "x", "baaac") gives "xbxxcx".
    assert replace_all(compile_regex(pattern), text, "x")[0] == result


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.to: is required"),
        ({"from": "/a"}, "config.to: is required"),
        ({"from": 7, "to": "/b"}, "config.from: must be a string"),
        ({"from": "(?<!x)/a", "to": "/b"}, "config.from: not an RE2 regular expression"),
        ({"from": "(/a)\\1", "to": "/b"}, "config.from: not an RE2 regular expression"),
        ({"from": "/a", "to": "/b", "status_code": 301}, "config.status_code: unknown field"),
    ],
)
def test_it_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        UrlRewrite(Config(config, where=WHERE), phase=REQUEST)
    assert message in str(refused.value)


def test_it_runs_only_on_http_request() -> None:
    with pytest.raises(PolicyError, match=r"url-rewrite cannot run in on_http_response"):
        load_policy({RESPONSE: [{"actions": [{"type": "url-rewrite", "config": {"to": "/x"}}]}]}, proto="http")


# With CEL interpolation, through load_policy


def test_the_docs_interpolation_example_sends_the_documented_query() -> None:
    policy = load_policy(
        "on_http_request:\n"
        "  - actions:\n"
        "      - type: url-rewrite\n"
        "        config:\n"
        "          from: ${req.url.authority}/products/?([.*]+)?\n"
        "          to: /products.php?query=$1\n",
        proto="https",
    )
    run = phase_run("/products/123")
    run_phase(policy, run)
    assert target_of(run) == "/products.php?query=123"


def test_the_docs_expression_example_rewrites_only_the_matching_path() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {
                    "expressions": ["req.url.path == '/products'"],
                    "actions": [{"type": "url-rewrite", "config": {"from": "/products", "to": "/products.php"}}],
                }
            ]
        },
        proto="https",
    )
    run = phase_run("/products")
    run_phase(policy, run)
    assert target_of(run) == "/products.php"
    other = phase_run("/products/7")
    run_phase(policy, other)
    assert target_of(other) == "/products/7"


def test_a_later_rule_sees_the_rewritten_url() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "url-rewrite", "config": {"from": "/old/", "to": "/new/"}}]},
                {
                    "expressions": ["req.url.path == '/new/x'"],
                    "actions": [{"type": "add-headers", "config": {"headers": {"x-seen": "${req.url.path}"}}}],
                },
            ]
        },
        proto="https",
    )
    run = phase_run("/old/x")
    run_phase(policy, run)
    assert run.request is not None
    assert run.request.header("x-seen") == "/new/x"


def test_captures_and_interpolation_mix_in_to() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "set-vars", "config": {"vars": [{"version": "v2"}]}}]},
                {
                    "actions": [
                        {"type": "url-rewrite", "config": {"from": "/api/([a-z]+)", "to": "/${vars.version}/$1"}}
                    ]
                },
            ]
        },
        proto="https",
    )
    run = phase_run("/api/users?limit=5")
    run_phase(policy, run)
    assert target_of(run) == "/v2/users?limit=5"
