"""Traffic Policy through pyngrok 9 (the real client), driving our agent through bin/ngrok.

- pyngrok's own documented example (docs/index.rst, "Tunnel Configurations"), run as written:
  `ngrok.connect(subdomain="foo", auth="username:password", circuit_breaker=50)`. It names no port,
  so the local service is given the way pyngrok's docs offer for that: a "pyngrok-default"
  definition in the config file, and the call goes through `conf.get_default()` as in the docs.
  `auth` runs as ngrok's basic-auth action (401 without the credentials); `circuit_breaker: 50`
  as the circuit-breaker action with error_threshold 0.5 (pyngrok's 50 read as a percentage,
  policy/legacy.py) and ngrok's defaults for the rest (volume_threshold 10, a 10 s window,
  actions/circuit_breaker.py): past 10 requests with half of them 5xx, the breaker answers 503.
- `traffic_policy=` as pyngrok passes any other tunnel option (its connect(**options) posts it
  as is): ngrok's docs' add-headers examples, as JSON text (an object too for /api/tunnels; the
  endpoints API takes text only, as ngrok's `agent/api.mdx` shows it) and as YAML text.
Both of pyngrok's dialects: config_version "3" (its default: /api/endpoints) and "2" (/api/tunnels).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pyngrok import agent, conf, ngrok, process
from pyngrok.exception import PyngrokNgrokHTTPError

from tests.compat.conftest import NGROK_PATH
from tests.support.upstream import Upstream, free_port

pytestmark = pytest.mark.compat

TRIPPED = "ERR_NGROK_3202"  # ngrok's "circuit breaker tripped"
VOLUME_THRESHOLD = 10  # the circuit-breaker action's default volume_threshold

# ngrok's docs, traffic-policy/actions/add-headers "Adding Client IP Headers to all HTTP
# requests" (policy.json) and "Adding headers to an HTTP response" (policy.yml), unchanged.
CLIENT_IP_POLICY_JSON = """
{
  "on_http_request": [
    {
      "actions": [
        {
          "type": "add-headers",
          "config": {
            "headers": {
              "x-client-ip": "${conn.client_ip}"
            }
          }
        }
      ]
    }
  ]
}
"""
RESPONSE_HEADERS_POLICY_YAML = """
on_http_response:
  - expressions:
      - req.method == "GET" && req.url.path.startsWith("/status/200")
    actions:
      - type: add-headers
        config:
          headers:
            x-custom-header: my-custom-value
            x-string-interpolation-example: started at ${conn.ts.start}
"""


def write_config(path: Path, version: str, web_port: int, service_port: int) -> Path:
    """A config file whose API listens on 127.0.0.1:web_port, with pyngrok's "pyngrok-default"
    definition pointing at the local service (what connect() uses when given no name)."""
    if version == "3":
        path.write_text(
            f'version: "3"\nagent:\n  web_addr: 127.0.0.1:{web_port}\n'
            f"endpoints:\n  - name: pyngrok-default\n    upstream:\n      url: http://localhost:{service_port}\n"
        )
    else:
        path.write_text(
            f'version: "2"\nweb_addr: 127.0.0.1:{web_port}\n'
            f"tunnels:\n  pyngrok-default:\n    proto: http\n    addr: {service_port}\n"
        )
    return path


@pytest.fixture(params=["3", "2"], ids=["v3-endpoints", "v2-tunnels"])
def default_config(
    request: pytest.FixtureRequest, tmp_path: Path, agent_data_dir: Path, upstream: Upstream
) -> Iterator[conf.PyngrokConfig]:
    """pyngrok's default config for this test (as `conf.set_default` makes it), then killed."""
    version = request.param
    config = conf.PyngrokConfig(
        ngrok_path=str(NGROK_PATH),
        config_path=str(write_config(tmp_path / f"ngrok-v{version}.yml", version, free_port(), upstream.port)),
        config_version=version,
        auth_token="compat-test-token",
        startup_timeout=30,
        request_timeout=10,
    )
    assert not process.is_process_running(config.ngrok_path), "an earlier test left pyngrok's process running"
    previous = conf.get_default()
    conf.set_default(config)
    try:
        yield config
    finally:
        ngrok.kill(config)
        conf.set_default(previous)


def trace(captured: agent.CapturedRequest) -> list[dict[str, Any]]:
    """The capture's policy steps as the API lists them ([] for none)."""
    return list(captured.data.get("traffic_policy") or [])


