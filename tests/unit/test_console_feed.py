"""The console's feed: live captures through the channel layer group, tunnels from the runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import InMemoryChannelLayer

from agentapi import runtime
from agentapi.console.feed import CAPTURES_GROUP, ConsoleFeed
from agentapi.console.model import ConsoleModel


@dataclass
class Tunnel:
    name: str
    public_url: str = "https://127.0.0.1:40001"
    addr: str = "http://localhost:8080"
    proto: str = "https"
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)


class Runtime:
    """Stands for AgentRuntime.tunnels: what runs, and how often it was asked."""

    def __init__(self, *names: str) -> None:
        self.running = [Tunnel(name) for name in names]
        self.asked = 0

    async def tunnels(self) -> list[Tunnel]:
        self.asked += 1
        return list(self.running)


def stored(tunnel: str, id: str, status: int | None = 200) -> dict[str, Any]:
    row = {"id": id, "tunnel_name": tunnel, "start": 1.0, "method": "GET", "uri": "/", "status_code": status}
    return {"type": "captures.stored", "created": [{**row, "remote_addr": "127.0.0.1"}], "updated": [], "evicted": []}


async def changed(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), 5)
    event.clear()


def test_the_console_listens_on_the_group_the_runtime_announces_captures_to() -> None:
    assert CAPTURES_GROUP == runtime.CAPTURES_GROUP


async def test_an_announced_capture_reaches_the_model_and_asks_for_a_redraw() -> None:
    layer = InMemoryChannelLayer()
    model = ConsoleModel(version="3.30.0", web_url="http://x")
    redraw = asyncio.Event()
    feed = ConsoleFeed(model, Runtime("web").tunnels, layer, redraw.set)
    await feed.start()
    try:
        await changed(redraw)  # the tunnels taken at start
        await layer.group_send(CAPTURES_GROUP, stored("web", "airt_1"))
        await changed(redraw)
        assert [row.id for row in model.view().requests] == ["airt_1"]
    finally:
        await feed.close()


async def test_a_capture_of_a_tunnel_started_a_moment_ago_takes_the_tunnels_again_and_is_listed() -> None:
    layer = InMemoryChannelLayer()
    model = ConsoleModel(version="3.30.0", web_url="http://x")
    agent = Runtime("web")
    redraw = asyncio.Event()
    feed = ConsoleFeed(model, agent.tunnels, layer, redraw.set, tunnel_interval=3600)
    await feed.start()
    try:
        agent.running.append(Tunnel("api", public_url="https://127.0.0.1:40002"))  # after the last poll
        await layer.group_send(CAPTURES_GROUP, stored("api", "airt_2"))
        while not model.view().requests:
            await changed(redraw)
        assert agent.asked == 2
        assert [f.public_url for f in model.view().forwarding] == ["https://127.0.0.1:40001", "https://127.0.0.1:40002"]
    finally:
        await feed.close()


async def test_captures_of_another_agents_tunnels_are_left_out() -> None:
    layer = InMemoryChannelLayer()
    model = ConsoleModel(version="3.30.0", web_url="http://x")
    redraw = asyncio.Event()
    feed = ConsoleFeed(model, Runtime("web").tunnels, layer, redraw.set, tunnel_interval=3600)
    await feed.start()
    try:
        await changed(redraw)  # the tunnels taken at start
        await layer.group_send(CAPTURES_GROUP, stored("theirs", "airt_9"))
        await layer.group_send(CAPTURES_GROUP, stored("web", "airt_1"))
        await changed(redraw)
        assert [row.id for row in model.view().requests] == ["airt_1"]
    finally:
        await feed.close()


async def test_the_tunnels_are_taken_again_every_interval() -> None:
    agent = Runtime("web")
    model = ConsoleModel(version="3.30.0", web_url="http://x")
    redraw = asyncio.Event()
    feed = ConsoleFeed(model, agent.tunnels, None, redraw.set, tunnel_interval=0.01)
    await feed.start()
    try:
        await changed(redraw)
        agent.running.append(Tunnel("api", public_url="https://127.0.0.1:40002"))
        await changed(redraw)
        assert [f.public_url for f in model.view().forwarding] == ["https://127.0.0.1:40001", "https://127.0.0.1:40002"]
    finally:
        await feed.close()


class JoinWatchingLayer(InMemoryChannelLayer):
    def __init__(self) -> None:
        super().__init__()
        self.joined = asyncio.Event()

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        self.joined.set()


async def test_an_expired_group_membership_is_renewed() -> None:
    layer = JoinWatchingLayer()
    model = ConsoleModel(version="3.30.0", web_url="http://x")
    feed = ConsoleFeed(model, Runtime("web").tunnels, layer, lambda: None, tunnel_interval=3600, rejoin_seconds=0.01)
    await feed.start()
    try:
        [channel] = layer.groups[CAPTURES_GROUP]
        await layer.group_discard(CAPTURES_GROUP, channel)  # as Channels' group_expiry does
        layer.joined.clear()
        await changed(layer.joined)
        assert channel in layer.groups[CAPTURES_GROUP]
    finally:
        await feed.close()


async def test_closing_leaves_the_group() -> None:
    layer = InMemoryChannelLayer()
    feed = ConsoleFeed(ConsoleModel(version="3.30.0", web_url="http://x"), Runtime().tunnels, layer, lambda: None)
    await feed.start()
    assert layer.groups[CAPTURES_GROUP]
    await feed.close()
    assert not layer.groups.get(CAPTURES_GROUP)


class Announcer:
    """Stands for the runtime's in-process hook: add_capture_listener(listener) -> remove."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def add_capture_listener(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def announce(self, message: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(message)


async def test_with_the_runtimes_hook_captures_are_heard_in_process_and_the_layer_is_left_alone() -> None:
    layer = InMemoryChannelLayer()
    announcer = Announcer()
    model = ConsoleModel(version="3.30.0", web_url="http://x")
    redraw = asyncio.Event()
    feed = ConsoleFeed(model, Runtime("web").tunnels, layer, redraw.set, subscribe=announcer.add_capture_listener)
    await feed.start()
    try:
        await changed(redraw)  # the tunnels taken at start
        assert not layer.groups.get(CAPTURES_GROUP)  # no copies queued for the console
        announcer.announce(stored("web", "airt_1"))
        assert [row.id for row in model.view().requests] == ["airt_1"]  # at once, on the loop
    finally:
        await feed.close()
    assert announcer.listeners == []


async def test_through_the_hook_a_new_tunnels_capture_waits_for_the_tunnels_then_is_listed() -> None:
    announcer = Announcer()
    agent = Runtime("web")
    model = ConsoleModel(version="3.30.0", web_url="http://x")
    redraw = asyncio.Event()
    feed = ConsoleFeed(
        model, agent.tunnels, None, redraw.set, subscribe=announcer.add_capture_listener, tunnel_interval=3600
    )
    await feed.start()
    try:
        await changed(redraw)
        agent.running.append(Tunnel("api", public_url="https://127.0.0.1:40002"))
        announcer.announce(stored("api", "airt_2"))
        while not model.view().requests:
            await changed(redraw)
        assert agent.asked == 2
    finally:
        await feed.close()
