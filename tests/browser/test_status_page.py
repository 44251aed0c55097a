"""The status page in Chromium: tunnel config and live metrics with charts."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.agent_process import AgentProcess

pytestmark = pytest.mark.browser


def test_a_metric_changes_live(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    page.goto(agent.api_url + "/status")
    card = page.locator(".tunnel-card[data-tunnel=web]")
    expect(card.locator(".tunnel-url")).to_have_text(http_tunnel["public_url"])
    expect(card.locator(".tunnel-proto")).to_have_text("http")
    count = card.locator('[data-metric="http.count"]')
    expect(count).to_have_text("0")
    for _ in range(3):
        requests.get(http_tunnel["public_url"] + "/metric", timeout=10)
    expect(count).to_have_text("3")
    expect(card.locator('[data-metric="http.p50"]')).to_have_text(re.compile(r"^\d+\.(\d{3}|\d{6})s$"))
    # uPlot draws each series into a canvas.
    expect(card.locator(".chart canvas")).to_have_count(3)


def test_a_tunnel_started_later_appears(page: Page, agent: AgentProcess, upstream) -> None:
    page.goto(agent.api_url + "/status")
    expect(page.locator("#no-tunnels")).to_be_visible()
    agent.start_tunnel(name="late", proto="http", addr=str(upstream.port))
    expect(page.locator(".tunnel-card[data-tunnel=late] .tunnel-proto")).to_have_text("http")
    agent.api("DELETE", "/api/tunnels/late")
    expect(page.locator(".tunnel-card[data-tunnel=late]")).to_have_count(0)
