"""The DNS-rebinding defence: only known Host names get an answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api.helpers import assert_error
from tests.support.agent_process import AgentProcess


def get(agent: AgentProcess, host: str) -> requests.Response:
    return agent.api("GET", "/api/tunnels", headers={"Host": host})


@pytest.mark.parametrize("host", ["evil.example", "evil.example:4040", "localhost.evil.example", "127.0.0.1.nip.io"])
def test_an_unknown_host_is_refused_with_403_in_the_error_shape(agent, host: str) -> None:
    body = assert_error(get(agent, host), 403, 100)
    assert host in body["details"]["err"]


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:4040", "LOCALHOST:4040", "127.0.0.1", "127.0.0.1:4040", "[::1]", "[::1]:4040"]
)
def test_loopback_names_are_always_allowed(agent, host: str) -> None:
    assert get(agent, host).status_code == 200


def test_a_refused_host_changes_nothing(agent) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "x", "addr": "80"}, headers={"Host": "evil.example"})
    assert_error(response, 403, 100)
    assert agent.api("GET", "/api/tunnels").json()["tunnels"] == []


@pytest.fixture(scope="module")
def allowing_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    directory = tmp_path_factory.mktemp("allow")
    config = directory / "ngrok.yml"
    config.write_text(
        'version: "2"\n'
        "web_allow_hosts:\n"
        "  - 10.0.0.0/8\n"
        "  - 2001:db8::/32\n"
        "  - .example.test\n"
        "  - tunnel.internal\n"
        "  - 192.0.2.7\n"
    )
    process = AgentProcess(Path(directory) / "data", "--config", str(config)).start()
    yield process
    process.stop()


@pytest.mark.parametrize(
    "host",
    [
        "10.1.2.3",
        "10.1.2.3:4040",
        "[2001:db8::5]:4040",
        "example.test",
        "a.example.test",
        "deep.a.example.test:80",
        "tunnel.internal",
        "TUNNEL.internal:4040",
        "192.0.2.7",
        "localhost",
    ],
)
def test_web_allow_hosts_from_the_config_file_are_allowed(allowing_agent: AgentProcess, host: str) -> None:
    assert get(allowing_agent, host).status_code == 200


@pytest.mark.parametrize(
    "host", ["11.0.0.1", "192.0.2.8", "notexample.test", "example.test.evil", "a.tunnel.internal", "evil.example"]
)
def test_hosts_outside_web_allow_hosts_are_refused(allowing_agent: AgentProcess, host: str) -> None:
    assert_error(get(allowing_agent, host), 403, 100)
