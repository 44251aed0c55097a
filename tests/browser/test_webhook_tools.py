"""The webhook tools in Chromium against a real agent: copy as fetch (run in the page), HTTPie and
requests; replay with re-signing through a tunnel's verify-webhook; the diff of a replay and its
original; mark-and-diff; HAR import from the status page."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

pytestmark = pytest.mark.browser

SECRET = "whsec_browser_secret"
BODY = b'{"id": "evt_1", "type": "invoice.paid", "data": {"amount": 4200}}'


def open_capture(page: Page, agent: AgentProcess, path: str) -> None:
    page.goto(agent.api_url + "/inspect/http")
    expect(page.locator("#live-state")).to_have_text("live")
    page.locator(
        "tr.capture-row", has=page.locator("td.col-path", has_text=re.compile("^" + re.escape(path) + "$"))
    ).first.click()
    expect(page.locator("#resign-button")).to_be_visible()


def test_copy_as_fetch_is_javascript_that_sends_the_same_request(
    page: Page, agent: AgentProcess, http_tunnel: dict, upstream: Upstream
) -> None:
    url = http_tunnel["public_url"]
    headers = {"Content-Type": "application/json", "X-Quote": "a 'b' \"c\" `x` $HOME", "X-User": "Andr\u00e9"}
    requests.post(url + "/hooks/fetch", data=BODY, headers={k: v.encode() for k, v in headers.items()}, timeout=10)
    open_capture(page, agent, "/hooks/fetch")
    page.locator("#copy-as-menu summary").click()
    page.locator('#copy-as-menu [data-language="fetch"]').click()
    area = page.locator("#copy-as-dialog textarea")
    expect(area).to_have_value(re.compile(r"^fetch\(", re.MULTILINE))
    code = area.input_value()
    # Run it where a page of the tunnel's own origin would: the request crosses the tunnel again.
    upstream.received.clear()
    other = page.context.new_page()
    other.goto(url + "/status/200")  # a text page of the tunnel's origin
    other.evaluate("(code) => new Function(code)()", code)
    deadline = time.monotonic() + 10
    while not any(r.path == "/hooks/fetch" for r in upstream.received) and time.monotonic() < deadline:
        other.wait_for_timeout(50)
    sent = next(r for r in upstream.received if r.path == "/hooks/fetch")
    assert (sent.method, sent.body) == ("POST", BODY)
    assert sent.header("X-Quote") == headers["X-Quote"]
    # http.server reads header bytes as Latin-1: the UTF-8 bytes of André arrived unchanged.
    assert sent.header("X-User") == "André".encode().decode("latin-1")
    other.close()


def test_copy_as_httpie_and_requests_show_in_the_dialog(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    requests.post(http_tunnel["public_url"] + "/hooks/copy", data=BODY, timeout=10)
    open_capture(page, agent, "/hooks/copy")
    area = page.locator("#copy-as-dialog textarea")
    page.locator("#copy-as-menu summary").click()
    page.locator('#copy-as-menu [data-language="httpie"]').click()
    expect(area).to_have_value(re.compile(r"^http --ignore-stdin --raw "))
    page.locator('#copy-as-dialog button[value="close"]').click()
    page.locator("#copy-as-menu summary").click()
    page.locator('#copy-as-menu [data-language="requests"]').click()
    expect(area).to_have_value(re.compile(r"^import requests\n"))


def _stripe_signature(at: int, body: bytes) -> str:
    return f"t={at},v1=" + hmac.new(SECRET.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()


def test_replay_with_re_signing_passes_verify_webhook_and_diffs_against_the_original(
    page: Page, agent: AgentProcess, upstream: Upstream
) -> None:
    policy = (
        "on_http_request:\n  - actions:\n      - type: verify-webhook\n"
        f"        config: {{provider: stripe, secret: {SECRET}}}\n"
    )
    url = agent.start_tunnel(name="stripe", proto="http", addr=str(upstream.port), traffic_policy=policy)["public_url"]
    stale = {"Stripe-Signature": _stripe_signature(int(time.time()) - 3600, BODY), "Content-Type": "application/json"}
    assert requests.post(url + "/hooks/stripe", data=BODY, headers=stale, timeout=10).status_code == 403
    open_capture(page, agent, "/hooks/stripe")
    page.locator("#resign-button").click()
    dialog = page.locator("#resign-dialog")
    expect(dialog.locator('[name="provider"]')).to_have_value("stripe")  # guessed from Stripe-Signature
    dialog.locator('[name="secret"]').fill(SECRET)
    body = dialog.locator('[name="body"]')
    body.fill(body.input_value().replace("4200", "9900"))
    dialog.locator('[name="through_policy"]').check()
    upstream.received.clear()
    dialog.locator('button[value="send"]').click()
    result = dialog.locator(".resign-result")
    expect(result).to_have_attribute("data-status", "200")
    assert upstream.received[-1].body == BODY.replace(b"4200", b"9900")
    # The original and the re-signed replay, side by side.
    dialog.locator(".resigned-diff").click()
    expect(page).to_have_url(re.compile(r"/inspect/diff\?"))
    request = page.locator('section.diff-side[data-part="request"]')
    expect(request.locator(".diff-verdict")).to_have_text("different")
    expect(request.locator("table.diff-json-changes tr.change-changed th")).to_have_text("$.data.amount")
    expect(request.locator("table.diff-headers tr.change-changed th", has_text="Stripe-Signature")).to_have_count(1)
    response = page.locator('section.diff-side[data-part="response"]')
    expect(response.locator(".diff-start.changed code.a")).to_have_text(re.compile(r"^HTTP/1.1 403"))
    expect(response.locator(".diff-start.changed code.b")).to_have_text(re.compile(r"^HTTP/1.1 200"))
    # The secret went nowhere it could be read back: not into the page.
    assert SECRET not in page.content()


def test_a_replay_offers_the_diff_with_its_original(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    requests.post(http_tunnel["public_url"] + "/hooks/replayed", data=BODY, timeout=10)
    open_capture(page, agent, "/hooks/replayed")
    expect(page).to_have_url(re.compile(r"#airt_"))  # the open capture is in the address
    original = page.url.rsplit("#", 1)[1]
    page.locator("#replay-button").click()
    expect(page.locator("tr.capture-row.replay")).to_have_count(1)
    page.locator("tr.capture-row.replay").click()
    page.locator("#diff-original").click()
    expect(page.locator('.diff-capture[data-side="a"] .capture-id')).to_have_text(original)
    # The same bytes sent again, answered by the same echo.
    expect(page.locator('section.diff-side[data-part="response"] .diff-body .diff-same')).to_be_visible()
    page.locator("#only-changes").check()
    expect(page.locator("#diff")).to_have_class(re.compile(r"\bonly-changes\b"))


def test_mark_one_capture_then_diff_another_with_it(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    url = http_tunnel["public_url"]
    requests.post(url + "/first", data=b'{"a": 1}', headers={"Content-Type": "application/json"}, timeout=10)
    requests.post(url + "/second", data=b'{"a": 2}', headers={"Content-Type": "application/json"}, timeout=10)
    open_capture(page, agent, "/first")
    page.locator("#mark-for-diff").click()
    expect(page.locator("#mark-for-diff")).to_have_text("Marked for diff")
    page.locator("tr.capture-row", has=page.locator("td.col-path", has_text="/second")).click()
    page.locator("#diff-marked").click()
    changes = page.locator('section.diff-side[data-part="request"] table.diff-json-changes')
    expect(changes.locator("tr.change-changed td.a")).to_have_text("1")
    expect(changes.locator("tr.change-changed td.b")).to_have_text("2")


def test_a_har_file_is_imported_from_the_status_page(page: Page, agent: AgentProcess, tmp_path: Path) -> None:
    har = {
        "log": {
            "version": "1.2",
            "creator": {"name": "browser", "version": "1"},
            "entries": [
                {
                    "startedDateTime": "2025-03-04T05:06:07.000Z",
                    "time": 12.5,
                    "request": {
                        "method": "POST",
                        "url": "https://api.example.com/hooks/imported",
                        "headers": [],
                        "postData": {"mimeType": "application/json", "text": '{"imported": true}'},
                    },
                    "response": {
                        "status": 202,
                        "statusText": "Accepted",
                        "headers": [],
                        "content": {"mimeType": "text/plain", "text": "queued"},
                    },
                }
            ],
        }
    }
    path = tmp_path / "session.har"
    path.write_text(json.dumps(har))
    bad = tmp_path / "broken.har"
    bad.write_text('{"log": {"entries": [{"request": {}}]}}')
    page.goto(agent.api_url + "/status")
    page.locator("#import-file").set_input_files(bad)
    expect(page.locator("#import-result")).to_have_text("Not imported: entry 1: response is missing")
    page.locator("#import-file").set_input_files(path)
    result = page.locator("#import-result")
    expect(result).to_have_text(re.compile("^Imported 1 capture as “imported: session.har”"))
    expect(page.locator("#storage-line")).to_have_text(re.compile(r"^1 capture, "))
    result.locator("a").click()
    row = page.locator("tr.capture-row")
    expect(row).to_have_count(1)
    expect(row.locator("td.col-tunnel")).to_have_text("imported: session.har")
    expect(row.locator("td.col-path")).to_have_text("/hooks/imported")
