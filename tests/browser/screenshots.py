"""Screenshots of the inspector and the status page for the docs: `python -m tests.browser.screenshots`.

Starts an agent and a local upstream in a temporary directory, sends a little varied traffic, and
writes docs/inspector.png and docs/status.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.agent_process import AgentProcess
from tests.support.upstream import start_upstream

DOCS = Path(__file__).resolve().parents[2] / "docs"


def send_traffic(url: str) -> None:
    session = requests.Session()
    session.get(url + "/", timeout=10)
    session.get(url + "/api/users?page=2&per_page=20", timeout=10)
    session.post(url + "/login", data={"user": "ada", "remember": "1"}, timeout=10)
    session.get(url + "/status/404", timeout=10)
    session.get(url + "/bytes/2048", timeout=10)
    session.get(url + "/slow/1.2", timeout=10)
    session.post(url + "/status/500", json={"retry": True}, timeout=10)
    session.get(url + "/status/301", timeout=10)
    session.post(
        url + "/webhooks/payments?attempt=1",
        json={"id": "evt_1NqQ", "type": "payment.succeeded", "data": {"amount": 4200, "currency": "eur"}},
        headers={"X-Hub-Signature-256": "sha256=5f1e...", "User-Agent": "PaymentsHook/2.1"},
        timeout=10,
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        upstream = start_upstream()
        agent = AgentProcess(Path(tmp) / "agent").start()
        try:
            tunnel = agent.start_tunnel(name="web", proto="http", addr=str(upstream.port))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 860})
                page.goto(agent.api_url + "/status")
                expect(page.locator("#live-state")).to_have_text("live")
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline:  # a few seconds of traffic for the charts
                    send_traffic(tunnel["public_url"])
                page.wait_for_timeout(1500)
                page.screenshot(path=str(DOCS / "status.png"))
                page.goto(agent.api_url + "/inspect/http")
                expect(page.locator("#live-state")).to_have_text("live")
                page.locator("tr.capture-row", has_text="/webhooks/payments").first.click()
                expect(page.locator("section.message.response pre.pretty")).to_be_visible()
                page.screenshot(path=str(DOCS / "inspector.png"))
                browser.close()
        finally:
            agent.stop()
            upstream.close()
    print(f"wrote {DOCS / 'inspector.png'} and {DOCS / 'status.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
