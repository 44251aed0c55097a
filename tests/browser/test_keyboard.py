"""The inspector's keys in Chromium (mitmweb's model), and the detail fetch of a held key."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, Request, expect

from tests.support.agent_process import AgentProcess

pytestmark = pytest.mark.browser

DETAIL = re.compile(r"/inspect/captures/[^/]+\.json$")


def rows(page: Page) -> Locator:
    return page.locator("#capture-rows tr.capture-row")


def selected_path(page: Page) -> Locator:
    return page.locator("tr.capture-row.selected td.col-path")


def open_inspector(page: Page, agent: AgentProcess) -> None:
    page.goto(agent.api_url + "/inspect/http")
    expect(page.locator("#live-state")).to_have_text("live")


def send(url: str, paths: list[str]) -> None:
    session = requests.Session()
    for path in paths:
        session.get(url + path, timeout=10)


def test_moving_by_row_screen_and_to_the_ends(page: Page, agent: AgentProcess, http_tunnel) -> None:
    send(http_tunnel["public_url"], [f"/n/{n}" for n in range(60)])
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(60)
    page.keyboard.press("j")
    expect(selected_path(page)).to_have_text("/n/59")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("j")
    expect(selected_path(page)).to_have_text("/n/57")
    page.keyboard.press("k")
    page.keyboard.press("ArrowUp")
    expect(selected_path(page)).to_have_text("/n/59")
    page.keyboard.press("End")
    expect(selected_path(page)).to_have_text("/n/0")
    expect(page.locator("tr.capture-row.selected")).to_be_in_viewport()
    page.keyboard.press("Home")
    expect(selected_path(page)).to_have_text("/n/59")
    page.keyboard.press("PageDown")
    expect(selected_path(page)).not_to_have_text("/n/59")
    moved = int(selected_path(page).inner_text().rsplit("/", 1)[1])
    assert moved < 55  # a screenful, not a row
    expect(page.locator("tr.capture-row.selected")).to_be_in_viewport()
    page.keyboard.press("PageUp")
    expect(selected_path(page)).to_have_text("/n/59")
    # The detail follows once the keys rest, and the address names it.
    expect(page.locator(".detail-title .uri")).to_have_text("/n/59")
    expect(page).to_have_url(re.compile(r"#airt_"))


def test_tabs_by_number_copy_delete_pin_search_escape_and_help(page: Page, agent: AgentProcess, http_tunnel) -> None:
    send(http_tunnel["public_url"], ["/keep", "/doomed"])
    open_inspector(page, agent)
    page.keyboard.press("j")
    expect(page.locator(".detail-title .uri")).to_have_text("/doomed")
    # 2: the second tab of both sides (Headers), 1: back to the first.
    page.keyboard.press("2")
    expect(page.locator("section.message.request [role=tab][aria-selected=true]")).to_have_text("Headers")
    expect(page.locator("section.message.response [role=tab][aria-selected=true]")).to_have_text("Headers")
    page.keyboard.press("1")
    expect(page.locator("section.message.request [role=tab][aria-selected=true]")).to_have_text("Summary")
    # c: copy as curl.
    page.keyboard.press("c")
    expect(page.locator("#curl-dialog textarea")).to_have_value(re.compile(r"^curl \S*/doomed "))
    page.keyboard.press("Escape")
    expect(page.locator("#curl-dialog")).to_be_hidden()
    # d: delete it, here and in the store; the next row is selected.
    doomed_id = page.locator("tr.capture-row.selected").get_attribute("data-id")
    page.keyboard.press("d")
    expect(page.locator(f'tr.capture-row[data-id="{doomed_id}"]')).to_have_count(0)
    expect(selected_path(page)).to_have_text("/keep")
    stored = [c["id"] for c in agent.api("GET", "/api/requests/http").json()["requests"]]
    assert doomed_id not in stored and len(stored) == 1
    # p: pin.
    page.keyboard.press("p")
    expect(page.locator("#pinned-rows tr.capture-row td.col-path")).to_have_text("/keep")
    page.keyboard.press("p")
    expect(page.locator("#pinned-rows tr.capture-row")).to_have_count(0)
    # /: the search box; Esc leaves it and keys work again.
    page.keyboard.press("/")
    search = page.locator("#filter-q")
    expect(search).to_be_focused()
    page.keyboard.type("jk")
    expect(search).to_have_value("jk")
    page.keyboard.press("Escape")
    expect(search).not_to_be_focused()
    # ?: the keys, listed.
    page.keyboard.press("?")
    help_dialog = page.locator("#keys-dialog")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("copy as curl")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    # Esc with nothing open clears the selection.
    page.keyboard.press("Escape")
    expect(page.locator("tr.capture-row.selected")).to_have_count(0)


def test_holding_j_over_two_hundred_rows_fires_only_a_few_detail_fetches(
    browser: Browser, agent: AgentProcess, http_tunnel
) -> None:
    send(http_tunnel["public_url"], [f"/held/{n}" for n in range(210)])
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    # The page's clock and timers, so that a key repeats every 33 ms exactly.
    page.clock.install()
    try:
        open_inspector(page, agent)
        expect(rows(page)).to_have_count(100)
        page.locator("#load-older").scroll_into_view_if_needed()
        expect(rows(page)).to_have_count(200)
        page.locator("#load-older").scroll_into_view_if_needed()
        expect(rows(page)).to_have_count(210)
        page.locator("#list-scroll").evaluate("(box) => { box.scrollTop = 0; }")
        rows(page).first.click()
        expect(page.locator(".detail-title .uri")).to_have_text("/held/209")
        fetched: list[str] = []

        def on_request(request: Request) -> None:
            if DETAIL.search(request.url):
                fetched.append(request.url)

        page.on("request", on_request)
        # From here on the page's time moves only when the test moves it.
        page.clock.pause_at(page.evaluate("() => Date.now()") + 100)
        # A held j as the browser sends it: a first keydown, then an auto-repeat every 33 ms.
        # Dispatched in the page, so each one is handled before the clock moves on.
        for n in range(200):
            page.evaluate(
                "(repeat) => document.dispatchEvent(new KeyboardEvent('keydown', {key: 'j', repeat, bubbles: true}))",
                n > 0,
            )
            page.clock.run_for(33)
        page.evaluate("() => document.dispatchEvent(new KeyboardEvent('keyup', {key: 'j', bubbles: true}))")
        expect(selected_path(page)).to_have_text("/held/9")
        page.clock.run_for(1000)
        expect(page.locator(".detail-title .uri")).to_have_text("/held/9")
        assert 1 <= len(fetched) <= 3, fetched
    finally:
        context.close()
