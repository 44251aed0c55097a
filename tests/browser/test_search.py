"""Search in Chromium: the free-text box finds what the screen shows (a percent-encoded path, a
gzip body), ANDed with the structured filters, and a filter that cannot be read is reported."""

from __future__ import annotations

import gzip
import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.agent_process import AgentProcess

pytestmark = pytest.mark.browser


def paths(page: Page) -> list[str]:
    return page.locator("tr.capture-row td.col-path").all_inner_texts()


def test_the_free_text_box_finds_a_decoded_path_and_a_gzip_body(
    page: Page, agent: AgentProcess, http_tunnel: dict
) -> None:
    url = http_tunnel["public_url"]
    requests.get(url + "/json?name=J%C3%BCrgen", timeout=10)
    requests.post(
        url + "/hook",
        data=gzip.compress('{"user": "Jürgen"}'.encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=10,
    )
    requests.post(url + "/other", data=b"nobody here", timeout=10)
    page.goto(agent.api_url + "/inspect/http")
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.locator("tr.capture-row")).to_have_count(3)
    search = page.locator("#filter-q")
    search.fill("Jürgen")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q=J%C3%BCrgen"))
    expect(page.locator("tr.capture-row")).to_have_count(2)
    assert sorted(paths(page)) == ["/hook", "/json?name=J%C3%BCrgen"]
    expect(search).to_have_value("Jürgen")
    # The structured filters stay behind it: ANDed.
    page.locator("select[name=method]").select_option("POST")
    search.press("Enter")
    expect(page.locator("tr.capture-row")).to_have_count(1)
    assert paths(page) == ["/hook"]
    # A new matching request shows up live; a non-matching one does not.
    requests.post(url + "/live", data='{"who": "Jürgen"}'.encode(), timeout=10)
    requests.post(url + "/live-no", data=b"{}", timeout=10)
    expect(page.locator("tr.capture-row")).to_have_count(2)
    assert paths(page)[0] == "/live"


def test_a_filter_that_cannot_be_read_is_reported_on_the_page(
    page: Page, agent: AgentProcess, http_tunnel: dict
) -> None:
    requests.get(http_tunnel["public_url"] + "/x", timeout=10)
    page.goto(agent.api_url + "/inspect/http?duration_min=-1&stauts=404")
    errors = page.locator(".filter-errors li")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("'stauts' is not a filter (not applied)")
    expect(errors.nth(1)).to_contain_text("duration_min '-1': a number of milliseconds, 0 or more, is expected")
