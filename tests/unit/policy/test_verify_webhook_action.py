"""verify-webhook as a policy runs it (ngrok's docs, traffic-policy/actions/verify-webhook.mdx):
the configs it refuses, what a verified, refused, unenforced and challenge request get, the trace
it leaves and the actions.ngrok.verify_webhook variables it sets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, PolicyRuntimeError, cel, load_policy
from agentapi.engine.policy.actions import base
from agentapi.engine.policy.actions.base import REQUEST, PhaseRun
from agentapi.engine.policy.actions.verify_webhook import VerifyWebhook
from agentapi.engine.policy.document import Policy
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts
from agentapi.engine.policy.outcomes import Respond
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.variables import Scope

NOW = 1_700_000_000.0
SECRET = "It's a Secret to Everybody"
BODY = b'{"zen":"Design for failure.","hook_id":1}'
WHERE = 'on_http_request.rules[0] ("hooks").actions[0] (verify-webhook).config'


class _StandInTemplate:
    """Until cel.py lands: a constant config string, or exactly `${vars.<name>}`."""

    def __init__(self, text: str) -> None:
        self.source = text
        self.constant = "${" not in text

    def render(self, scope: Scope) -> str:
        assert self.source.startswith("${vars.") and self.source.endswith("}")
        return str(scope.vars[self.source[len("${vars.") : -1]])


@pytest.fixture(autouse=True)
def templates(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CEL module is another helper's; while it is still the stub, templates are stood in for
    # (only what these tests use). Once it lands this does nothing and the real one runs.
    try:
        cel.compile_template("probe", where="probe")
    except NotImplementedError:
        monkeypatch.setattr(base, "compile_template", lambda text, *, where: _StandInTemplate(text))


def policy(config: dict[str, Any]) -> Policy:
    return load_policy(
        {"on_http_request": [{"name": "hooks", "actions": [{"type": "verify-webhook", "config": config}]}]},
        proto="https",
    )


def phase_run(
    headers: list[tuple[str, str]],
    body: bytes | None = BODY,
    *,
    method: str = "POST",
    target: str = "/hooks/github",
    now: float = NOW,
) -> PhaseRun:
    conn = ConnFacts(client_ip="140.82.115.1", client_port=41000, server_ip="127.0.0.1", server_port=8443, start=0.0)
    endpoint = EndpointFacts(
        id="ep_1",
        name="hooks",
        url="https://hooks.example.com",
        host="hooks.example.com",
        port=443,
        protocol="https",
        upstream_url="http://localhost:3000",
    )
    scope = Scope(conn=conn, endpoint=endpoint)
    request = RequestFacts(
        method=method,
        target=target,
        version="1.1",
        scheme="https",
        host="hooks.example.com",
        headers=[("Host", "hooks.example.com"), *headers],
        start=now,
        body=body,
    )
    scope.request = request
    return PhaseRun(phase=REQUEST, scope=scope, conn=conn, request=request, clock=lambda: now)


def github_signature(body: bytes, secret: str = SECRET) -> tuple[str, str]:
    return ("X-Hub-Signature-256", "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest())


def trace(run: PhaseRun) -> list[tuple[str, str, str, bool]]:
    return [(entry.rule, entry.action, entry.outcome, entry.terminal) for entry in run.trace]


# Configs


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"secret": "s"}, f"{WHERE}.provider: is required"),
        ({"provider": 7, "secret": "s"}, f"{WHERE}.provider: must be a string"),
        ({"provider": "github"}, f"{WHERE}.secret: is required"),
        ({"provider": "github", "secret": ""}, f"{WHERE}.secret: must not be empty"),
        ({"provider": "github", "secret": "s", "enforce": "no"}, f"{WHERE}.enforce: must be true or false"),
        ({"provider": "github", "secret": "s", "tolerance": 60}, f"{WHERE}.tolerance: unknown field"),
    ],
)
def test_a_bad_config_is_refused_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy(config)
    assert str(raised.value) == message


def test_an_unknown_provider_is_refused_with_the_supported_ones() -> None:
    with pytest.raises(PolicyError) as raised:
        policy({"provider": "gihub", "secret": "s"})
    assert str(raised.value).startswith(f"{WHERE}.provider: unknown provider 'gihub'; supported: aftership, ")


def test_sns_is_refused_at_load_with_the_reason() -> None:
    with pytest.raises(PolicyError, match=r"config\.provider: the 'sns' provider is not supported by this agent: "):
        policy({"provider": "sns", "secret": "unused"})


def test_it_runs_only_on_http_request() -> None:
    with pytest.raises(PolicyError, match="verify-webhook cannot run in on_http_response"):
        load_policy(
            {
                "on_http_response": [
                    {"actions": [{"type": "verify-webhook", "config": {"provider": "github", "secret": "s"}}]}
                ]
            },
            proto="https",
        )


def test_a_policy_with_it_asks_the_proxy_for_the_request_body() -> None:
    assert VerifyWebhook.needs_body
    assert policy({"provider": "github", "secret": SECRET}).needs_request_body


# Running


def test_a_correctly_signed_request_goes_on_and_is_reported_verified() -> None:
    run = phase_run([github_signature(BODY)])
    assert run_phase(policy({"provider": "github", "secret": SECRET}), run) is None
    assert trace(run) == [("hooks", "verify-webhook", "verified github", False)]
    assert run.scope.actions["verify_webhook"] == {"verified": True, "error": {"code": "", "message": ""}}


def test_a_tampered_request_is_refused_403_saying_why() -> None:
    run = phase_run([github_signature(BODY)], body=BODY.replace(b"failure", b"success"))
    outcome = run_phase(policy({"provider": "github", "secret": SECRET}), run)
    assert isinstance(outcome, Respond)
    assert outcome.status == 403
    assert ("ngrok-error-code", "ERR_NGROK_3204") in outcome.headers
    assert ("Content-Type", "text/plain; charset=utf-8") in outcome.headers
    assert outcome.body == b"webhook verification failed (github): signature does not match\n"
    assert trace(run) == [("hooks", "verify-webhook", "refused 403: signature does not match", True)]
    assert run.scope.actions["verify_webhook"] == {
        "verified": False,
        "error": {"code": "ERR_NGROK_3204", "message": "signature does not match"},
    }


def test_an_unsigned_request_is_refused_naming_the_missing_header() -> None:
    run = phase_run([])
    outcome = run_phase(policy({"provider": "github", "secret": SECRET}), run)
    assert isinstance(outcome, Respond)
    assert outcome.status == 403
    assert trace(run) == [("hooks", "verify-webhook", "refused 403: missing X-Hub-Signature-256", True)]


def test_with_enforce_false_an_unverified_request_goes_on_and_is_reported() -> None:
    run = phase_run([])
    assert run_phase(policy({"provider": "github", "secret": SECRET, "enforce": False}), run) is None
    assert trace(run) == [
        ("hooks", "verify-webhook", "not verified, not enforced (github): missing X-Hub-Signature-256", False)
    ]
    assert run.scope.actions["verify_webhook"]["verified"] is False


def test_the_docs_gitlab_example_passes_with_the_token_curl_sends() -> None:
    run = phase_run([("X-Gitlab-Token", "secret!")], body=b"")
    assert run_phase(policy({"provider": "gitlab", "secret": "secret!"}), run) is None
    assert trace(run) == [("hooks", "verify-webhook", "verified gitlab", False)]


def slack_headers(ts: int, body: bytes) -> list[tuple[str, str]]:
    signature = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return [("X-Slack-Request-Timestamp", str(ts)), ("X-Slack-Signature", f"v0={signature}")]


def test_the_runs_clock_decides_whether_a_timestamp_is_stale() -> None:
    slack = policy({"provider": "slack", "secret": SECRET})
    headers = slack_headers(int(NOW), BODY)
    assert run_phase(slack, phase_run(headers, now=NOW + 300)) is None
    late = phase_run(headers, now=NOW + 301)
    outcome = run_phase(slack, late)
    assert isinstance(outcome, Respond)
    assert trace(late) == [("hooks", "verify-webhook", "refused 403: timestamp outside the 300 s tolerance", True)]


def test_a_zoom_challenge_is_answered_and_ends_the_phase() -> None:
    body = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "abc123"}}).encode()
    ts = int(NOW)
    signature = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = [("x-zm-request-timestamp", str(ts)), ("x-zm-signature", f"v0={signature}")]
    run = phase_run(headers, body=body)
    outcome = run_phase(policy({"provider": "zoom", "secret": SECRET}), run)
    assert isinstance(outcome, Respond)
    assert outcome.status == 200
    expected = hmac.new(SECRET.encode(), b"abc123", hashlib.sha256).hexdigest()
    assert json.loads(outcome.body) == {"plainToken": "abc123", "encryptedToken": expected}
    assert trace(run) == [("hooks", "verify-webhook", "answered zoom endpoint.url_validation", True)]


def test_a_twitter_crc_get_is_answered_from_the_request_target() -> None:
    run = phase_run([], body=b"", method="GET", target="/hooks/x?crc_token=tok")
    outcome = run_phase(policy({"provider": "twitter", "secret": SECRET}), run)
    assert isinstance(outcome, Respond)
    digest = base64.b64encode(hmac.new(SECRET.encode(), b"tok", hashlib.sha256).digest()).decode()
    assert json.loads(outcome.body) == {"response_token": f"sha256={digest}"}


def test_a_badly_signed_xero_request_gets_xeros_401_with_no_body() -> None:
    run = phase_run([("x-xero-signature", "bm90IGl0")])
    outcome = run_phase(policy({"provider": "xero", "secret": SECRET}), run)
    assert isinstance(outcome, Respond)
    assert (outcome.status, outcome.body) == (401, b"")
    assert trace(run) == [("hooks", "verify-webhook", "refused 401: signature does not match", True)]


def test_twilio_is_checked_against_the_url_rebuilt_from_scheme_host_and_target() -> None:
    body = b"Body=hi&From=%2B15551234567"
    url = "https://hooks.example.com/hooks/sms?tenant=7"
    signed = url + "Bodyhi" + "From+15551234567"
    signature = base64.b64encode(hmac.new(SECRET.encode(), signed.encode(), hashlib.sha1).digest()).decode()
    headers = [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature)]
    run = phase_run(headers, body=body, target="/hooks/sms?tenant=7")
    assert run_phase(policy({"provider": "twilio", "secret": SECRET}), run) is None
    assert trace(run) == [("hooks", "verify-webhook", "verified twilio", False)]


def test_the_secret_may_be_interpolated_at_run_time() -> None:
    run = phase_run([github_signature(BODY, secret="from-vars")])
    run.scope.vars["webhook_secret"] = "from-vars"
    assert run_phase(policy({"provider": "github", "secret": "${vars.webhook_secret}"}), run) is None
    assert trace(run) == [("hooks", "verify-webhook", "verified github", False)]


def test_a_secret_that_renders_empty_fails_the_rule() -> None:
    run = phase_run([github_signature(BODY)])
    run.scope.vars["webhook_secret"] = ""
    with pytest.raises(PolicyRuntimeError, match="the secret rendered empty"):
        run_phase(policy({"provider": "github", "secret": "${vars.webhook_secret}"}), run)


def test_a_request_whose_body_was_not_read_fails_the_rule_rather_than_checking_nothing() -> None:
    run = phase_run([github_signature(b"")], body=None)
    with pytest.raises(PolicyRuntimeError, match="needs the whole request body"):
        run_phase(policy({"provider": "github", "secret": SECRET}), run)
