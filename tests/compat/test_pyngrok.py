"""pyngrok 9 (the real client) driving our agent through bin/ngrok, as its `ngrok_path`.

Both of pyngrok's dialects: the default config_version "3" (the /api/endpoints resource) and
config_version "2" (/api/tunnels). pyngrok starts the agent itself (`start --none --log stdout
--config FILE --authtoken T --region R`), waits for its log lines and probes the API.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from pyngrok import __version__ as pyngrok_version
from pyngrok import agent, conf, ngrok, process
from pyngrok.exception import PyngrokNgrokError

from tests.compat.conftest import NGROK_PATH, port_is_closed, write_config
from tests.support.upstream import Upstream, free_port

pytestmark = pytest.mark.compat


def config_for(tmp_path: Path, version: str, web_port: int | None = None) -> conf.PyngrokConfig:
    web_port = web_port or free_port()
    config_path = write_config(tmp_path / f"ngrok-v{version}.yml", version, web_port)
    return conf.PyngrokConfig(
        ngrok_path=str(NGROK_PATH),
        config_path=str(config_path),
        config_version=version,
        # Passed on the command line as --authtoken / --region: accepted and ignored.
        auth_token="compat-test-token",
        region="eu",
        startup_timeout=30,
        request_timeout=10,
        max_logs=50,
    )


@pytest.fixture(params=["3", "2"], ids=["v3-endpoints", "v2-tunnels"])
def pyngrok_config(
    request: pytest.FixtureRequest, tmp_path: Path, agent_data_dir: Path
) -> Iterator[conf.PyngrokConfig]:
    config = config_for(tmp_path, request.param)
    assert not process.is_process_running(config.ngrok_path), "an earlier test left pyngrok's process running"
    try:
        yield config
    finally:
        ngrok.kill(config)  # SIGKILL and wait, like pyngrok users do


def test_http_and_tcp_tunnels_through_pyngrok(
    pyngrok_config: conf.PyngrokConfig, upstream: Upstream, echo_port: int
) -> None:
    config = pyngrok_config
    tunnel = ngrok.connect(str(upstream.port), pyngrok_config=config)
    ngrok_process = ngrok.get_ngrok_process(config)
    assert tunnel.public_url is not None and tunnel.name is not None
    assert tunnel.public_url.startswith("http://127.0.0.1:")
    assert tunnel.proto == "http"
    assert tunnel.upstream["url"] == f"http://localhost:{upstream.port}"
    expected_uri = "/api/endpoints/" if config.config_version == "3" else "/api/tunnels/"
    assert tunnel.uri == expected_uri + tunnel.name

    # Real HTTP through the public URL reaches the local service.
    response = requests.post(tunnel.public_url + "/via-pyngrok?x=1", data=b"hello pyngrok", timeout=10)
    assert response.status_code == 200
    assert response.content == b"hello pyngrok"
    assert [(r.method, r.path, r.body) for r in upstream.received] == [("POST", "/via-pyngrok?x=1", b"hello pyngrok")]

    assert [t.public_url for t in ngrok.get_tunnels(config)] == [tunnel.public_url]

    tunnel.refresh_metrics()
    assert tunnel.metrics["http"]["count"] == 1
    assert tunnel.metrics["conns"]["count"] >= 1

    # Listed as soon as the response reached the client: the API stores queued captures first.
    captured = agent.get_requests(pyngrok_config=config)
    assert len(captured) == 1
    original = captured[0]
    assert original.id is not None
    assert original.tunnel_name == tunnel.name
    assert original.request["method"] == "POST"
    assert original.request["uri"] == "/via-pyngrok?x=1"
    assert original.response["status_code"] == 200
    assert agent.get_requests(tunnel_name=tunnel.name, pyngrok_config=config)[0].id == original.id
    detail = agent.get_request(original.id, pyngrok_config=config)
    assert detail.id == original.id
    assert detail.request["headers"]["Content-Length"] == ["13"]

    # Replay answers once the replayed exchange is recorded: the list shows it right away.
    agent.replay_request(original.id, pyngrok_config=config)
    after_replay = agent.get_requests(pyngrok_config=config)
    assert [r.id for r in after_replay][1:] == [original.id]
    replayed = after_replay[0]
    assert replayed.id is not None and replayed.id > original.id
    assert replayed.tunnel_name == tunnel.name
    assert replayed.request["uri"] == "/via-pyngrok?x=1"
    assert len(upstream.received) == 2
    assert (upstream.received[1].method, upstream.received[1].path, upstream.received[1].body) == (
        "POST",
        "/via-pyngrok?x=1",
        b"hello pyngrok",
    )

    agent.delete_requests(pyngrok_config=config)
    assert agent.get_requests(pyngrok_config=config) == []

    # A TCP tunnel carries bytes both ways.
    tcp = ngrok.connect(str(echo_port), "tcp", pyngrok_config=config)
    assert tcp.public_url is not None
    assert tcp.public_url.startswith("tcp://127.0.0.1:")
    assert tcp.proto == "tcp"
    host, port = tcp.public_url.removeprefix("tcp://").split(":")
    payload = bytes(range(256)) * 64
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        echoed = b""
        while len(echoed) < len(payload) and (chunk := sock.recv(65536)):
            echoed += chunk
    assert echoed == payload
    assert sorted((t.public_url for t in ngrok.get_tunnels(config)), key=str) == sorted(
        [tunnel.public_url, tcp.public_url]
    )

    ngrok.disconnect(tunnel.public_url, config)
    assert [t.public_url for t in ngrok.get_tunnels(config)] == [tcp.public_url]
    ngrok.disconnect(tcp.public_url, config)
    assert ngrok.get_tunnels(config) == []

    assert ngrok_process.api_url is not None
    web_port = int(ngrok_process.api_url.rsplit(":", 1)[1])
    ngrok.kill(config)
    assert ngrok_process.proc.poll() is not None
    assert not process.is_process_running(config.ngrok_path)
    assert port_is_closed(web_port)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_bind_tls_gives_an_https_tunnel(pyngrok_config: conf.PyngrokConfig, upstream: Upstream) -> None:
    tunnel = ngrok.connect(str(upstream.port), bind_tls=True, pyngrok_config=pyngrok_config)
    assert tunnel.public_url is not None
    assert tunnel.public_url.startswith("https://127.0.0.1:")
    # The agent's certificate is self-signed: this client chooses not to verify it.
    response = requests.get(tunnel.public_url + "/over-tls", verify=False, timeout=10)
    assert response.status_code == 200
    assert upstream.received[-1].header("X-Forwarded-Proto") == "https"
    ngrok.disconnect(tunnel.public_url, pyngrok_config=pyngrok_config)
    assert ngrok.get_tunnels(pyngrok_config) == []


def test_version_auth_token_and_api_key_commands(tmp_path: Path, agent_data_dir: Path) -> None:
    config = config_for(tmp_path, "3")
    assert ngrok.get_version(config) == (settings.AGENT_VERSION, pyngrok_version)
    # `config add-authtoken TOKEN --log stdout --config FILE`: pyngrok checks for "Authtoken saved".
    ngrok.set_auth_token("compat-test-token", config)
    # `config add-api-key KEY ...`: pyngrok checks for "API key saved".
    ngrok.set_api_key("compat-test-key", config)


def test_a_start_up_failure_reaches_pyngrok_as_its_error(tmp_path: Path, agent_data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = config_for(tmp_path, "3", web_port=busy.getsockname()[1])
        with pytest.raises(PyngrokNgrokError) as raised:
            ngrok.connect("8080", pyngrok_config=config)
    assert raised.value.ngrok_error is not None
    assert "address already in use" in raised.value.ngrok_error
    assert not process.is_process_running(config.ngrok_path)
