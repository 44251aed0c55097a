"""The Traffic Policy at work in Chromium: a basic-auth policy's refusal marked in the list, its steps
in the detail, the "blocked by policy" filter, replay through the policy, the policy on the status
page."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

pytestmark = pytest.mark.browser

POLICY = json.dumps(
    {
        "on_http_request": [
            {"name": "auth", "actions": [{"type": "basic-auth", "config": {"credentials": ["user:password1"]}}]}
        ]
    }
)
GOOD = "Basic " + base64.b64encode(b"user:password1").decode()


@pytest.fixture
def guarded(agent: AgentProcess, upstream: Upstream) -> dict[str, Any]:
    tunnel = agent.start_tunnel(name="guarded", proto="http", addr=str(upstream.port), traffic_policy=POLICY)
    assert requests.get(tunnel["public_url"] + "/private", timeout=10).status_code == 401
    assert requests.get(tunnel["public_url"] + "/private", headers={"Authorization": GOOD}, timeout=10).ok
    return tunnel


def rows(page: Page) -> Locator:
    return page.locator("tr.capture-row")


def row_with_status(page: Page, status: str) -> Locator:
    return page.locator("tr.capture-row", has=page.locator("td.col-status .status", has_text=status))


def open_inspector(page: Page, agent: AgentProcess, query: str = "") -> None:
    page.goto(agent.api_url + "/inspect/http" + query)
    expect(page.locator("#live-state")).to_have_text("live")


def test_a_refusal_is_marked_and_its_steps_are_shown(page: Page, agent: AgentProcess, guarded: dict) -> None:
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(2)
    refused, admitted = row_with_status(page, "401"), row_with_status(page, "200")
    expect(refused.locator(".policy-mark")).to_have_text("basic-auth")
    expect(admitted.locator(".policy-mark")).to_have_count(0)
    refused.click()
    section = page.locator("#detail section.traffic-policy")
    expect(section.locator("h3")).to_have_text("Traffic Policy")
    step = section.locator("tr.policy-step.terminal")
    expect(step.locator(".policy-phase")).to_have_text("on_http_request")
    expect(step.locator(".policy-rule")).to_have_text("auth")
    expect(step.locator(".policy-action")).to_have_text("basic-auth")
    expect(step.locator(".policy-outcome")).to_contain_text("401")
    expect(page.locator("#detail .detail-title .policy-mark")).to_have_text("blocked by policy: basic-auth")
    # The admitted request ran the same action, which let it through: listed, not marked.
    admitted.click()
    admitted_step = page.locator("#detail section.traffic-policy tr.policy-step")
    expect(admitted_step.locator(".policy-action")).to_have_text("basic-auth")
    expect(page.locator("#detail tr.policy-step.terminal")).to_have_count(0)


def test_the_blocked_by_policy_filter_keeps_only_refusals(page: Page, agent: AgentProcess, guarded: dict) -> None:
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(2)
    page.locator('input[name="policy"]').fill("blocked")
    page.locator("#filters button[type=submit]").click()
    page.wait_for_url(re.compile(r"[?&]policy=blocked(&|$)"))
    expect(page.locator("#live-state")).to_have_text("live")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).locator(".status")).to_have_text("401")
    # A new refusal arrives live into the filtered list; an admitted request does not.
    requests.get(guarded["public_url"] + "/again", timeout=10)
    requests.get(guarded["public_url"] + "/again", headers={"Authorization": GOOD}, timeout=10)
    expect(rows(page)).to_have_count(2)
    expect(page.locator("tr.capture-row .policy-mark")).to_have_count(2)


def test_replay_through_policy_is_refused_again_plain_replay_is_not(
    page: Page, agent: AgentProcess, guarded: dict
) -> None:
    open_inspector(page, agent)
    row_with_status(page, "401").click()
    page.locator("#replay-policy-button").click()
    expect(rows(page)).to_have_count(3)
    expect(row_with_status(page, "401")).to_have_count(2)
    row_with_status(page, "401").first.click()
    page.locator("#replay-button").click()
    expect(rows(page)).to_have_count(4)
    # Straight to the service, as ngrok's inspector does: answered, no policy step.
    expect(row_with_status(page, "200")).to_have_count(2)


def test_the_status_page_shows_the_policy_each_tunnel_runs(
    page: Page, agent: AgentProcess, guarded: dict, http_tunnel: dict
) -> None:
    page.goto(agent.api_url + "/status")
    card = page.locator('.tunnel-card[data-tunnel="guarded"]')
    expect(card.locator(".traffic-policy-text")).to_contain_text("basic-auth")
    expect(card.locator(".policy-none")).to_be_hidden()
    plain = page.locator('.tunnel-card[data-tunnel="web"]')
    expect(plain.locator(".policy-none")).to_have_text("none")
    expect(plain.locator(".traffic-policy-text")).to_be_hidden()
