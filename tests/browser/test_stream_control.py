"""Control over the stream in Chromium: clear what is shown, pause, follow, pin, delete, jump.

Regression kept here: "Clear" on a filtered view cleared every capture.
"""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from tests.support.agent_process import AgentProcess

pytestmark = pytest.mark.browser


def rows(page: Page) -> Locator:
    return page.locator("#capture-rows tr.capture-row")


def paths(page: Page) -> Locator:
    return rows(page).locator("td.col-path")


def open_inspector(page: Page, agent: AgentProcess, query: str = "") -> None:
    page.goto(agent.api_url + "/inspect/http" + query)
    expect(page.locator("#live-state")).to_have_text("live")


def stored_paths(agent: AgentProcess) -> list[str]:
    return sorted(c["request"]["uri"] for c in agent.api("GET", "/api/requests/http").json()["requests"])


def send(url: str, *paths: str) -> None:
    session = requests.Session()
    for path in paths:
        session.get(url + path, timeout=10)


def test_clear_on_a_filtered_view_names_the_filtered_count_and_clears_only_those(
    page: Page, agent: AgentProcess, http_tunnel
) -> None:
    send(http_tunnel["public_url"], "/api/a", "/api/b", "/api/c", "/other/x", "/other/y")
    open_inspector(page, agent, "?path=/api/")
    expect(rows(page)).to_have_count(3)
    clear = page.locator("#clear-button")
    expect(clear).to_have_text("Clear 3 filtered")
    clear.click()
    expect(clear).to_have_text("Really clear 3 filtered?")
    clear.click()
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#toast")).to_have_text("Cleared 3 filtered captures")
    assert stored_paths(agent) == ["/other/x", "/other/y"]
    # Unfiltered, it says "all" and means it.
    open_inspector(page, agent)
    expect(clear).to_have_text("Clear all")
    clear.click()
    expect(clear).to_have_text("Really clear all?")
    clear.click()
    expect(rows(page)).to_have_count(0)
    assert stored_paths(agent) == []


def test_pause_holds_new_rows_back_and_resume_lets_them_in(page: Page, agent: AgentProcess, http_tunnel) -> None:
    send(http_tunnel["public_url"], "/before")
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(1)
    page.locator("#pause-button").click()
    expect(page.locator("#pause-button")).to_have_attribute("aria-pressed", "true")
    send(http_tunnel["public_url"], "/while-1", "/while-2")
    expect(page.locator("#stream-note")).to_contain_text("Paused · 2 new")
    expect(paths(page)).to_have_text(["/before"])
    page.locator("#stream-note button").click()
    expect(paths(page)).to_have_text(["/while-2", "/while-1", "/before"])
    expect(page.locator("#pause-button")).to_have_attribute("aria-pressed", "false")


def test_follow_newest_opens_each_new_capture(page: Page, agent: AgentProcess, http_tunnel) -> None:
    send(http_tunnel["public_url"], "/first")
    open_inspector(page, agent)
    page.locator("#follow-button").click()
    expect(page.locator(".detail-title .uri")).to_have_text("/first")
    send(http_tunnel["public_url"], "/second")
    expect(page.locator("tr.capture-row.selected td.col-path")).to_have_text("/second")
    expect(page.locator(".detail-title .uri")).to_have_text("/second")
    page.locator("#follow-button").click()
    send(http_tunnel["public_url"], "/third")
    expect(paths(page).first).to_have_text("/third")
    expect(page.locator("tr.capture-row.selected td.col-path")).to_have_text("/second")


def test_a_pinned_capture_stays_on_top_through_filters_reloads_and_clearing(
    page: Page, agent: AgentProcess, http_tunnel
) -> None:
    send(http_tunnel["public_url"], "/keep-me", "/noise")
    open_inspector(page, agent)
    page.locator("tr.capture-row", has_text="/keep-me").click()
    page.locator("#pin-button").click()
    pinned = page.locator("#pinned-rows tr.capture-row")
    expect(pinned.locator("td.col-path")).to_have_text("/keep-me")
    expect(pinned.locator("button.pin")).to_have_attribute("aria-pressed", "true")
    # New traffic lists below it.
    send(http_tunnel["public_url"], "/later")
    expect(paths(page).first).to_have_text("/later")
    expect(page.locator("tr.capture-row").first.locator("td.col-path")).to_have_text("/keep-me")
    # A filter it does not match, and a reload, keep it.
    open_inspector(page, agent, "?path=/noise")
    expect(pinned.locator("td.col-path")).to_have_text("/keep-me")
    expect(paths(page)).to_have_text(["/noise"])
    # Gone from the store, it stays listed, marked.
    agent.api("DELETE", "/api/requests/http")
    expect(rows(page)).to_have_count(0)
    expect(pinned).to_have_class(re.compile(r"\bgone\b"))
    page.reload()
    expect(pinned).to_have_class(re.compile(r"\bgone\b"))
    # Unpinned with its star.
    pinned.locator("button.pin").click()
    expect(pinned).to_have_count(0)


def test_delete_one_removes_it_from_every_open_inspector(page: Page, agent: AgentProcess, http_tunnel) -> None:
    send(http_tunnel["public_url"], "/stay", "/go")
    other = page.context.new_page()
    open_inspector(other, agent)
    open_inspector(page, agent)
    page.locator("tr.capture-row", has_text="/go").click()
    page.locator("#delete-button").click()
    expect(paths(page)).to_have_text(["/stay"])
    expect(paths(other)).to_have_text(["/stay"])
    assert stored_paths(agent) == ["/stay"]
    other.close()


def test_jump_to_a_time_starts_the_list_there_and_back_to_newest(page: Page, agent: AgentProcess, http_tunnel) -> None:
    send(http_tunnel["public_url"], "/t/1", "/t/2", "/t/3", "/t/4")
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(4)
    target = page.locator("tr.capture-row", has_text="/t/2")
    target.locator("td.col-time").click()  # selects it; the jump box starts from its time
    page.locator("#jump-time").click()
    expect(page.locator("#jump-time")).not_to_have_value("")
    page.locator("#jump-form button").click()
    expect(paths(page)).to_have_text(["/t/2", "/t/1"])
    expect(page.locator("#stream-note")).to_contain_text("From ")
    expect(page.locator(".detail-title .uri")).to_have_text("/t/2")
    # New captures wait while the list shows the past.
    send(http_tunnel["public_url"], "/t/5")
    page.locator("#stream-note button", has_text="Back to newest").click()
    expect(paths(page)).to_have_text(["/t/5", "/t/4", "/t/3", "/t/2", "/t/1"])
    expect(page.locator("#stream-note")).to_have_text("")