def test_pyngroks_documented_auth_and_circuit_breaker_example(
    default_config: conf.PyngrokConfig, upstream: Upstream
) -> None:
    # pyngrok's docs, verbatim (the port comes from the config file's pyngrok-default).
    ngrok_tunnel = ngrok.connect(subdomain="foo", auth="username:password", circuit_breaker=50)

    assert ngrok_tunnel.name == "pyngrok-default-api"
    url = ngrok_tunnel.public_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    credentials = ("username", "password")

    refused = requests.get(url + "/status/200", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="ngrok"'
    assert upstream.received == []  # the refused request never reached the service
    wrong = requests.get(url + "/status/200", auth=("username", "wrong-password"), timeout=10)
    assert wrong.status_code == 401
    assert requests.get(url + "/status/200", auth=credentials, timeout=10).status_code == 200
    assert [r.path for r in upstream.received] == ["/status/200"]

    # The window holds the 200 so far (the 401s never reached the breaker's rule). The request that
    # finds 10 in it, at least half of them 5xx, is refused: 9 failures pass, the 10th trips it.
    statuses = [requests.get(url + "/status/500", auth=credentials, timeout=10) for _ in range(VOLUME_THRESHOLD)]
    assert [r.status_code for r in statuses] == [500] * (VOLUME_THRESHOLD - 1) + [503]
    assert statuses[-1].headers["ngrok-error-code"] == TRIPPED
    # Open: a good request is refused too, without reaching the service; auth still runs first.
    healthy = requests.get(url + "/status/200", auth=credentials, timeout=10)
    assert (healthy.status_code, healthy.headers["ngrok-error-code"]) == (503, TRIPPED)
    assert requests.get(url + "/status/200", timeout=10).status_code == 401
    assert len(upstream.received) == VOLUME_THRESHOLD  # the 200 and the 9 failures

    # The captures, through pyngrok's own client of the API, newest first: each with its steps.
    captured = agent.get_requests(tunnel_name=ngrok_tunnel.name)
    assert [c.response["status_code"] for c in captured] == [401, 503, 503] + [500] * 9 + [200, 401, 401]
    first_refusal, passed = captured[-1], captured[-3]
    assert [(s["rule"], s["action"], s["terminal"]) for s in trace(first_refusal)] == [
        ("basic_auth (deprecated key)", "basic-auth", True)  # pyngrok posts `auth` as basic_auth
    ]
    assert trace(first_refusal)[0]["outcome"].startswith("refused 401")
    assert [(s["action"], s["terminal"]) for s in trace(passed)] == [("basic-auth", False), ("circuit-breaker", False)]
    assert trace(passed)[0]["outcome"] == "passed user username"
    tripped = trace(captured[2])
    assert [(s["action"], s["outcome"], s["terminal"]) for s in tripped][-1] == (
        "circuit-breaker",
        "503, tripped",
        True,
    )
    assert {s["phase"] for s in tripped} == {"on_http_request"}


def test_a_traffic_policy_passed_through_pyngrok_acts_on_requests(
    default_config: conf.PyngrokConfig, upstream: Upstream
) -> None:
    # ngrok's endpoints API takes the policy as text (`agent/api.mdx`), so in v3 pyngrok passes the
    # JSON or YAML text of a policy file; /api/tunnels also takes it as an object.
    if default_config.config_version == "3":
        with pytest.raises(PyngrokNgrokHTTPError) as refused:
            ngrok.connect(str(upstream.port), name="client-ip", traffic_policy=json.loads(CLIENT_IP_POLICY_JSON))
        assert refused.value.status_code == 400 and "traffic_policy must be a string" in str(refused.value)
        policy: str | dict[str, Any] = CLIENT_IP_POLICY_JSON
    else:
        policy = json.loads(CLIENT_IP_POLICY_JSON)
    request_side = ngrok.connect(str(upstream.port), name="client-ip", traffic_policy=policy)
    response_side = ngrok.connect(
        str(upstream.port), name="response-headers", traffic_policy=RESPONSE_HEADERS_POLICY_YAML
    )
    assert request_side.public_url is not None and response_side.public_url is not None

    assert requests.get(request_side.public_url + "/get", timeout=10).status_code == 200
    assert upstream.received[-1].header("x-client-ip") == "127.0.0.1"

    matched = requests.get(response_side.public_url + "/status/200", timeout=10)
    assert matched.status_code == 200
    assert matched.headers["x-custom-header"] == "my-custom-value"
    assert matched.headers["x-string-interpolation-example"].startswith("started at ")
    unmatched = requests.get(response_side.public_url + "/status/204", timeout=10)
    assert unmatched.status_code == 204 and "x-custom-header" not in unmatched.headers
    assert upstream.received[-1].header("x-client-ip") is None  # the other tunnel's policy

    # pyngrok lists the tunnels with the policy each was given (ngrok's endpoints echo the text).
    listed = {t.public_url: t.data.get("traffic_policy") for t in ngrok.get_tunnels()}
    if default_config.config_version == "3":
        assert listed == {
            request_side.public_url: CLIENT_IP_POLICY_JSON,
            response_side.public_url: RESPONSE_HEADERS_POLICY_YAML,
        }

    [added] = trace(agent.get_requests(tunnel_name=request_side.name)[0])
    assert (added["phase"], added["action"], added["outcome"]) == ("on_http_request", "add-headers", "x-client-ip")
    by_path = {c.request["uri"]: trace(c) for c in agent.get_requests(tunnel_name=response_side.name)}
    assert [(s["phase"], s["action"]) for s in by_path["/status/200"]] == [("on_http_response", "add-headers")]
    assert by_path["/status/204"] == []
