"""set-vars and log (ngrok's docs, traffic-policy/actions/set-vars.mdx and log.mdx): the docs'
values land in `vars`, log metadata reaches the trace, the log and actions.ngrok.log, and bad
configs are refused naming the field."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, TCP, Config, PhaseRun
from agentapi.engine.policy.actions.vars_and_log import Log, SetVars
from agentapi.engine.policy.facts import RequestFacts
from agentapi.engine.policy.outcomes import Respond
from agentapi.engine.policy.runner import run_phase
from tests.support.policy_runs import RecordingScope, sample_conn, sample_endpoint

WHERE = "on_http_request.rules[0].actions[0] (x).config"
DOCS_BASIC_EXAMPLE = """
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - sample_string: bar
            - sample_double: 1.5
            - sample_bool: true
            - sample_null: null
            - sample_list:
                - 1
                - 2
                - 3
            - sample_map:
                key: value
            - sample_nested_map:
                key:
                  - value1
                  - value2
"""


def phase_run(phase: str = REQUEST) -> PhaseRun:
    conn = sample_conn()
    endpoint = sample_endpoint()
    scope = RecordingScope(conn=conn, endpoint=endpoint)
    if phase == TCP:
        return PhaseRun(phase=phase, scope=scope, conn=conn)
    request = RequestFacts(
        method="GET", target="/", version="1.1", scheme="https", host="example.ngrok.app", headers=[], start=0.0
    )
    scope.request = request
    return PhaseRun(phase=phase, scope=scope, conn=conn, request=request)


def changes(run: PhaseRun) -> list[str]:
    assert isinstance(run.scope, RecordingScope)
    return run.scope.changes


def refused(cls: type, config: Any) -> str:
    with pytest.raises(PolicyError) as error:
        cls(Config(config, where=WHERE), phase=REQUEST)
    return str(error.value)


# set-vars


def test_the_docs_basic_example_sets_each_value_with_its_type() -> None:
    run = phase_run()
    assert run_phase(load_policy(DOCS_BASIC_EXAMPLE, proto="https"), run) is None
    assert run.scope.vars == {
        "sample_string": "bar",
        "sample_double": 1.5,
        "sample_bool": True,
        "sample_null": None,
        "sample_list": [1, 2, 3],
        "sample_map": {"key": "value"},
        "sample_nested_map": {"key": ["value1", "value2"]},
    }
    assert run.trace[0].outcome == (
        "sample_string, sample_double, sample_bool, sample_null, sample_list, sample_map, sample_nested_map"
    )


def test_a_later_entry_replaces_an_earlier_one_and_each_is_announced() -> None:
    run = phase_run()
    SetVars(Config({"vars": [{"model": "a"}, {"model": "b"}]}, where=WHERE), phase=REQUEST).run(run)
    assert run.scope.vars == {"model": "b"}
    assert changes(run) == ["vars", "vars"]
    assert run.trace[0].outcome == "model"


def test_set_vars_runs_on_tcp_connect_too() -> None:
    policy = load_policy(
        {"on_tcp_connect": [{"actions": [{"type": "set-vars", "config": {"vars": [{"a": 1}]}}]}]}, proto="tcp"
    )
    run = phase_run(TCP)
    run_phase(policy, run)
    assert run.scope.vars == {"a": 1}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.vars: is required"),
        ({"vars": []}, "config.vars: must be a non-empty list of {name: value} maps"),
        ({"vars": {"a": 1}}, "config.vars: must be a non-empty list of {name: value} maps"),
        ({"vars": [{"a": 1, "b": 2}]}, "config.vars[0]: must be a map of exactly one name: value"),
        ({"vars": [{"a": 1}, "b"]}, "config.vars[1]: must be a map of exactly one name: value"),
        ({"vars": [{"": 1}]}, "config.vars[0]: the variable name must be a non-empty string"),
        ({"vars": [{"a": {1: "x"}}]}, "config.vars[0].a: map keys must be strings"),
        ({"vars": [{"a": 1}], "scope": "global"}, "config.scope: unknown field"),
    ],
)
def test_set_vars_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    assert message in refused(SetVars, config)


# log


def test_the_docs_log_metadata_reaches_the_trace_the_log_and_the_actions_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = load_policy(
        {"on_http_request": [{"name": "audit", "actions": [{"type": "log", "config": {"metadata": {"message": "Log action executed.", "count": 3}}}]}]},
        proto="https",
    )  # fmt: skip
    run = phase_run()
    with caplog.at_level(logging.INFO, logger="agentapi.engine.policy.actions.vars_and_log"):
        assert run_phase(policy, run) is None
    text = '{"message":"Log action executed.","count":3}'
    assert [(e.rule, e.action, e.outcome, e.terminal) for e in run.trace] == [("audit", "log", text, False)]
    assert run.scope.actions["log"] == {"metadata": {"message": "Log action executed.", "count": 3}}
    assert changes(run) == ["actions"]
    assert [r.getMessage() for r in caplog.records] == [
        f"traffic policy log, endpoint web, on_http_request rule 'audit': {text}"
    ]


def test_long_metadata_is_cut_in_the_trace_but_kept_whole_in_the_variable() -> None:
    run = phase_run()
    Log(Config({"metadata": {"blob": "x" * 2000}}, where=WHERE), phase=REQUEST).run(run)
    outcome = run.trace[0].outcome
    assert len(outcome) == 1000
    assert outcome.endswith("...")
    assert run.scope.actions["log"]["metadata"]["blob"] == "x" * 2000


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.metadata: is required"),
        ({"metadata": {}}, "config.metadata: must be a non-empty map of name: value"),
        ({"metadata": ["message"]}, "config.metadata: must be a non-empty map of name: value"),
        ({"metadata": {"a": 1}, "level": "info"}, "config.level: unknown field"),
    ],
)
def test_log_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    assert message in refused(Log, config)


# With CEL interpolation, through load_policy


def test_the_docs_behavior_example_answers_hello_world() -> None:
    policy = load_policy(
        """
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - variable_a: Hello,
            - variable_b: World!
  - actions:
      - type: custom-response
        config:
          status_code: 200
          headers:
            content-type: text/plain
          body: ${vars.variable_a} ${vars.variable_b}
