"""Traffic Policy through every entry point of a real agent: POST /api/tunnels (string or object),
POST and PUT /api/endpoints (echoed back as given), internal endpoints, pooling, the config file
and the command line; bad policies refused with 400 naming the rule, action and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.api.helpers import assert_error
from tests.support.agent_process import ROOT, AgentProcess
from tests.support.upstream import Upstream

# deny answers every request itself: the policy is what answers, not the service.
DENY_418 = "on_http_request:\n  - name: teapot\n    actions:\n      - type: deny\n        config:\n          status_code: 418\n"
DENY_418_OBJECT = {
    "on_http_request": [{"name": "teapot", "actions": [{"type": "deny", "config": {"status_code": 418}}]}]
}
CLOSE_ON_CONNECT = {"on_tcp_connect": [{"actions": [{"type": "close-connection"}]}]}


def names(agent: AgentProcess) -> list[str]:
    return [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]]


def endpoint_body(name: str, port: int, **extra: object) -> dict[str, object]:
    return {"name": name, "upstream": {"url": f"http://localhost:{port}"}, **extra}


def test_an_endpoints_policy_runs_and_is_echoed_back_as_the_text_given(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/endpoints", endpoint_body("tp", upstream.port, traffic_policy=DENY_418))
    assert response.status_code == 201, response.text
    assert response.json()["traffic_policy"] == DENY_418
    assert agent.api("GET", "/api/endpoints/tp").json()["traffic_policy"] == DENY_418
    tunnel = agent.api("GET", "/api/tunnels/tp").json()
    assert tunnel["name"] == "tp"
    assert requests.get(tunnel["public_url"] + "/x", timeout=10).status_code == 418
    assert upstream.received == []


def test_a_json_policy_string_is_echoed_back_unchanged(agent, upstream: Upstream) -> None:
    text = json.dumps(DENY_418_OBJECT, indent=3)
    response = agent.api("POST", "/api/endpoints", endpoint_body("tp", upstream.port, traffic_policy=text))
    assert response.status_code == 201, response.text
    assert agent.api("GET", "/api/endpoints/tp").json()["traffic_policy"] == text


def test_put_replaces_the_policy_and_echoes_the_new_text(agent, upstream: Upstream) -> None:
    assert agent.api("PUT", "/api/endpoints/tp", endpoint_body("tp", upstream.port)).status_code == 201
    url = agent.api("GET", "/api/endpoints/tp").json()["url"]
    assert requests.get(url + "/x", timeout=10).status_code == 200
    response = agent.api("PUT", "/api/endpoints/tp", endpoint_body("tp", upstream.port, traffic_policy=DENY_418))
    assert response.status_code == 200, response.text
    assert response.json()["traffic_policy"] == DENY_418
    url = agent.api("GET", "/api/endpoints/tp").json()["url"]
    assert requests.get(url + "/x", timeout=10).status_code == 418


@pytest.mark.parametrize("policy", [DENY_418, DENY_418_OBJECT], ids=["text", "object"])
def test_the_tunnels_resource_takes_a_policy_as_text_or_object(agent, upstream: Upstream, policy: object) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "tp", "addr": str(upstream.port), "traffic_policy": policy})
    assert response.status_code == 201, response.text
    assert agent.api("GET", "/api/tunnels/tp").json()["name"] == "tp"
    assert requests.get(response.json()["public_url"] + "/x", timeout=10).status_code == 418
    shown = agent.api("GET", "/api/endpoints/tp").json()["traffic_policy"]
    assert shown == policy if isinstance(policy, str) else json.loads(shown) == policy


def test_a_tcp_tunnel_takes_an_on_tcp_connect_policy(agent, upstream: Upstream) -> None:
    body = {"name": "db", "proto": "tcp", "addr": str(upstream.port), "traffic_policy": CLOSE_ON_CONNECT}
    response = agent.api("POST", "/api/tunnels", body)
    assert response.status_code == 201, response.text
    assert agent.api("GET", "/api/tunnels/db").json()["proto"] == "tcp"


def test_an_http_phase_on_a_tcp_tunnel_is_refused(agent, upstream: Upstream) -> None:
    body = {"name": "db", "proto": "tcp", "addr": str(upstream.port), "traffic_policy": DENY_418}
    assert_error(
        agent.api("POST", "/api/tunnels", body),
        400,
        102,
        "The TrafficPolicy you provided is invalid: on_http_request: tcp endpoints have only the on_tcp_connect"
        " phase (ERR_NGROK_9026)",
    )
    assert names(agent) == []


@pytest.mark.parametrize(
    ("policy", "names_where"),
    [
        ("on_http_request:\n  actions: []\n", "on_http_request: must be a list of rules"),
        ("on_http_request: [", "the policy is not valid YAML"),
        (
            json.dumps({"on_http_request": [{"name": "r", "actions": [{"type": "deny", "config": {"code": 1}}]}]}),
            'on_http_request.rules[0] ("r").actions[0] (deny).config.code: unknown field',
        ),
        (
            json.dumps({"on_http_request": [{"actions": [{"type": "deny", "config": {"status_code": "x"}}]}]}),
            "on_http_request.rules[0].actions[0] (deny).config.status_code: must be a whole number",
        ),
        (json.dumps({"on_http_request": [{"actions": [{"type": "oauth"}]}]}), "needs ngrok's cloud"),
        (json.dumps({"on_http_request": [{"actions": [{"type": "teleport"}]}]}), "unknown action type 'teleport'"),
    ],
)
def test_a_bad_policy_is_a_400_naming_where_it_is_wrong_and_nothing_starts(
    agent, upstream: Upstream, policy: str, names_where: str
) -> None:
    for method, path, body in (
        ("POST", "/api/endpoints", endpoint_body("bad", upstream.port, traffic_policy=policy)),
        ("PUT", "/api/endpoints/bad", endpoint_body("bad", upstream.port, traffic_policy=policy)),
        ("POST", "/api/tunnels", {"name": "bad", "addr": str(upstream.port), "traffic_policy": policy}),
    ):
        body_seen = assert_error(agent.api(method, path, body), 400, 102)
        err = body_seen["details"]["err"]
        assert err.startswith("The TrafficPolicy you provided is invalid: "), err
        assert names_where in err
        assert err.endswith("(ERR_NGROK_9026)")
    assert names(agent) == []


def test_a_bad_put_policy_leaves_the_running_endpoint_and_its_policy_alone(agent, upstream: Upstream) -> None:
    agent.api("PUT", "/api/endpoints/tp", endpoint_body("tp", upstream.port, traffic_policy=DENY_418))
    bad = endpoint_body("tp", upstream.port, traffic_policy="on_http_request: [")
    assert_error(agent.api("PUT", "/api/endpoints/tp", bad), 400, 102)
    endpoint = agent.api("GET", "/api/endpoints/tp").json()
    assert endpoint["traffic_policy"] == DENY_418
    assert requests.get(endpoint["url"] + "/x", timeout=10).status_code == 418


def test_an_internal_endpoint_is_accepted_and_shown_by_its_internal_url(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/endpoints", endpoint_body("inner", upstream.port, url="https://api.internal"))
    assert response.status_code == 201, response.text
    assert response.json()["url"] == "https://api.internal"
    both = agent.api(
        "POST",
        "/api/endpoints",
        endpoint_body("inner2", upstream.port, url="https://b.internal", bindings=["internal"]),
    )
    assert both.status_code == 201, both.text
    assert set(names(agent)) == {"inner", "inner2"}


@pytest.mark.parametrize(
    ("extra", "err"),
    [
        ({"bindings": ["internal"]}, "an internal endpoint needs a url whose host ends in .internal"),
        ({"bindings": ["kubernetes"]}, "bindings: kubernetes endpoints need ngrok's cloud"),
        ({"bindings": ["public"], "url": "https://x.internal"}, "'https://x.internal' is an internal endpoint URL"),
    ],
)
def test_bad_bindings_are_refused(agent, upstream: Upstream, extra: dict[str, object], err: str) -> None:
    body = assert_error(agent.api("POST", "/api/endpoints", endpoint_body("b", upstream.port, **extra)), 400, 102)
    assert body["details"]["err"].startswith(err)
    assert names(agent) == []


def test_pooling_enabled_is_echoed(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/endpoints", endpoint_body("pool", upstream.port, pooling_enabled=True))
    assert response.status_code == 201, response.text
    assert agent.api("GET", "/api/endpoints/pool").json()["pooling_enabled"] is True


def test_a_deprecated_key_runs_as_policy_with_ngroks_notice_in_the_log(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "zip", "addr": str(upstream.port), "compression": True})
    assert response.status_code == 201, response.text
    # logfmt writes the message quoted, its own quotes escaped.
    notice = (
        'tunnel \\"zip\\": compression (--compression) has been deprecated, use traffic policy instead; it runs'
        ' as the on_http_response rule \\"compression (deprecated key)\\"'
    )
    assert [line for line in agent.lines if "lvl=warn" in line and notice in line]


def test_pyngroks_circuit_breaker_50_is_accepted(agent, upstream: Upstream) -> None:
    # pyngrok's documented `connect(..., circuit_breaker=50)`, as its v3 mode posts it.
    response = agent.api("POST", "/api/endpoints", endpoint_body("cb", upstream.port, circuit_breaker=50))
    assert response.status_code == 201, response.text
    assert requests.get(response.json()["url"] + "/x", timeout=10).status_code == 200


def test_pyngroks_documented_auth_and_circuit_breaker_example_works(agent, upstream: Upstream) -> None:
    # pyngrok's docs: ngrok.connect(subdomain="foo", auth="username:password", circuit_breaker=50);
    # its v3 mode posts auth as basic_auth.
    body = endpoint_body("foo", upstream.port, subdomain="foo", basic_auth=["username:password"], circuit_breaker=50)
    response = agent.api("POST", "/api/endpoints", body)
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    assert requests.get(url + "/x", timeout=10).status_code == 401
    assert requests.get(url + "/x", auth=("username", "password"), timeout=10).status_code == 200


def test_deprecated_header_ip_and_user_agent_keys_act_on_requests(agent, upstream: Upstream) -> None:
    body = {
        "name": "old",
        "addr": str(upstream.port),
        "request_header": {"add": ["X-Env: prod"], "remove": ["X-Secret"]},
        "user_agent_filter": {"deny": ["(?i)bot"]},
    }
    url = agent.start_tunnel(**body)["public_url"]
    response = requests.get(url + "/x", headers={"X-Secret": "s", "User-Agent": "curl/8"}, timeout=10)
    assert response.status_code == 200
    assert upstream.received[-1].header("x-env") == "prod"
    assert upstream.received[-1].header("x-secret") is None
    assert requests.get(url + "/x", headers={"User-Agent": "Googlebot"}, timeout=10).status_code == 403
    locked = agent.start_tunnel(name="locked", addr=str(upstream.port), ip_restriction={"deny_cidrs": ["127.0.0.0/8"]})
    assert requests.get(locked["public_url"] + "/x", timeout=10).status_code == 403


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("oauth", {"provider": "google"}, "oauth needs ngrok's cloud"),
        ("oidc", {"issuer_url": "https://idp.example"}, "oidc needs ngrok's cloud"),
        ("mutual_tls_cas", "ca.pem", "mutual_tls_cas needs ngrok's cloud"),
    ],
)
def test_cloud_only_keys_are_refused_with_the_reason(
    agent, upstream: Upstream, key: str, value: object, reason: str
) -> None:
    body = assert_error(
        agent.api("POST", "/api/tunnels", {"name": "c", "addr": str(upstream.port), key: value}), 400, 102
    )
    assert body["details"]["err"].startswith(reason)


# --- the config file and the command line: agents of their own -------------------------------------


def test_a_config_file_endpoint_and_tunnel_run_their_policies(tmp_path: Path, upstream: Upstream) -> None:
    (tmp_path / "tp.yml").write_text(DENY_418)
    config = tmp_path / "ngrok.yml"
    config.write_text(
        f"""
