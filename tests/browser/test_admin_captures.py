"""The admin in Chromium: log in, find a capture, see new ones announced live."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.agent_process import ROOT, AgentProcess

pytestmark = pytest.mark.browser


def create_superuser(agent: AgentProcess) -> None:
    """What the docs tell a user to do: createsuperuser against the agent's data directory."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "a@example.com",
        ],
        cwd=ROOT,
        env={**agent.env, "DJANGO_SUPERUSER_PASSWORD": "secret-pw"},
        check=True,
        capture_output=True,
    )


def test_a_capture_is_found_in_the_admin(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    create_superuser(agent)
    requests.get(http_tunnel["public_url"] + "/orders/42", headers={"X-Customer": "acme"}, timeout=10)
    page.goto(agent.api_url + "/admin/agentapi/capture/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.locator("input[type=submit]").click()
    page.fill("#searchbar", "X-Customer: acme")
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#live-captures[data-state=live]")).to_be_attached()
    requests.get(http_tunnel["public_url"] + "/orders/43", timeout=10)
    expect(page.locator("#live-captures .live-count strong")).to_have_text("1")
    page.locator("#result_list tbody tr th a").click()
    expect(page.locator(".field-rendered_request pre").first).to_contain_text("GET /orders/42 HTTP/1.1")
    expect(page.locator(".field-rendered_response pre").first).to_contain_text("HTTP/1.1 200 OK")
