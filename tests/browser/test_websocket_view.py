"""A captured WebSocket in Chromium: the 101's detail lists its frames (direction, opcode, size),
shows the selected one as JSON, text or hex, and follows new frames live while it is open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import connect
from websockets.sync.server import Server

from tests.support.agent_process import AgentProcess
from tests.support.websocket_echo import websocket_echo

pytestmark = pytest.mark.browser


@pytest.fixture
def echo_service() -> Iterator[Server]:
    with websocket_echo() as server:
        yield server


def test_the_websocket_section_shows_the_frames_and_follows_them_live(
    page: Page, agent: AgentProcess, echo_service: Server
) -> None:
    port = echo_service.socket.getsockname()[1]
    tunnel = agent.start_tunnel(name="ws", proto="http", addr=str(port))
    url = tunnel["public_url"].replace("http://", "ws://") + "/chat"
    with connect(url, compression=None, open_timeout=10) as socket:
        socket.send('{"say":"hello","n":1}')
        assert socket.recv(timeout=5) == '{"say":"hello","n":1}'
        page.goto(agent.api_url + "/inspect/http")
        expect(page.locator("#live-state")).to_have_text("live")
        row = page.locator("tr.capture-row", has=page.locator("td.col-status .status", has_text="101"))
        row.click()
        section = page.locator("#detail section.websocket")
        expect(section.locator("h3")).to_have_text("WebSocket")
        frames = section.locator("li.ws-frame")
        expect(frames).to_have_count(2)
        expect(frames.nth(0).locator(".ws-dir")).to_have_text("↑")
        expect(frames.nth(1).locator(".ws-dir")).to_have_text("↓")
        expect(frames.nth(0).locator(".ws-opcode")).to_have_text("text")
        expect(frames.nth(0).locator(".ws-size")).to_have_text("21 B")
        # The first frame is selected and, being JSON, shown pretty-printed.
        expect(frames.nth(0)).to_have_attribute("aria-selected", "true")
        expect(section.locator(".ws-views [data-view=JSON]")).to_have_attribute("aria-selected", "true")
        expect(section.locator(".ws-payload")).to_have_text('{\n  "say": "hello",\n  "n": 1\n}')
        section.locator(".ws-views [data-view=Text]").click()
        expect(section.locator(".ws-payload")).to_have_text('{"say":"hello","n":1}')

        # Live: frames sent while the detail is open appear without a reload.
        socket.send(b"\x00\x01binary\xff")
        assert socket.recv(timeout=5) == b"\x00\x01binary\xff"
        expect(frames).to_have_count(4)
        expect(frames.nth(2).locator(".ws-opcode")).to_have_text("binary")
        frames.nth(3).click()
        section.locator(".ws-views [data-view=Hex]").click()
        expect(section.locator(".ws-payload")).to_contain_text("00 01 62 69 6e 61 72 79 ff")
        socket.close(code=1000, reason="bye")
    expect(frames).to_have_count(6)
    expect(frames.nth(4).locator(".ws-opcode")).to_have_text("close")
    expect(frames.nth(4).locator(".ws-preview")).to_have_text("1000 bye")
    expect(section.locator(".ws-totals")).to_contain_text("↑ 3 frames")


def test_a_capture_that_is_not_a_websocket_has_no_websocket_section(
    page: Page, agent: AgentProcess, echo_service: Server
) -> None:
    port = echo_service.socket.getsockname()[1]
    tunnel = agent.start_tunnel(name="ws", proto="http", addr=str(port))
    page.goto(agent.api_url + "/inspect/http")
    expect(page.locator("#live-state")).to_have_text("live")
    page.request.get(tunnel["public_url"] + "/")  # the echo service answers 426: no Upgrade
    row = page.locator("tr.capture-row", has=page.locator("td.col-status .status", has_text="426"))
    row.click()
    expect(page.locator("#detail .detail-title .status")).to_have_text("426")
    expect(page.locator("#detail section.websocket")).to_have_count(0)