version: 3
endpoints:
  - name: inline
    url: http://127.0.0.1
    traffic_policy:
      on_http_request:
        - actions:
            - type: deny
              config:
                status_code: 418
    upstream:
      url: {upstream.port}
  - name: from-file
    url: http://127.0.0.1
    traffic_policy_file: tp.yml
    upstream:
      url: {upstream.port}
tunnels:
  v2:
    proto: http
    addr: {upstream.port}
    traffic_policy:
      on_http_request:
        - actions:
            - type: deny
              config:
                status_code: 418
"""
    )
    agent = AgentProcess(tmp_path / "data", "start", "--all", "--config", str(config)).start()
    try:
        for name in ("inline", "from-file", "v2"):
            tunnel = agent.api("GET", f"/api/tunnels/{name}").json()
            assert requests.get(tunnel["public_url"] + "/x", timeout=10).status_code == 418, name
        assert agent.api("GET", "/api/endpoints/from-file").json()["traffic_policy"] == DENY_418
        shown = json.loads(agent.api("GET", "/api/endpoints/inline").json()["traffic_policy"])
        assert shown == {"on_http_request": [{"actions": [{"type": "deny", "config": {"status_code": 418}}]}]}
    finally:
        assert agent.stop() == 0


def test_the_command_lines_traffic_policy_file_runs(tmp_path: Path, upstream: Upstream) -> None:
    (tmp_path / "tp.yml").write_text(DENY_418)
    agent = AgentProcess(
        tmp_path / "data", "http", str(upstream.port), "--traffic-policy-file", str(tmp_path / "tp.yml")
    ).start()
    try:
        url = agent.api("GET", "/api/tunnels/command_line").json()["public_url"]
        assert requests.get(url + "/x", timeout=10).status_code == 418
        assert agent.api("GET", "/api/endpoints/command_line").json()["traffic_policy"] == DENY_418
    finally:
        assert agent.stop() == 0


def run_agent(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "agent", *argv, "--web-addr", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AGENT_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"},
    )


def test_a_missing_policy_file_fails_the_start_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    result = run_agent(tmp_path, "http", "8080", "--traffic-policy-file", str(missing))
    assert result.returncode == 1
    assert f"--traffic-policy-file: {missing} does not exist" in result.stderr


def test_a_bad_policy_file_fails_the_start_naming_the_rule(tmp_path: Path) -> None:
    (tmp_path / "tp.yml").write_text("on_http_request:\n  - name: r\n    actions:\n      - type: nope\n")
    result = run_agent(tmp_path, "http", "8080", "--traffic-policy-file", str(tmp_path / "tp.yml"))
    assert result.returncode == 1
    assert 'on_http_request.rules[0] ("r").actions[0] (nope).type: unknown action type' in result.stderr


def test_a_cloud_only_flag_fails_the_start_saying_so(tmp_path: Path) -> None:
    result = run_agent(tmp_path, "http", "8080", "--oauth", "google")
    assert result.returncode == 1
    assert "--oauth: oauth needs ngrok's cloud" in result.stderr


def test_config_check_refuses_a_bad_policy(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text("version: 2\ntunnels:\n  t:\n    addr: 80\n    traffic_policy: 'on_http_request: ['\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "agent", "config", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AGENT_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "tunnel 't': The TrafficPolicy you provided is invalid: the policy is not valid YAML" in result.stderr
