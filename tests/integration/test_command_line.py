"""The `agent` command line: ngrok's subcommands, config files, start-up and shutdown."""

from __future__ import annotations

import socket
import subprocess
import sys

import requests

from tests.support.agent_process import ROOT, AgentProcess
from tests.support.upstream import Upstream, free_port


def test_agent_http_port_opens_a_command_line_tunnel(tmp_path, upstream: Upstream) -> None:
    agent = AgentProcess(tmp_path / "data", "http", str(upstream.port)).start()
    try:
        url = agent.public_urls["command_line"]
        assert requests.get(url + "/status/204", timeout=10).status_code == 204
        [tunnel] = agent.api("GET", "/api/tunnels").json()["tunnels"]
        assert tunnel["name"] == "command_line"
        assert tunnel["config"]["addr"] == f"http://localhost:{upstream.port}"
    finally:
        assert agent.stop() == 0


def test_agent_start_all_opens_config_tunnels_and_endpoints(tmp_path, upstream: Upstream) -> None:
    config = tmp_path / "ngrok.yml"
    tcp_port = free_port()
    config.write_text(
        f"""
version: "3"
agent:
  authtoken: ignored-here
tunnels:
  site:
    proto: http
    addr: {upstream.port}
    inspect: false
  db:
    proto: tcp
    addr: {upstream.port}
    remote_addr: 127.0.0.1:{tcp_port}
endpoints:
  - name: api
    url: http://127.0.0.1
    upstream:
      url: http://localhost:{upstream.port}
"""
    )
    agent = AgentProcess(tmp_path / "data", "start", "--all", "--config", str(config)).start()
    try:
        tunnels = {t["name"]: t for t in agent.api("GET", "/api/tunnels").json()["tunnels"]}
        assert set(tunnels) == {"site", "db", "api"}
        assert tunnels["db"]["public_url"] == f"tcp://127.0.0.1:{tcp_port}"
        assert tunnels["site"]["config"]["inspect"] is False
        assert requests.get(tunnels["api"]["public_url"] + "/status/202", timeout=10).status_code == 202
        assert any("ignoring cloud-only settings" in line for line in agent.lines)
    finally:
        agent.stop()


def test_an_unknown_tunnel_name_is_a_clear_start_up_error(tmp_path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text('version: "2"\ntunnels: {}\n')
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "agent", "start", "nope", "--config", str(config), "--log", "stdout"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AGENT_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "lvl=eror" in result.stdout
    assert "nope" in result.stdout


def test_a_busy_public_port_fails_the_start_with_a_message(tmp_path, upstream: Upstream) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "agent",
                "http",
                str(upstream.port),
                "--url",
                f"127.0.0.1:{port}",
                "--web-addr",
                "127.0.0.1:0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"AGENT_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"},
        )
    assert result.returncode == 1
    assert "failed to listen" in result.stderr
