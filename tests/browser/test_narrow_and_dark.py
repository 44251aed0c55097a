"""The inspector at 390 px, in dark mode, and the address: #id links and filter URLs.

Regressions kept here: at 390 px a tapped capture rendered 2,865 px below the list; with the OS
in dark mode the admin turned dark and the inspector stayed white; a pasted `#<id>` did nothing
in an open tab; filter URLs filled with empty parameters and lost the open capture.

With AGENT_WRITE_SCREENSHOTS=1 the tests also write docs/screenshots/*.png (390 px and dark),
the ones the docs show.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.screenshots import send_traffic
from tests.support.agent_process import AgentProcess

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("AGENT_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


Contexts = list[tuple[BrowserContext, list[str]]]


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Contexts]:
    made: Contexts = []
    yield made
    for context, _ in made:
        context.close()
    errors = [error for _, page_errors in made for error in page_errors]
    assert not errors, f"JavaScript errors on the page: {errors}"


def new_page(browser: Browser, contexts: Contexts, **options: Any) -> Page:
    """A page in a context of its own (viewport, colour scheme, touch); the fixture checks it
    raised no JavaScript error."""
    context = browser.new_context(**options)
    context.set_default_timeout(10_000)
    page_errors: list[str] = []
    contexts.append((context, page_errors))
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    return page


def open_inspector(page: Page, agent: AgentProcess, query: str = "") -> None:
    page.goto(agent.api_url + "/inspect/http" + query)
    expect(page.locator("#live-state")).to_have_text("live")


def luminance(css_colour: str) -> float:
    """Relative luminance (0 black .. 1 white) of an `rgb(...)`/`rgba(...)` computed colour."""
    red, green, blue = (int(part) / 255 for part in re.findall(r"[\d.]+", css_colour)[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def background(page: Page, selector: str) -> float:
    return luminance(page.locator(selector).first.evaluate("(node) => getComputedStyle(node).backgroundColor"))


def test_at_390_px_a_tapped_capture_opens_as_a_full_screen_sheet_with_back(
    browser: Browser, contexts, agent: AgentProcess, http_tunnel
) -> None:
    send_traffic(http_tunnel["public_url"])
    page = new_page(browser, contexts, viewport=PHONE, has_touch=True, is_mobile=True)
    open_inspector(page, agent)
    screenshot(page, "inspector-390-list.png")
    list_url = page.url
    row = page.locator("tr.capture-row", has_text="/webhooks/payments")
    row.tap()
    title = page.locator(".detail-title")
    expect(title).to_contain_text("/webhooks/payments")
    # In view at once: the sheet covers the screen, its title at the top (not 2,865 px down).
    sheet = page.locator("#detail-pane").bounding_box()
    assert sheet is not None
    assert (sheet["x"], sheet["y"], sheet["width"]) == (0, 0, PHONE["width"])
    assert sheet["height"] >= PHONE["height"] - 1
    box = title.bounding_box()
    assert box is not None and 0 <= box["y"] < 200
    expect(page.locator("section.message.request")).to_be_in_viewport()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "inspector-390-detail.png")
    # Back closes it and the list is where it was.
    page.locator("#sheet-back").tap()
    expect(page.locator("#detail-pane")).to_be_hidden()
    expect(row).to_be_in_viewport()
    assert page.url == list_url
    # The browser's back button does the same.
    row.tap()
    expect(title).to_contain_text("/webhooks/payments")
    page.go_back()
    expect(page.locator("#detail-pane")).to_be_hidden()
    expect(page).to_have_url(list_url)
    # Opened by a link, the sheet is there at once, and Back keeps the page.
    capture_id = row.get_attribute("data-id")
    page.goto(f"{agent.api_url}/inspect/http#{capture_id}")
    expect(title).to_contain_text("/webhooks/payments")
    expect(title).to_be_in_viewport()
    page.locator("#sheet-back").tap()
    expect(page.locator("#detail-pane")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/inspect/http$"))


@pytest.mark.parametrize("viewport", [{"width": 1400, "height": 900}, PHONE], ids=["wide", "390px"])
def test_with_the_os_in_dark_mode_the_inspector_is_dark(
    browser: Browser, contexts, agent: AgentProcess, http_tunnel, viewport
) -> None:
    send_traffic(http_tunnel["public_url"])
    dark = new_page(browser, contexts, viewport=viewport, color_scheme="dark")
    open_inspector(dark, agent)
    dark.locator("tr.capture-row", has_text="/webhooks/payments").click()
    expect(dark.locator("section.message.response")).to_be_visible()
    for selector in ("body", ".list-pane", "table.captures thead th", "section.message", "input[name=q]"):
        assert background(dark, selector) < 0.2, f"{selector} is not dark"
    text = luminance(dark.locator("td.col-path").first.evaluate("(node) => getComputedStyle(node).color"))
    assert text > 0.6
    name = "inspector-dark.png" if viewport["width"] > 900 else "inspector-390-dark.png"
    screenshot(dark, name)
    # The same page with the OS light stays light.
    light = new_page(browser, contexts, viewport=viewport, color_scheme="light")
    open_inspector(light, agent)
    assert background(light, ".list-pane") > 0.9


def test_the_admin_and_the_inspector_agree_on_dark(browser: Browser, contexts, agent: AgentProcess) -> None:
    page = new_page(browser, contexts, color_scheme="dark")
    page.goto(agent.api_url + "/admin/login/")
    admin = background(page, "body")
    open_inspector(page, agent)
    assert admin < 0.2 and background(page, "body") < 0.2


def test_a_hash_pasted_into_an_open_tab_opens_that_capture(page: Page, agent: AgentProcess, http_tunnel) -> None:
    url = http_tunnel["public_url"]
    requests.get(url + "/first", timeout=10)
    requests.get(url + "/second", timeout=10)
    open_inspector(page, agent)
    first = page.locator("tr.capture-row", has_text="/first").get_attribute("data-id")
    second = page.locator("tr.capture-row", has_text="/second").get_attribute("data-id")
    page.goto(f"{agent.api_url}/inspect/http#{first}")  # same document: only the hash changes
    expect(page.locator(".detail-title .uri")).to_have_text("/first")
    expect(page.locator(f'tr.capture-row.selected[data-id="{first}"]')).to_have_count(1)
    page.evaluate("(id) => { location.hash = id; }", second)
    expect(page.locator(".detail-title .uri")).to_have_text("/second")
    # And the browser's back goes to the one before.
    page.go_back()
    expect(page.locator(".detail-title .uri")).to_have_text("/first")


def test_filter_urls_carry_only_given_parameters_and_keep_the_open_capture(
    page: Page, agent: AgentProcess, http_tunnel
) -> None:
    url = http_tunnel["public_url"]
    requests.get(url + "/api/open-me", timeout=10)
    requests.get(url + "/static/other", timeout=10)
    open_inspector(page, agent)
    row = page.locator("tr.capture-row", has_text="/api/open-me")
    row.click()
    capture_id = row.get_attribute("data-id")
    page.locator("#filter-path").fill("/api/")
    page.locator("#filter-path").press("Enter")
    expect(page.locator("#capture-rows tr.capture-row")).to_have_count(1)
    address = urlsplit(page.url)
    assert parse_qsl(address.query, keep_blank_values=True) == [("path", "/api/")]
    assert address.fragment == capture_id
    expect(page.locator(".detail-title .uri")).to_have_text("/api/open-me")
    expect(page.locator("tr.capture-row.selected")).to_have_attribute("data-id", str(capture_id))
    # Reset keeps it open too, and leaves no parameters.
    page.locator("#filter-reset").click()
    expect(page.locator("#capture-rows tr.capture-row")).to_have_count(2)
    assert urlsplit(page.url).query == ""
    assert urlsplit(page.url).fragment == capture_id
    expect(page.locator(".detail-title .uri")).to_have_text("/api/open-me")


def test_with_the_os_in_dark_mode_the_status_page_is_dark_too(
    browser: Browser, contexts: Contexts, agent: AgentProcess, http_tunnel: dict[str, Any]
) -> None:
    send_traffic(http_tunnel["public_url"])
    page = new_page(browser, contexts, color_scheme="dark")
    page.goto(agent.api_url + "/status")
    expect(page.locator("canvas").first).to_be_visible()
    assert background(page, "body") < 0.2
    text = luminance(page.locator("body").evaluate("(node) => getComputedStyle(node).color"))
    assert text > 0.6
