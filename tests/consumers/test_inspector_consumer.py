"""The inspector WebSocket: deltas from the channel layer, metrics pushes, and who may connect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator

import agentapi.runtime
from agentapi.runtime import TunnelInfo
from dashboard.asgi import application
from dashboard.inspector.consumers import InspectorConsumer

pytestmark = [pytest.mark.django_db(transaction=True)]

LOCAL = [(b"host", b"127.0.0.1:4040"), (b"origin", b"http://127.0.0.1:4040")]


def summary(capture_id: str, status: int | None = 200) -> dict[str, Any]:
    return {
        "id": capture_id,
        "tunnel_name": "web",
        "start": 1700000000.5,
        "duration_ns": 1_500_000,
        "method": "GET",
        "uri": "/hello",
        "status_code": status,
        "request_size": 80,
        "response_size": 120,
        "remote_addr": "127.0.0.1",
    }


@pytest.fixture(autouse=True)
def fresh_layer(settings: Any) -> None:
    # These tests look inside the in-memory layer (its groups), also where CI sets REDIS_URL; the
    # Redis layer itself is exercised end to end by tests/services.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # The in-memory layer holds asyncio queues: each test loop gets its own.
    channel_layers.backends.clear()


def memory_layer() -> InMemoryChannelLayer:
    """The layer `fresh_layer` configured: these tests look inside its groups."""
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    return layer


@pytest.fixture
def no_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agentapi.runtime, "_current", None)


@pytest.fixture
async def socket(no_metrics: None) -> AsyncIterator[WebsocketCommunicator]:
    communicator = WebsocketCommunicator(application, "/ws/inspector", headers=LOCAL)
    connected, _ = await communicator.connect()
    assert connected
    yield communicator
    await communicator.disconnect()


async def test_it_turns_a_stored_batch_into_created_updated_and_evicted_deltas(socket) -> None:
    layer = memory_layer()
    await layer.group_send(
        "captures",
        {
            "type": "captures.stored",
            "created": [summary("airt_2", None)],
            "updated": [summary("airt_1")],
            "evicted": ["airt_0"],
        },
    )
    assert await socket.receive_json_from() == {"type": "capture.created", "capture": summary("airt_2", None)}
    assert await socket.receive_json_from() == {"type": "capture.updated", "capture": summary("airt_1")}
    assert await socket.receive_json_from() == {"type": "captures.evicted", "ids": ["airt_0"]}
    assert await socket.receive_nothing()


async def test_it_sends_nothing_for_an_empty_batch(socket) -> None:
    await memory_layer().group_send(
        "captures", {"type": "captures.stored", "created": [], "updated": [], "evicted": []}
    )
    assert await socket.receive_nothing()


async def test_it_forwards_clear(socket) -> None:
    await memory_layer().group_send("captures", {"type": "captures.cleared"})
    assert await socket.receive_json_from() == {"type": "captures.cleared"}


async def test_it_forwards_tunnel_start_and_stop(socket) -> None:
    layer = memory_layer()
    await layer.group_send("tunnels", {"type": "tunnel.started", "name": "web"})
    assert await socket.receive_json_from() == {"type": "tunnel.started", "name": "web", "tunnel": None}
    await layer.group_send("tunnels", {"type": "tunnel.stopped", "name": "web"})
    assert await socket.receive_json_from() == {"type": "tunnel.stopped", "name": "web", "tunnel": None}


async def test_it_answers_ping(socket) -> None:
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from() == {"type": "pong"}


class FakeRuntime:
    """The runtime facade's read side: one tunnel whose counts grow with every snapshot."""

    web_allow_hosts = ()

    def __init__(self) -> None:
        self.count = 0

    async def tunnel(self, name: str) -> TunnelInfo | None:
        return self._info() if name == "web" else None

    async def tunnels(self) -> list[TunnelInfo]:
        return [self._info()]

    def _info(self) -> TunnelInfo:
        self.count += 1
        return TunnelInfo(
            name="web",
            public_url="http://127.0.0.1:5555",
            proto="http",
            addr="http://localhost:8080",
            inspect=True,
            upstream_host="localhost:8080",
            metrics={"conns": {"count": self.count, "gauge": 1}, "http": {"count": self.count}},
        )


