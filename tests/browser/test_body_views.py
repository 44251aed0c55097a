"""Body views in Chromium: JSON highlighted and folded, a big body checked whole, copy buttons,
multipart parts downloaded, the Binary tab, and a binary body in the replay editor."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

pytestmark = pytest.mark.browser


def open_capture(page: Page, agent: AgentProcess, path: str) -> None:
    page.goto(agent.api_url + "/inspect/http")
    expect(page.locator("#live-state")).to_have_text("live")
    rows = page.locator(
        "tr.capture-row", has=page.locator("td.col-path", has_text=re.compile("^" + re.escape(path) + "$"))
    )
    rows.first.click()  # the newest
    expect(page.locator(".detail-title .uri")).to_have_text(path, timeout=60_000)


@pytest.fixture
def clipboard_page(browser: Browser) -> Iterator[Page]:
    """A page whose context may read the clipboard (to check what the copy buttons put there)."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 900},
        accept_downloads=True,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_json_is_highlighted_and_folds_by_indentation(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    document = {"user": {"name": "ada", "roles": ["admin", "ops"]}, "count": 2}
    requests.post(http_tunnel["public_url"] + "/nested", json=document, timeout=10)
    open_capture(page, agent, "/nested")
    pre = page.locator("section.message.response pre.pretty.json")
    expect(pre).to_contain_text('"roles": [\n      "admin",\n      "ops"\n    ]')
    expect(pre.locator("span.hljs-attr").first).to_have_text('"user"')
    expect(pre.locator("span.hljs-string").first).to_have_text('"ada"')
    roles = pre.locator("span.line", has_text='"roles": [')
    admin = pre.locator("span.line", has_text='"admin"')
    roles.locator("span.fold").click()
    expect(admin).to_be_hidden()
    expect(roles).to_have_attribute("data-folded", "⋯ 2 lines")
    # Folding the outer object keeps the inner fold; opening it shows the inner one still folded.
    user = pre.locator("span.line", has_text='"user": {')
    user.locator("span.fold").click()
    expect(roles).to_be_hidden()
    user.locator("span.fold").click()
    expect(roles).to_be_visible()
    expect(admin).to_be_hidden()
    roles.locator("span.fold").click()
    expect(admin).to_be_visible()
    page.locator("section.message.response button.fold-all").click()
    expect(pre.locator("span.line:visible")).to_have_count(2)  # "{" and "}"
    page.locator("section.message.response button.unfold-all").click()
    expect(admin).to_be_visible()
    # The text read from the view is the body's, without fold marks or line numbers.
    assert json.loads(pre.inner_text()) == document


def test_an_868_kb_json_body_is_drawn_cut_and_not_called_a_syntax_error(
    page: Page, agent: AgentProcess, http_tunnel: dict
) -> None:
    row = {"name": "Jürgen", "n": [1, 2, 3], "ok": True}
    body = json.dumps([row] * 18_000, ensure_ascii=False).encode()
    assert len(body) > 868 * 1000
    requests.post(
        http_tunnel["public_url"] + "/big", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    started = time.monotonic()
    open_capture(page, agent, "/big")
    request = page.locator("section.message.request")
    expect(request.locator("pre.pretty.json")).to_be_visible(timeout=60_000)
    drawn = time.monotonic() - started
    expect(request.locator(".code-view .note")).to_have_text(
        "showing the first 524,288 characters of the formatted body"
    )
    expect(request.locator(".code-view .checked")).to_have_text(f"syntax checked over all {len(body):,} bytes")
    expect(page.locator(".syntax-error-message")).to_have_count(0)
    print(f"868 KB JSON: detail drawn {drawn:.2f} s after the click")  # measured, not asserted


def test_copy_buttons_copy_the_url_the_headers_and_the_whole_body(
    clipboard_page: Page, agent: AgentProcess, http_tunnel: dict
) -> None:
    page = clipboard_page
    body = json.dumps({"text": "x" * 600_000, "name": "Jürgen"}, ensure_ascii=False)
    requests.post(
        http_tunnel["public_url"] + "/copy?name=J%C3%BCrgen",
        data=body.encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "X-Trace": "t-1"},
        timeout=10,
    )
    open_capture(page, agent, "/copy?name=J%C3%BCrgen")
    request = page.locator("section.message.request")
    clipboard = "navigator.clipboard.readText()"
    request.locator("button.copy-url").click()
    expect(page.locator("#toast")).to_have_text("URL copied")
    host = http_tunnel["public_url"].split("://", 1)[1]
    assert page.evaluate(clipboard) == f"http://{host}/copy?name=J%C3%BCrgen"
    request.locator("button.copy-headers").click()
    expect(page.locator("#toast")).to_have_text("Headers copied")
    headers = page.evaluate(clipboard)
    assert "X-Trace: t-1" in headers.splitlines()
    assert headers.splitlines()[0].startswith("Host: ")
    # The whole body, though the view draws only its first part.
    request.locator("button.copy-body").click()
    expect(page.locator("#toast")).to_have_text("Body copied")
    assert page.evaluate(clipboard) == body


def test_multipart_parts_are_listed_and_each_downloads(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    pdf = b"%PDF-1.4\n\x00\xff\xfe binary"
    requests.post(
        http_tunnel["public_url"] + "/upload",
        data={"title": "Quarterly"},
        files={"report": ("résumé.pdf", pdf, "application/pdf")},
        timeout=10,
    )
    open_capture(page, agent, "/upload")
    table = page.locator("section.message.request table.multipart-table")
    title = table.locator("tr.multipart-part", has=page.locator("th", has_text="title"))
    report = table.locator("tr.multipart-part", has=page.locator("th", has_text="report"))
    expect(report.locator(".part-filename")).to_have_text("résumé.pdf")
    expect(report.locator(".part-type")).to_have_text("application/pdf")
    expect(report.locator(".part-size")).to_have_text(f"{len(pdf)} B")
    expect(table.locator(".part-value")).to_have_text("Quarterly")
    with page.expect_download() as download:
        report.locator("a.download-part").click()
    assert download.value.suggested_filename == "résumé.pdf"
    assert download.value.path().read_bytes() == pdf
    with page.expect_download() as field:
        title.locator("a.download-part").click()
    assert field.value.path().read_bytes() == b"Quarterly"


def test_the_binary_tab_prints_no_stray_null(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    requests.post(http_tunnel["public_url"] + "/bin", data=b"ABCDEFGHIJ", timeout=10)
    open_capture(page, agent, "/bin")
    response = page.locator("section.message.response")
    response.get_by_role("tab", name="Binary").click()
    pane = response.locator(".tab-pane[data-pane=Binary]")
    expect(pane.locator("pre.hex")).to_contain_text("00000000  41 42 43 44 45 46 47 48  ABCDEFGH")
    expect(pane).not_to_contain_text("null")
    # Nor anywhere else in the detail (a capture without a Traffic Policy section printed one too).
    expect(page.locator("#detail")).not_to_contain_text("null")
    assert pane.inner_text().startswith("10 bytes of body as it crossed, 8 bytes a line\n")


def test_a_binary_body_in_the_replay_editor_is_hex_and_goes_back_unchanged(
    page: Page, agent: AgentProcess, upstream: Upstream, http_tunnel: dict
) -> None:
    binary = bytes([0, 1, 2, 0xFF, 0xFE]) + "é".encode("latin-1") + b"\r\nend"
    requests.post(
        http_tunnel["public_url"] + "/hook",
        data=binary,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    open_capture(page, agent, "/hook")
    page.locator("#replay-edit-button").click()
    dialog = page.locator("#replay-dialog")
    box = dialog.locator(".binary-body")
    expect(box.locator(".binary-size")).to_contain_text(f"{len(binary)} bytes")
    expect(box.locator("pre.hex")).to_contain_text("00000000  00 01 02 ff fe e9 0d 0a  ........")
    expect(dialog.locator("textarea[name=body]")).to_be_hidden()
    dialog.get_by_role("button", name="Replay").click()
    expect(dialog).to_be_hidden()
    deadline = time.monotonic() + 10
    while upstream.received[-1].path != "/hook" or len([r for r in upstream.received if r.path == "/hook"]) < 2:
        assert time.monotonic() < deadline, "the replay did not reach the service"
        time.sleep(0.05)
    assert upstream.received[-1].body == binary
    # Edited as hex, the edit is what is sent.
    open_capture(page, agent, "/hook")
    page.locator("#replay-edit-button").click()
    box.locator("button.edit-hex").click()
    box.locator("textarea.hex-edit").fill("de ad be ef")
    dialog.get_by_role("button", name="Replay").click()
    expect(dialog).to_be_hidden()
    deadline = time.monotonic() + 10
    while upstream.received[-1].body != bytes.fromhex("deadbeef"):
        assert time.monotonic() < deadline, "the edited replay did not reach the service"
        time.sleep(0.05)


def test_a_text_body_with_crlf_goes_back_byte_for_byte_when_not_edited(
    page: Page, agent: AgentProcess, upstream: Upstream, http_tunnel: dict
) -> None:
    text = b"line one\r\nline two\r\n"
    requests.post(http_tunnel["public_url"] + "/crlf", data=text, headers={"Content-Type": "text/plain"}, timeout=10)
    open_capture(page, agent, "/crlf")
    page.locator("#replay-edit-button").click()
    dialog = page.locator("#replay-dialog")
    expect(dialog.locator("textarea[name=body]")).to_have_value("line one\nline two\n")
    dialog.get_by_role("button", name="Replay").click()
    expect(dialog).to_be_hidden()
    deadline = time.monotonic() + 10
    while len([r for r in upstream.received if r.path == "/crlf"]) < 2:
        assert time.monotonic() < deadline, "the replay did not reach the service"
        time.sleep(0.05)
    assert upstream.received[-1].body == text
