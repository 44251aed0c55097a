"""basic-auth (ngrok's docs, traffic-policy/actions/basic-auth.mdx): 401 then 200 as the docs'
example shows, the variables it sets, constant-time comparison, and the configs it refuses."""

from __future__ import annotations

import base64
import hmac
from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, PolicyRuntimeError, load_policy
from agentapi.engine.policy.actions import basic_auth
from agentapi.engine.policy.actions.base import REQUEST, Config, PhaseRun
from agentapi.engine.policy.actions.basic_auth import BasicAuth
from agentapi.engine.policy.facts import EndpointFacts, RequestFacts
from agentapi.engine.policy.outcomes import Respond
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.variables import Scope
from tests.support.policy_runs import sample_conn

WHERE = "on_http_request.rules[0].actions[0] (basic-auth).config"
DOCS_EXAMPLE = """
on_http_request:
  - actions:
      - type: basic-auth
        config:
          realm: sample-realm
          credentials:
            - user:password1
            - admin:password2
          enforce: true
      - type: custom-response
        config:
          status_code: 200
          headers:
            content-type: text/plain
          body: Successfully Authenticated!
"""


def phase_run(authorization: str | None = None) -> PhaseRun:
    conn = sample_conn()
    endpoint = EndpointFacts(
        id="ep_1",
        name="web",
        url="http://example-api.ngrok.app",
        host="example-api.ngrok.app",
        port=80,
        protocol="http",
        upstream_url="http://localhost:8080",
    )
    scope = Scope(conn=conn, endpoint=endpoint)
    headers = [("Host", "example-api.ngrok.app")]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    request = RequestFacts(
        method="GET", target="/", version="1.1", scheme="http", host="example-api.ngrok.app", headers=headers, start=0.0
    )
    scope.request = request
    return PhaseRun(phase=REQUEST, scope=scope, conn=conn, request=request)


def basic(user_password: str) -> str:
    return "Basic " + base64.b64encode(user_password.encode()).decode()


def action(config: dict[str, Any]) -> BasicAuth:
    return BasicAuth(Config(config, where=WHERE), phase=REQUEST)


PAIRS = {"credentials": ["user:password1", "admin:password2"]}


def test_the_docs_example_answers_200_with_the_docs_credentials() -> None:
    policy = load_policy(DOCS_EXAMPLE, proto="https")
    # The docs' own encoding of user:password1.
    run = phase_run("Basic dXNlcjpwYXNzd29yZDE=")
    assert run_phase(policy, run) == Respond(200, [("content-type", "text/plain")], b"Successfully Authenticated!")
    assert [(e.action, e.outcome) for e in run.trace] == [
        ("basic-auth", "passed user user"),
        ("custom-response", "200, 27 bytes"),
    ]


def test_the_docs_example_answers_401_with_its_realm_without_credentials() -> None:
    policy = load_policy(DOCS_EXAMPLE, proto="https")
    run = phase_run()
    assert run_phase(policy, run) == Respond(401, [("WWW-Authenticate", 'Basic realm="sample-realm"')])
    assert [(e.action, e.outcome, e.terminal) for e in run.trace] == [
        ("basic-auth", "refused 401, no credentials", True)
    ]


def test_the_second_pair_passes_too() -> None:
    run = phase_run(basic("admin:password2"))
    assert action(PAIRS).run(run) is None


def test_a_wrong_password_is_refused_with_the_default_realm() -> None:
    run = phase_run(basic("user:password2"))
    assert action(PAIRS).run(run) == Respond(401, [("WWW-Authenticate", 'Basic realm="ngrok"')])
    assert run.trace[0].outcome == "refused 401, user user"


def test_the_scheme_is_case_insensitive() -> None:
    run = phase_run("basic " + base64.b64encode(b"user:password1").decode())
    assert action(PAIRS).run(run) is None


@pytest.mark.parametrize(
    "authorization",
    ["Bearer dXNlcjpwYXNzd29yZDE=", "Basic not*base64", "Basic " + base64.b64encode(b"nocolon").decode(), "Basic"],
)
def test_a_field_that_is_not_basic_credentials_counts_as_none(authorization: str) -> None:
    run = phase_run(authorization)
    assert isinstance(action(PAIRS).run(run), Respond)
    assert run.scope.actions["basic_auth"] == {"credentials": {"presented": False, "username": "", "authorized": False}}


def test_the_password_is_everything_after_the_first_colon() -> None:
    run = phase_run(basic("user:pass:word12"))
    assert action({"credentials": ["user:pass:word12"]}).run(run) is None


def test_it_reports_what_was_presented_for_later_rules() -> None:
    run = phase_run(basic("alice:wrong-password"))
    action(PAIRS).run(run)
    assert run.scope.actions["basic_auth"] == {
        "credentials": {"presented": True, "username": "alice", "authorized": False}
    }
    passed = phase_run(basic("user:password1"))
    action(PAIRS).run(passed)
    assert passed.scope.actions["basic_auth"]["credentials"]["authorized"] is True


def test_without_enforce_a_refused_request_goes_on() -> None:
    run = phase_run()
    assert action({**PAIRS, "enforce": False}).run(run) is None
    assert [(e.outcome, e.terminal) for e in run.trace] == [("failed, not enforced (no credentials)", False)]
    assert run.scope.actions["basic_auth"]["credentials"]["authorized"] is False