def fake_runtime() -> FakeRuntime:
    return FakeRuntime()


async def test_it_pushes_metrics_of_the_running_tunnels_every_interval(monkeypatch) -> None:
    monkeypatch.setattr(agentapi.runtime, "_current", fake_runtime())
    monkeypatch.setattr(InspectorConsumer, "metrics_interval", 0.05)
    communicator = WebsocketCommunicator(application, "/ws/inspector", headers=LOCAL)
    assert (await communicator.connect())[0]
    first = await communicator.receive_json_from()
    second = await communicator.receive_json_from()
    await communicator.disconnect()
    assert first["type"] == second["type"] == "metrics.updated"
    tunnel = first["tunnels"][0]
    assert (tunnel["name"], tunnel["public_url"], tunnel["proto"], tunnel["addr"]) == (
        "web",
        "http://127.0.0.1:5555",
        "http",
        "http://localhost:8080",
    )
    assert second["tunnels"][0]["metrics"]["http"]["count"] > tunnel["metrics"]["http"]["count"]
    assert second["time"] >= first["time"]


async def test_a_started_tunnel_comes_with_its_config(monkeypatch) -> None:
    monkeypatch.setattr(agentapi.runtime, "_current", fake_runtime())
    monkeypatch.setattr(InspectorConsumer, "metrics_interval", 3600)
    communicator = WebsocketCommunicator(application, "/ws/inspector", headers=LOCAL)
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "metrics.updated"
    await memory_layer().group_send("tunnels", {"type": "tunnel.started", "name": "web"})
    message = await communicator.receive_json_from()
    await communicator.disconnect()
    assert message["tunnel"]["public_url"] == "http://127.0.0.1:5555"


async def test_it_leaves_its_groups_on_disconnect(no_metrics) -> None:
    communicator = WebsocketCommunicator(application, "/ws/inspector", headers=LOCAL)
    assert (await communicator.connect())[0]
    layer = memory_layer()
    assert layer.groups.get("captures") and layer.groups.get("tunnels")
    await communicator.disconnect()
    assert not layer.groups.get("captures")
    assert not layer.groups.get("tunnels")


# --- who may connect ---------------------------------------------------------------------------
async def connects(headers: list[tuple[bytes, bytes]]) -> bool:
    communicator = WebsocketCommunicator(application, "/ws/inspector", headers=headers)
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return bool(connected)


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        (b"localhost:4040", b"http://localhost:4040"),
        (b"127.0.0.1:4040", b"http://127.0.0.1:4040"),
        (b"[::1]:4040", b"http://[::1]:4040"),
    ],
)
async def test_a_same_origin_page_on_a_local_address_connects(no_metrics, host, origin) -> None:
    assert await connects([(b"host", host), (b"origin", origin)])


@pytest.mark.parametrize(
    "origin",
    [
        b"http://evil.example",
        b"http://localhost:3000",  # another local site is another origin
        b"null",
    ],
)
async def test_a_page_of_another_origin_is_refused(no_metrics, origin) -> None:
    assert not await connects([(b"host", b"localhost:4040"), (b"origin", origin)])


async def test_a_handshake_without_origin_is_refused(no_metrics) -> None:
    assert not await connects([(b"host", b"localhost:4040")])


async def test_a_host_outside_the_allow_list_is_refused_even_same_origin(no_metrics) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1, the page is same-origin with itself.
    assert not await connects([(b"host", b"evil.example:4040"), (b"origin", b"http://evil.example:4040")])


async def test_a_lan_address_in_web_allow_hosts_connects(no_metrics, settings) -> None:
    settings.AGENT_WEB_ALLOW_HOSTS = ["192.168.1.0/24", "agent.lan"]
    assert await connects([(b"host", b"192.168.1.20:4040"), (b"origin", b"http://192.168.1.20:4040")])
    assert await connects([(b"host", b"agent.lan:4040"), (b"origin", b"http://agent.lan:4040")])
    # A listed host may also serve the page from elsewhere (a reverse proxy on another port).
    assert await connects([(b"host", b"agent.lan:4040"), (b"origin", b"https://agent.lan")])
    assert not await connects([(b"host", b"agent.lan:4040"), (b"origin", b"http://other.lan")])
