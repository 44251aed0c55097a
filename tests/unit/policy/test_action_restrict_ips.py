"""restrict-ips (ngrok's docs, traffic-policy/actions/restrict-ips.mdx): the docs' allow/deny
examples on HTTP and TCP, the variables it sets, and the configs it refuses (ERR_NGROK_393)."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, PolicyRuntimeError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, RESPONSE, TCP, Config, PhaseRun
from agentapi.engine.policy.actions.restrict_ips import RestrictIps
from agentapi.engine.policy.facts import RequestFacts, ResponseFacts
from agentapi.engine.policy.outcomes import CloseConnection, Respond
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.variables import Scope
from tests.support.policy_runs import sample_conn, sample_endpoint

WHERE = "on_http_request.rules[0].actions[0] (restrict-ips).config"
DOCS_HTTP = """
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          enforce: true
          allow:
            - 1.1.1.1/32
          deny:
            - e680:5791:be4c:5739:d959:7b94:6d54:d4b4/128
"""
DOCS_TCP = """
on_tcp_connect:
  - actions:
      - type: restrict-ips
        config:
          enforce: true
          allow:
            - 1.1.1.1/32
          deny:
            - 110.0.0.0/8
"""


def phase_run(client_ip: str, phase: str = REQUEST) -> PhaseRun:
    conn = sample_conn(client_ip)
    endpoint = sample_endpoint()
    scope = Scope(conn=conn, endpoint=endpoint)
    if phase == TCP:
        return PhaseRun(phase=phase, scope=scope, conn=conn)
    request = RequestFacts(
        method="GET", target="/", version="1.1", scheme="https", host="example.ngrok.app", headers=[], start=0.0
    )
    response = ResponseFacts(status=200, reason="OK", version="1.1") if phase == RESPONSE else None
    scope.request, scope.response = request, response
    return PhaseRun(phase=phase, scope=scope, conn=conn, request=request, response=response)


def action(config: dict[str, Any], phase: str = REQUEST) -> RestrictIps:
    return RestrictIps(Config(config, where=WHERE), phase=phase)


def test_the_docs_http_example_lets_the_allowed_address_through() -> None:
    run = phase_run("1.1.1.1")
    assert run_phase(load_policy(DOCS_HTTP, proto="https"), run) is None
    assert run.scope.actions["restrict_ips"] == {
        "action": "allow",
        "matched_cidr": "1.1.1.1/32",
        "error": {"code": "", "message": ""},
    }
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [
        ("restrict-ips", "allowed 1.1.1.1 (1.1.1.1/32)", False)
    ]


def test_the_docs_http_example_answers_403_to_the_denied_address() -> None:
    run = phase_run("e680:5791:be4c:5739:d959:7b94:6d54:d4b4")
    assert run_phase(load_policy(DOCS_HTTP, proto="https"), run) == Respond(403)
    assert run.scope.actions["restrict_ips"]["matched_cidr"] == "e680:5791:be4c:5739:d959:7b94:6d54:d4b4/128"
    assert (
        run.trace[0].outcome
        == "403: e680:5791:be4c:5739:d959:7b94:6d54:d4b4 denied by e680:5791:be4c:5739:d959:7b94:6d54:d4b4/128"
    )
    assert run.trace[0].terminal


def test_an_address_on_neither_list_is_refused() -> None:
    run = phase_run("10.0.0.5")
    assert run_phase(load_policy(DOCS_HTTP, proto="https"), run) == Respond(403)
    assert run.scope.actions["restrict_ips"] == {
        "action": "deny",
        "matched_cidr": "",
        "error": {"code": "", "message": ""},
    }
    assert run.trace[0].outcome == "403: 10.0.0.5 not allowed"


def test_the_docs_tcp_example_closes_a_denied_connection() -> None:
    policy = load_policy(DOCS_TCP, proto="tcp")
    run = phase_run("110.20.30.40", TCP)
    assert run_phase(policy, run) == CloseConnection()
    assert [(e.outcome, e.terminal) for e in run.trace] == [("closed: 110.20.30.40 denied by 110.0.0.0/8", True)]
    assert run_phase(policy, phase_run("1.1.1.1", TCP)) is None


def test_in_on_http_response_a_refused_client_gets_403_instead_of_the_response() -> None:
    assert action({"allow": ["192.0.2.0/24"]}, RESPONSE).run(phase_run("198.51.100.1", RESPONSE)) == Respond(403)


def test_deny_wins_over_allow() -> None:
    config = {"allow": ["0.0.0.0/0", "::/0"], "deny": ["203.0.113.0/24"]}
    assert action(config).run(phase_run("203.0.113.9")) == Respond(403)
    assert action(config).run(phase_run("198.51.100.9")) is None
    assert action(config).run(phase_run("2001:db8::1")) is None


def test_an_ipv4_mapped_ipv6_address_is_matched_as_ipv4() -> None:
    assert action({"allow": ["1.1.1.1/32"]}).run(phase_run("::ffff:1.1.1.1")) is None


def test_host_bits_in_a_cidr_are_masked_as_go_does() -> None:
    assert action({"allow": ["10.1.2.3/8"]}).run(phase_run("10.200.0.1")) is None


def test_an_address_that_does_not_parse_is_refused() -> None:
    run = phase_run("not-an-ip")
    assert action({"allow": ["0.0.0.0/0", "::/0"]}).run(run) == Respond(403)
    assert (
        run.scope.actions["restrict_ips"]["error"]["message"] == "the client address 'not-an-ip' is not an IP address"
    )


def test_without_enforce_a_refused_client_goes_on() -> None:
    run = phase_run("10.0.0.5")
    assert action({"enforce": False, "allow": ["1.1.1.1/32"]}).run(run) is None
    assert run.scope.actions["restrict_ips"]["action"] == "deny"
    assert [(e.outcome, e.terminal) for e in run.trace] == [
        ("would refuse: 10.0.0.5 not allowed (not enforced)", False)
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"enforce": True, "ip_policies": ["ipp_1yjqdrIBwgciY2I9zH2EelgBbJF"]},
            "config.ip_policies: IP Policies are kept in ngrok's cloud",
        ),
        (
            {"deny": ["110.0.0.0/8"]},
            "config.allow: when specifying CIDRs to deny, you must specify at least one CIDR to allow",
        ),
        ({}, "config.allow: at least one CIDR to allow is required"),
        ({"allow": []}, "config.allow: at least one CIDR to allow is required"),
        ({"allow": ["1.1.1.1"]}, "config.allow[0]: '1.1.1.1' is not a CIDR: write address/prefix, e.g. 1.1.1.1/32"),
        ({"allow": ["1.1.1.1/32", "1.1.1.300/32"]}, "config.allow[1]: '1.1.1.300/32' is not a CIDR (ERR_NGROK_362)"),
        ({"allow": ["::/0"], "deny": ["10.0.0.0/33"]}, "config.deny[0]: '10.0.0.0/33' is not a CIDR"),
        ({"allow": "1.1.1.1/32"}, "config.allow: must be a list of strings"),
        ({"allow": ["::/0"], "enforce": "true"}, "config.enforce: must be true or false"),
        ({"allow": ["::/0"], "allow_cidrs": []}, "config.allow_cidrs: unknown field"),
    ],
)
def test_it_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        action(config)
    assert message in str(refused.value)


# With CEL interpolation, through load_policy


def test_an_interpolated_cidr_is_read_per_request() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "set-vars", "config": {"vars": [{"office": "203.0.113.0/24"}]}}]},
                {"actions": [{"type": "restrict-ips", "config": {"allow": ["${vars.office}"]}}]},
            ]
        },
        proto="https",
    )
    assert run_phase(policy, phase_run("203.0.113.50")) is None
    assert run_phase(policy, phase_run("198.51.100.1")) == Respond(403)


def test_an_interpolated_entry_that_is_not_a_cidr_fails_the_rule() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {"actions": [{"type": "set-vars", "config": {"vars": [{"office": "somewhere"}]}}]},
                {"name": "ips", "actions": [{"type": "restrict-ips", "config": {"allow": ["${vars.office}"]}}]},
            ]
        },
        proto="https",
    )
    with pytest.raises(
        PolicyRuntimeError, match=r"rule 'ips', action restrict-ips: allow\[0\]: 'somewhere' is not a CIDR"
    ):
        run_phase(policy, phase_run("203.0.113.50"))


def test_the_docs_testing_example_logs_what_it_would_do() -> None:
    # The docs' "Test restricting IPs", with an allow list where they name an IP Policy.
    policy = load_policy(
        """
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          enforce: false
          allow:
            - 1.1.1.1/32
      - type: log
        config:
          metadata:
            message: Restrict IPs action would be ${actions.ngrok.restrict_ips.action} for ${conn.client_ip}.
            matched_cidr: ${actions.ngrok.restrict_ips.matched_cidr}
            error_code: ${actions.ngrok.restrict_ips.error.code}
            error_message: ${actions.ngrok.restrict_ips.error.message}
""",
        proto="https",
    )
    run = phase_run("10.0.0.5")
    assert run_phase(policy, run) is None
    assert run.scope.actions["log"]["metadata"] == {
        "message": "Restrict IPs action would be deny for 10.0.0.5.",
        "matched_cidr": "",
        "error_code": "",
        "error_message": "",
    }
