"""Traffic Policy through the npm `ngrok` package (v4, the real client), driving our agent via bin/ngrok.

npm's connect(opts) posts its options object to POST /api/tunnels as it is, so it can express both:
its README's `auth: 'user:pwd'` option (the deprecated key, now ngrok's basic-auth action) and a
`traffic_policy` object beside it (ngrok's docs' add-headers example). The deprecated key's rule
runs before the given policy's (policy/legacy.py).

The node side (inline below) connects and prints one JSON line, then holds the agent until its
stdin closes; this side sends the HTTP requests and reads the API. The package must be installed:
`npm ci --ignore-scripts --prefix tests/compat` (see test_npm_ngrok.py).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.compat.conftest import NGROK_BIN_DIR, write_config
from tests.compat.test_npm_ngrok import COMPAT_DIR, node
from tests.support.upstream import Upstream, free_port

pytestmark = pytest.mark.compat

# ngrok's docs, traffic-policy/actions/add-headers "Adding Client IP Headers to all HTTP requests".
CLIENT_IP_POLICY = {
    "on_http_request": [
        {"actions": [{"type": "add-headers", "config": {"headers": {"x-client-ip": "${conn.client_ip}"}}}]}
    ]
}

CLIENT = """
const ngrok = require("ngrok");
const base = {
  addr: Number(process.env.UPSTREAM_PORT),
  binPath: () => process.env.NGROK_BIN_DIR,
  configPath: process.env.NGROK_CONFIG,
};
const print = (value) => console.log(JSON.stringify(value));
(async () => {
  let readme = null;
  try {
    await ngrok.connect({ ...base, auth: "user:pwd" }); // npm's README, as written
  } catch (error) {
    readme = { status: error.response && error.response.statusCode, body: error.body };
  }
  const policy = JSON.parse(process.env.TRAFFIC_POLICY);
  const url = await ngrok.connect({ ...base, auth: "user:password", traffic_policy: policy });
  print({ readme, url, apiUrl: ngrok.getUrl() });
  process.stdin.resume();
  process.stdin.on("end", () => ngrok.kill().then(() => process.exit(0)));
})().catch((error) => {
  print({ error: String((error && error.stack) || error), body: error && error.body });
  ngrok.kill().finally(() => process.exit(1));
});
"""


@pytest.fixture
def npm_client(tmp_path: Path, agent_data_dir: Path, upstream: Upstream) -> Iterator[dict[str, Any]]:
    """The node client's summary line, its agent held until the test ends."""
    config_path = write_config(tmp_path / "ngrok.yml", "2", free_port())
    env = {
        **os.environ,
        "NGROK_BIN_DIR": str(NGROK_BIN_DIR),
        "NGROK_CONFIG": str(config_path),
        "UPSTREAM_PORT": str(upstream.port),
        "TRAFFIC_POLICY": json.dumps(CLIENT_IP_POLICY),
    }
    stderr_path = tmp_path / "npm-client.stderr"
    with stderr_path.open("w") as stderr:
        client = subprocess.Popen(
            [node(), "-e", CLIENT],
            cwd=COMPAT_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert client.stdin is not None and client.stdout is not None
    try:
        ready, _, _ = select.select([client.stdout], [], [], 60)
        line = client.stdout.readline() if ready else ""
        assert line, f"the npm client printed nothing (exit {client.poll()}): {stderr_path.read_text()}"
        summary = json.loads(line)
        assert "error" not in summary, summary
        yield summary
    finally:
        client.stdin.close()  # the client kills its agent and exits
        try:
            client.wait(timeout=15)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()


def test_npm_auth_option_and_a_traffic_policy_act_on_requests(npm_client: dict[str, Any], upstream: Upstream) -> None:
    # The README's `auth: 'user:pwd'` is refused as ngrok refuses it: basic-auth needs 8-128
    # characters of password. connect() rejects with the API's 400 body.
    readme = npm_client["readme"]
    assert readme["status"] == 400, readme
    assert readme["body"]["details"]["err"] == (
        'on_http_request.rules[0] ("auth (deprecated key)").actions[0] (basic-auth).config.credentials[0]:'
        " the password must be 8-128 characters (it has 3)"
    )

    url = npm_client["url"]
    assert url.startswith("http://127.0.0.1:")
    refused = requests.get(url + "/from-npm", timeout=10)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="ngrok"'
    assert upstream.received == []
    passed = requests.get(url + "/from-npm", auth=("user", "password"), timeout=10)
    assert passed.status_code == 200
    [received] = upstream.received
    assert received.header("x-client-ip") == "127.0.0.1"

    api = npm_client["apiUrl"]
    [tunnel] = requests.get(api + "/api/tunnels", timeout=10).json()["tunnels"]
    assert tunnel["public_url"] == url
    captured = requests.get(api + "/api/requests/http", params={"tunnel_name": tunnel["name"]}, timeout=10).json()
    steps = [
        [(step["rule"], step["action"], step["terminal"]) for step in capture["traffic_policy"]]
        for capture in captured["requests"]
    ]
    assert steps == [  # newest first
        [("auth (deprecated key)", "basic-auth", False), ("rules[0]", "add-headers", False)],
        [("auth (deprecated key)", "basic-auth", True)],
    ]
