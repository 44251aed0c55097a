"""The capture list in Chromium: columns, widths, the sticky header, sorting, replays marked and linked.

Regressions kept here: `DELETE` and `1.9 MB` were cut at 1400 px; the column header scrolled away;
after `r` the toast named the original and the new row looked the same as it.
"""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.agent_process import AgentProcess

pytestmark = pytest.mark.browser


def rows(page: Page) -> Locator:
    return page.locator("#capture-rows tr.capture-row")


def row_for(page: Page, path: str) -> Locator:
    return page.locator(
        "tr.capture-row", has=page.locator("td.col-path", has_text=re.compile("^" + re.escape(path) + "$"))
    )


def open_inspector(page: Page, agent: AgentProcess, query: str = "") -> None:
    page.goto(agent.api_url + "/inspect/http" + query)
    expect(page.locator("#live-state")).to_have_text("live")


def fits(cell: Locator) -> bool:
    """Whether the cell shows its whole text (nothing cut or ellipsed)."""
    return bool(cell.evaluate("(td) => td.scrollWidth <= td.clientWidth && td.getClientRects().length > 0"))


def test_rows_show_tunnel_and_absolute_time_to_the_millisecond(page: Page, agent: AgentProcess, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/when", timeout=10)
    open_inspector(page, agent)
    row = row_for(page, "/when")
    expect(row.locator("td.col-time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
    expect(row.locator("td.col-tunnel")).to_have_text("web")
    host = http_tunnel["public_url"].split("://", 1)[1]
    expect(row.locator("td.col-tunnel")).to_have_attribute("title", f"web · {host}")
    # How long ago, on hover.
    row.locator("td.col-time").hover()
    expect(row.locator("td.col-time")).to_have_attribute(
        "title", re.compile(r"^(just now|\d+s ago) · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
    )


@pytest.mark.parametrize("width", [1400, 1100, 900, 390])
def test_delete_and_a_megabyte_size_fit_their_columns(
    browser: Browser, agent: AgentProcess, http_tunnel, width
) -> None:
    url = http_tunnel["public_url"]
    requests.delete(url + "/api/users/7", timeout=10)
    requests.get(url + "/bytes/2000000", timeout=30)
    requests.options(url + "/api/users", timeout=10)
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        open_inspector(page, agent)
        expect(rows(page)).to_have_count(3)
        delete = row_for(page, "/api/users/7").locator("td.col-method")
        options = row_for(page, "/api/users").locator("td.col-method")
        size = row_for(page, "/bytes/2000000").locator("td.col-size")
        expect(delete).to_have_text("DELETE")
        expect(size).to_have_text("1.9 MB")
        assert fits(delete), f"DELETE is cut at {width} px"
        assert fits(options), f"OPTIONS is cut at {width} px"
        assert fits(size), f"1.9 MB is cut at {width} px"
        # The time keeps its milliseconds at every width.
        assert fits(row_for(page, "/api/users/7").locator("td.col-time"))
    finally:
        context.close()


def test_the_column_header_stays_in_view_while_the_list_scrolls(page: Page, agent: AgentProcess, http_tunnel) -> None:
    session = requests.Session()
    for n in range(80):
        session.get(http_tunnel["public_url"] + f"/many/{n}", timeout=10)
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(80)
    header = page.locator("table.captures thead th.col-path")
    before = header.bounding_box()
    assert before is not None
    top_before = before["y"]
    page.locator("#list-scroll").evaluate("(box) => { box.scrollTop = box.scrollHeight; }")
    expect(row_for(page, "/many/0")).to_be_in_viewport()
    box = header.bounding_box()
    assert box is not None and abs(box["y"] - top_before) < 1
    expect(header).to_be_in_viewport()
    # The header still sorts from there.
    header.locator("button").click()
    expect(page.locator("th.col-path")).to_have_attribute("aria-sort", "ascending")


def test_sorting_by_a_column_asks_the_server_and_says_so_in_the_address(
    page: Page, agent: AgentProcess, http_tunnel
) -> None:
    url = http_tunnel["public_url"]
    for size in (300, 5000, 40, 1200):
        requests.get(url + f"/bytes/{size}", timeout=10)
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(4)
    page.locator("th.col-size button").click()
    expect(page).to_have_url(re.compile(r"[?&]sort=-size"))
    expect(page.locator("th.col-size")).to_have_attribute("aria-sort", "descending")
    expect(rows(page).locator("td.col-path")).to_have_text(["/bytes/5000", "/bytes/1200", "/bytes/300", "/bytes/40"])
    page.locator("th.col-size button").click()
    expect(page).to_have_url(re.compile(r"[?&]sort=size"))
    expect(rows(page).locator("td.col-path")).to_have_text(["/bytes/40", "/bytes/300", "/bytes/1200", "/bytes/5000"])
    # A reload keeps the order; a new capture goes to its place in it.
    page.reload()
    expect(rows(page).locator("td.col-path").first).to_have_text("/bytes/40")
    expect(page.locator("#live-state")).to_have_text("live")
    requests.get(url + "/bytes/700", timeout=10)
    expect(rows(page).locator("td.col-path")).to_have_text(
        ["/bytes/40", "/bytes/300", "/bytes/700", "/bytes/1200", "/bytes/5000"]
    )
    # Back to newest first: the default leaves the address.
    page.locator("th.col-time button").click()
    expect(page).not_to_have_url(re.compile(r"sort="))
    expect(rows(page).locator("td.col-path").first).to_have_text("/bytes/700")


def test_r_opens_the_new_capture_marked_as_a_replay_and_the_toast_names_it(
    page: Page, agent: AgentProcess, http_tunnel
) -> None:
    requests.post(http_tunnel["public_url"] + "/replay-me", data=b"again", timeout=10)
    open_inspector(page, agent)
    original = row_for(page, "/replay-me")
    original.click()
    original_id = original.get_attribute("data-id")
    assert original_id
    original = page.locator(f'tr.capture-row[data-id="{original_id}"]')
    page.keyboard.press("r")
    expect(row_for(page, "/replay-me")).to_have_count(2)
    selected = page.locator("tr.capture-row.selected")
    expect(selected).not_to_have_attribute("data-id", original_id)
    new_id = selected.get_attribute("data-id")
    assert new_id and new_id != original_id
    # Named in the toast; the address and the detail are the new capture's.
    expect(page.locator("#toast")).to_contain_text(f"new capture {new_id}")
    expect(page).to_have_url(re.compile("#" + new_id + "$"))
    expect(page.locator(".detail-meta .replay-of a")).to_have_text(original_id)
    # The new row does not look like the original: it is marked and links to it; the original
    # links to its replay.
    expect(selected).to_have_class(re.compile(r"\breplay\b"))
    expect(selected.locator("a.replay-mark")).to_have_attribute("href", "#" + original_id)
    expect(original.locator("a.replay-mark")).to_have_count(0)
    expect(original.locator("a.replayed-mark")).to_have_text("↻1")
    expect(original.locator("a.replayed-mark")).to_have_attribute("href", "#" + new_id)
    # Following the links goes both ways.
    selected.locator("a.replay-mark").click()
    expect(page.locator(f'tr.capture-row.selected[data-id="{original_id}"]')).to_have_count(1)
    expect(page.locator(".detail-meta .replay-links")).to_contain_text("replayed as")
    page.locator(".detail-meta a.replayed-as-link").click()
    expect(page.locator(f'tr.capture-row.selected[data-id="{new_id}"]')).to_have_count(1)
    # Still marked after a reload (the stored row says what it replays).
    page.reload()
    expect(page.locator(f'tr.capture-row[data-id="{new_id}"] a.replay-mark')).to_have_count(1)
