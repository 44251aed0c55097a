"""The UI on a non-local address listed in web_allow_hosts (127.0.0.2 stands in for a LAN address:
it is not one of the always-allowed names, yet stays on this machine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

pytestmark = pytest.mark.browser


@pytest.fixture
def lan_agent(tmp_path: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(
        tmp_path / "agent", "--web-addr", "127.0.0.2:0", env={"AGENT_WEB_ALLOW_HOSTS": "127.0.0.2"}
    ).start()
    yield process
    process.stop()


def test_live_list_and_edited_replay_work_on_an_allowed_lan_address(
    page: Page, lan_agent: AgentProcess, upstream: Upstream
) -> None:
    assert lan_agent.api_url.startswith("http://127.0.0.2:")
    tunnel = lan_agent.start_tunnel(name="web", proto="http", addr=str(upstream.port))
    page.goto(lan_agent.api_url + "/")
    expect(page.locator("#live-state")).to_have_text("live")
    requests.post(tunnel["public_url"] + "/lan", data=b"one", timeout=10)
    row = page.locator("tr.capture-row")
    expect(row).to_have_count(1)
    row.first.click()
    page.locator("#replay-edit-button").click()
    page.locator("#replay-dialog textarea[name=body]").fill("two")
    page.locator("#replay-dialog").get_by_role("button", name="Replay").click()
    expect(row).to_have_count(2)
    assert upstream.received[-1].body == b"two"


def test_an_unlisted_host_name_gets_nothing(lan_agent: AgentProcess) -> None:
    port = lan_agent.api_url.rsplit(":", 1)[1]
    response = requests.get(f"http://127.0.0.2:{port}/", headers={"Host": f"rebound.example:{port}"}, timeout=10)
    assert response.status_code == 403