def test_utf8_credentials_are_compared_as_utf8_bytes() -> None:
    run = phase_run(basic("jürgen:pässwörd123"))
    assert action({"credentials": ["jürgen:pässwörd123"]}).run(run) is None


def test_every_pair_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    compare_digest = hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return compare_digest(a, b)

    monkeypatch.setattr(basic_auth.hmac, "compare_digest", counting_compare)
    config = {"credentials": ["user:password1", "admin:password2", "carol:password3"]}
    assert action(config).run(phase_run(basic("user:password1"))) is None
    assert compared == [b"user", b"password1", b"admin", b"password2", b"carol", b"password3"]


def test_a_realm_with_a_quote_is_escaped_in_the_challenge() -> None:
    answer = action({**PAIRS, "realm": 'my "app"'}).run(phase_run())
    assert answer == Respond(401, [("WWW-Authenticate", 'Basic realm="my \\"app\\""')])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.credentials: is required"),
        ({"credentials": []}, "config.credentials: must have 1 to 10 entries"),
        ({"credentials": [f"u{i}:password{i}" for i in range(11)]}, "config.credentials: must have 1 to 10 entries"),
        ({"credentials": "user:password1"}, "config.credentials: must be a list of strings"),
        ({"credentials": ["user:pass7ch"]}, "config.credentials[0]: the password must be 8-128 characters (it has 7)"),
        ({"credentials": ["user:" + "p" * 129]}, "config.credentials[0]: the password must be 8-128 characters"),
        ({"credentials": ["user:password1", "userpassword1"]}, "config.credentials[1]: must be username:password"),
        ({"credentials": ["${vars.user}password1"]}, "config.credentials[0]: must be username:password"),
        ({**PAIRS, "realm": "réalm"}, "config.realm: must be 1-128 printable ASCII characters"),
        ({**PAIRS, "realm": "r" * 129}, "config.realm: must be 1-128 printable ASCII characters"),
        ({**PAIRS, "realm": "a\r\nb"}, "config.realm: must be 1-128 printable ASCII characters"),
        ({**PAIRS, "enforce": "yes"}, "config.enforce: must be true or false"),
        ({**PAIRS, "users": []}, "config.users: unknown field"),
    ],
)
def test_it_refuses_a_bad_config_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        action(config)
    assert message in str(refused.value)


def test_the_password_bounds_are_inclusive() -> None:
    action({"credentials": ["a:" + "p" * 8, "b:" + "p" * 128]})


def test_it_runs_only_on_http_request() -> None:
    config = {"type": "basic-auth", "config": PAIRS}
    with pytest.raises(PolicyError, match=r"basic-auth cannot run in on_http_response \(only in on_http_request\)"):
        load_policy({"on_http_response": [{"actions": [config]}]}, proto="http")


@pytest.mark.parametrize(
    ("text", "colon"),
    [
        ("user:pass", 4),
        ("${a}:pass", 4),
        ("${a}", -1),
        ("pre${a}:${b}", 7),
        ("${m['k:v']}:x", 11),
        ("${ {'a': 'b:c'}.a }:x", 19),
        ("${a}pass", -1),
    ],
)
def test_the_literal_colon_is_found_outside_interpolations(text: str, colon: int) -> None:
    assert basic_auth.literal_colon(text) == colon


# With CEL interpolation, through load_policy


def interpolated(credentials: list[str], variables: dict[str, str]) -> Any:
    set_vars = {"type": "set-vars", "config": {"vars": [{name: value} for name, value in variables.items()]}}
    auth = {"type": "basic-auth", "config": {"credentials": credentials}}
    return load_policy({"on_http_request": [{"name": "auth", "actions": [set_vars, auth]}]}, proto="https")


@pytest.mark.parametrize(
    "credential",
    ["${vars.user}:password1", "${vars.user}:${vars.password}", "${vars.credential}", "us${vars.tail}:password1"],
)
def test_the_docs_interpolation_patterns_give_the_credential(credential: str) -> None:
    variables = {"user": "user", "password": "password1", "credential": "user:password1", "tail": "er"}
    policy = interpolated([credential], variables)
    assert run_phase(policy, phase_run(basic("user:password1"))) is None
    assert isinstance(run_phase(policy, phase_run(basic("user:password2"))), Respond)


def test_an_interpolated_username_may_not_bring_a_colon() -> None:
    policy = interpolated(["${vars.user}:password1"], {"user": "a:b"})
    with pytest.raises(PolicyRuntimeError, match=r"credentials\[0\]: the interpolated username contains ':'"):
        run_phase(policy, phase_run(basic("a:b:password1")))


def test_an_interpolated_password_must_be_8_to_128_characters() -> None:
    policy = interpolated(["user:${vars.password}"], {"password": "short"})
    with pytest.raises(
        PolicyRuntimeError, match=r"credentials\[0\]: the password must be 8-128 characters \(it has 5\)"
    ):
        run_phase(policy, phase_run(basic("user:short")))


def test_an_interpolated_whole_credential_needs_a_colon() -> None:
    policy = interpolated(["${vars.credential}"], {"credential": "nocolon"})
    with pytest.raises(PolicyRuntimeError, match=r"credentials\[0\]: the interpolated credential has no ':'"):
        run_phase(policy, phase_run(basic("nocolon:x")))


def test_an_unclosed_interpolation_is_refused_naming_the_credential() -> None:
    with pytest.raises(PolicyError, match=r"config\.credentials\[0\]: '\$\{' is never closed"):
        interpolated(["${vars.user:password1"], {"user": "user"})
