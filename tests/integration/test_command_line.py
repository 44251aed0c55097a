"""The `agent` command line: ngrok's subcommands, config files, start-up and shutdown."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

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


def test_ngrok_3_flags_work_on_a_running_agent(tmp_path, upstream: Upstream) -> None:
    agent = AgentProcess(
        tmp_path / "data",
        "http",
        str(upstream.port),
        "--inspect=false",
        "--description",
        "our app",
        "--metadata",
        "build 42",
        "--request-header-add",
        "X-From: cli",
        "--authtoken",
        "ignored",
    ).start()
    try:
        url = agent.public_urls["command_line"]
        assert requests.get(url + "/status/200", timeout=10).status_code == 200
        assert upstream.received[-1].header("X-From") == "cli"
        [tunnel] = agent.api("GET", "/api/tunnels").json()["tunnels"]
        assert tunnel["config"]["inspect"] is False
        assert agent.api("GET", "/api/requests/http").json()["requests"] == []
        assert any('msg="ignoring cloud-only settings"' in line and "keys=authtoken" in line for line in agent.lines)
    finally:
        assert agent.stop() == 0


def test_a_v3_config_with_ngrok_3_keys_starts_its_endpoints(tmp_path, upstream: Upstream) -> None:
    config = tmp_path / "ngrok.yml"
    log = tmp_path / "agent.log"
    config.write_text(
        f"""
version: 3
agent:
  authtoken: ignored-here
  connect_url: agent.example.com:443
  connect_cas: host
  crl_url: http://crl.example.com/ngrok.crl
  crl_noverify: true
  local_storage: false
  console_ui: false
  log_level: info
  log_format: logfmt
  log: {log}
endpoints:
  - name: secure
    description: the https one
    upstream:
      url: {upstream.port}
      protocol: http1
  - name: plain
    url: http://
    upstream:
      url: {upstream.port}
"""
    )
    agent = AgentProcess(tmp_path / "data", "start", "--all", "--config", str(config), "--log", "stdout").start()
    try:
        urls = {t["name"]: t["public_url"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]}
        assert urls["secure"].startswith("https://127.0.0.1:")  # no url: https, as in ngrok 3
        assert urls["plain"].startswith("http://127.0.0.1:")
        assert requests.get(urls["plain"] + "/status/204", timeout=10).status_code == 204
        # local_storage: false keeps no captures.
        assert agent.api("GET", "/api/requests/http").json()["requests"] == []
        assert any("connect_url" in line and "crl_url" in line for line in agent.lines if "cloud-only" in line)
    finally:
        assert agent.stop() == 0
    assert not log.exists()  # --log stdout wins over the file's log key


def test_log_to_a_file_from_the_command_line(tmp_path, upstream: Upstream) -> None:
    log = tmp_path / "logs" / "agent.log"
    log.parent.mkdir()
    agent = AgentProcess(tmp_path / "data", "http", str(upstream.port), "--log", str(log), "--log-format", "json")
    agent.proc = subprocess.Popen(
        [sys.executable, "-u", str(ROOT / "manage.py"), "agent", *agent.args, "--web-addr", "127.0.0.1:0"],
        cwd=ROOT,
        env=agent.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "agent ready" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.1)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert "agent ready" in [line["msg"] for line in lines]
        assert [line["name"] for line in lines if line["msg"] == "started tunnel"] == ["command_line"]
    finally:
        assert agent.stop() == 0


def test_a_refused_flag_is_a_start_up_error_saying_why(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "agent",
            "http",
            "80",
            "--upstream-protocol",
            "http2",
            "--log",
            "stdout",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AGENT_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "--upstream-protocol http2: h2c (HTTP/2 without TLS) to the local service is not supported" in result.stderr
