"""The inspector in Chromium: live rows, detail tabs, replay, filters, export, clear, keys."""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

pytestmark = pytest.mark.browser


def rows(page: Page) -> Locator:
    return page.locator("tr.capture-row")


def row_for(page: Page, path: str) -> Locator:
    return page.locator(
        "tr.capture-row", has=page.locator("td.col-path", has_text=re.compile("^" + re.escape(path) + "$"))
    )


def open_inspector(page: Page, agent: AgentProcess, query: str = "") -> None:
    page.goto(agent.api_url + "/inspect/http" + query)
    expect(page.locator("#live-state")).to_have_text("live")


def test_requests_appear_live_without_a_reload(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    open_inspector(page, agent)
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#tunnel-urls")).to_contain_text(http_tunnel["public_url"])
    url = http_tunnel["public_url"]
    requests.get(url + "/live/one", timeout=10)
    requests.post(url + "/status/404", data=b"x", timeout=10)
    expect(rows(page)).to_have_count(2)
    # Newest first, status coloured by class, duration in ms with two decimals.
    expect(rows(page).nth(0).locator("td.col-path")).to_have_text("/status/404")
    expect(rows(page).nth(0).locator(".status")).to_have_class(re.compile(r"\bs4xx\b"))
    expect(rows(page).nth(1).locator(".status")).to_have_class(re.compile(r"\bs2xx\b"))
    expect(rows(page).nth(1).locator("td.col-duration")).to_have_text(
        re.compile(r"^(\d+ µs|\d+\.\d ms|\d+ ms|\d+\.\d\d s)$")
    )
    expect(page.locator("#empty-state")).to_be_hidden()


def test_each_detail_tab_of_request_and_response(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    url = http_tunnel["public_url"]
    requests.post(
        url + "/echo?debug=1&tag=a",
        data=b'{"user": "ada", "roles": ["admin"]}',
        headers={"Content-Type": "application/json", "X-Trace": "t-1"},
        timeout=10,
    )
    requests.post(url + "/broken", data=b'{"user": "ada",}', headers={"Content-Type": "application/json"}, timeout=10)
    open_inspector(page, agent)
    row_for(page, "/echo?debug=1&tag=a").click()
    request = page.locator("section.message.request")
    response = page.locator("section.message.response")
    # Summary: query parameters, pretty JSON body, size line.
    expect(request.locator("table.query-table")).to_contain_text("debug")
    expect(request.locator("pre.pretty.json")).to_contain_text('"roles": [\n    "admin"\n  ]')
    expect(request.locator(".size-line").first).to_contain_text("application/json")
    expect(response.locator("pre.pretty.json")).to_contain_text('"user": "ada"')
    # Headers.
    request.get_by_role("tab", name="Headers").click()
    expect(request.locator("table.headers-table")).to_contain_text("X-Trace")
    # Raw, with its download link.
    request.get_by_role("tab", name="Raw").click()
    expect(request.locator("pre.raw")).to_contain_text("POST /echo?debug=1&tag=a HTTP/1.1")
    with page.expect_download() as download:
        request.locator("a.download-raw").click()
    assert download.value.path().read_bytes().startswith(b"POST /echo?debug=1&tag=a HTTP/1.1\r\n")
    # Binary: 8 bytes a line with an ASCII column.
    response.get_by_role("tab", name="Binary").click()
    expect(response.locator("pre.hex")).to_contain_text('00000000  7b 22 75 73 65 72 22 3a  {"user":')
    # A JSON syntax error is located and highlighted.
    row_for(page, "/broken").click()
    page.locator("section.message.request").get_by_role("tab", name="Summary").click()
    expect(page.locator("section.message.request .syntax-error-message")).to_contain_text("line 1, column 16")
    expect(page.locator("section.message.request mark.syntax-error")).to_have_text("}")


def test_replay_by_key_adds_a_new_row(page: Page, agent: AgentProcess, upstream: Upstream, http_tunnel: dict) -> None:
    requests.post(http_tunnel["public_url"] + "/replay-me", data=b"again", timeout=10)
    open_inspector(page, agent)
    row_for(page, "/replay-me").click()
    expect(page.locator("#replay-button")).to_be_visible()
    received = len(upstream.received)
    page.keyboard.press("r")
    expect(row_for(page, "/replay-me")).to_have_count(2)
    assert len(upstream.received) == received + 1
    assert upstream.received[-1].body == b"again"
    page.locator("#replay-button").click()
    expect(row_for(page, "/replay-me")).to_have_count(3)


def test_replay_with_a_modified_body_reaches_the_upstream(
    page: Page, agent: AgentProcess, upstream: Upstream, http_tunnel: dict
) -> None:
    requests.post(
        http_tunnel["public_url"] + "/hooks/order",
        data=b'{"amount": 10}',
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=abc"},
        timeout=10,
    )
    open_inspector(page, agent)
    row_for(page, "/hooks/order").click()
    page.locator("#replay-edit-button").click()
    dialog = page.locator("#replay-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("textarea[name=body]")).to_have_value('{"amount": 10}')
    expect(dialog.locator(".signed-warning")).to_contain_text("X-Hub-Signature-256")
    expect(dialog.locator("select[name=tunnel_name]")).to_have_value("web")
    dialog.locator("input[name=target]").fill("/hooks/order?replayed=1")
    dialog.locator("textarea[name=body]").fill('{"amount": 9999}')
    dialog.locator("textarea[name=headers]").press("End")
    dialog.get_by_role("button", name="Replay").click()
    expect(dialog).to_be_hidden()
    expect(row_for(page, "/hooks/order?replayed=1")).to_have_count(1)
    got = upstream.received[-1]
    assert (got.path, got.body) == ("/hooks/order?replayed=1", b'{"amount": 9999}')
    assert got.header("Content-Length") == str(len(b'{"amount": 9999}'))
    # The new exchange is selected and says what it replays.
    expect(page.locator(".detail-meta .replay-of")).to_be_visible()


def test_filter_by_body_text_lives_in_the_url(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    url = http_tunnel["public_url"]
    requests.post(url + "/a", data=b"nothing here", timeout=10)
    requests.post(url + "/b", data=b"the magic-word is here", timeout=10)
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(2)
    page.locator("input[name=body]").fill("magic-word")
    page.locator("input[name=body]").press("Enter")
    expect(page).to_have_url(re.compile(r"body=magic-word"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first.locator("td.col-path")).to_have_text("/b")
    # A new matching request shows up live; a non-matching one does not.
    expect(page.locator("#live-state")).to_have_text("live")
    requests.post(url + "/c", data=b"again magic-word", timeout=10)
    requests.post(url + "/d", data=b"plain", timeout=10)
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first.locator("td.col-path")).to_have_text("/c")
    page.reload()
    expect(rows(page)).to_have_count(2)
    page.locator("#filter-reset").click()
    expect(rows(page)).to_have_count(4)


def test_har_export_of_the_filtered_list(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    url = http_tunnel["public_url"]
    requests.get(url + "/api/one", timeout=10)
    requests.get(url + "/api/two", timeout=10)
    requests.get(url + "/static/x", timeout=10)
    open_inspector(page, agent, "?path=/api/")
    expect(rows(page)).to_have_count(2)
    with page.expect_download() as download:
        page.locator("#export-har").click()
    har = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert har["log"]["version"] == "1.2"
    assert [entry["request"]["url"].rsplit("/", 1)[-1] for entry in har["log"]["entries"]] == ["one", "two"]


def test_copy_as_curl_and_clear(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    requests.post(http_tunnel["public_url"] + "/it's", data=b"body", timeout=10)
    open_inspector(page, agent)
    rows(page).first.click()
    page.locator("#curl-button").click()
    command = page.locator("#curl-dialog textarea")
    expect(command).to_have_value(re.compile(r"^curl -X POST '.*/it'\"'\"'s' .*--data-binary body$"))
    page.locator("#curl-dialog").get_by_role("button", name="Close").click()
    page.locator("#clear-button").click()
    expect(page.locator("#clear-button")).to_have_text("Really clear all?")
    page.locator("#clear-button").click()
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()
    assert agent.api("GET", "/api/requests/http").json()["requests"] == []


def test_keys_move_the_selection(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    for path in ("/one", "/two", "/three"):
        requests.get(http_tunnel["public_url"] + path, timeout=10)
    open_inspector(page, agent)
    expect(rows(page)).to_have_count(3)
    page.keyboard.press("j")
    expect(page.locator("tr.capture-row.selected td.col-path")).to_have_text("/three")
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    expect(page.locator("tr.capture-row.selected td.col-path")).to_have_text("/one")
    page.keyboard.press("k")
    expect(page.locator("tr.capture-row.selected td.col-path")).to_have_text("/two")
    expect(page.locator(".detail-title .uri")).to_have_text("/two")