""",
        proto="https",
    )
    answer = run_phase(policy, phase_run())
    assert isinstance(answer, Respond)
    assert answer.body == b"Hello, World!"


def test_the_docs_basic_example_answers_with_each_kind_of_value() -> None:
    policy = load_policy(
        DOCS_BASIC_EXAMPLE
        + """
  - expressions:
      - vars.sample_bool == true
    actions:
      - type: custom-response
        config:
          status_code: 200
          headers:
            content-type: text/plain
          body: ${vars.sample_string} ${vars.sample_double} ${vars.sample_list[0]} ${vars.sample_map.key} ${vars.sample_nested_map.key[1]}
""",
        proto="https",
    )
    answer = run_phase(policy, phase_run())
    assert isinstance(answer, Respond)
    assert answer.body == b"bar 1.5 1 value value2"


def test_a_string_that_is_one_expression_keeps_its_type_and_others_are_text() -> None:
    policy = load_policy(
        {
            "on_http_request": [
                {
                    "actions": [
                        {
                            "type": "set-vars",
                            "config": {
                                "vars": [
                                    {"message": "Your IP is ${conn.client_ip}!"},
                                    {"sample_uint": "${uint(1.5) + 10u}"},
                                    {"sample_int": "${int(50.5)}"},
                                    {"sample_map": {"ip": "${conn.client_ip}", "n": "${1 + 1}"}},
                                    {"accepted_models": ["openai/o1", "openai/4o", "openai/4o-mini"]},
                                    {"models": "${vars.accepted_models.filter(m, m != 'openai/o1')}"},
                                    {"models": "${vars.models.map(m, m.upperAscii())}"},
                                ]
                            },
                        }
                    ]
                }
            ]
        },
        proto="https",
    )
    run = phase_run()
    run_phase(policy, run)
    assert run.scope.vars["message"] == "Your IP is 203.0.113.7!"
    assert run.scope.vars["sample_uint"] == 11
    assert run.scope.vars["sample_int"] == 50
    assert run.scope.vars["sample_map"] == {"ip": "203.0.113.7", "n": 2}
    # Later values read earlier ones, in list order.
    assert run.scope.vars["models"] == ["OPENAI/4O", "OPENAI/4O-MINI"]


def test_the_docs_log_example_logs_the_endpoint_id() -> None:
    policy = load_policy(
        """
on_http_request:
  - actions:
      - type: log
        config:
          metadata:
            message: Log action executed.
            endpoint_id: ${endpoint.id}
""",
        proto="https",
    )
    run = phase_run()
    run_phase(policy, run)
    assert run.scope.actions["log"] == {"metadata": {"message": "Log action executed.", "endpoint_id": "ep_1"}}
    assert run.trace[0].outcome == '{"message":"Log action executed.","endpoint_id":"ep_1"}'


def test_a_bad_expression_in_a_value_is_refused_naming_it() -> None:
    with pytest.raises(PolicyError, match=r"\(set-vars\)\.config\.vars\[0\]\.a: Syntax error"):
        load_policy(
            {"on_http_request": [{"actions": [{"type": "set-vars", "config": {"vars": [{"a": "${1 +}"}]}}]}]},
            proto="https",
        )
    with pytest.raises(PolicyError, match=r"\(log\)\.config\.metadata\.m\.deep: unknown variable 'nope'"):
        load_policy(
            {"on_http_request": [{"actions": [{"type": "log", "config": {"metadata": {"m": {"deep": "x ${nope}"}}}}]}]},
            proto="https",
        )
