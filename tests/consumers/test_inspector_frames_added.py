"""The inspector WebSocket passes `frames.added` on: the captured WebSockets whose frames grew."""

from __future__ import annotations

from typing import Any

import pytest
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator

import agentapi.runtime
from dashboard.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]

LOCAL = [(b"host", b"127.0.0.1:4040"), (b"origin", b"http://127.0.0.1:4040")]


@pytest.fixture(autouse=True)
def fresh_layer(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    monkeypatch.setattr(agentapi.runtime, "_current", None)  # no metrics pushes


async def test_frames_added_names_the_captures_whose_frames_grew() -> None:
    socket = WebsocketCommunicator(application, "/ws/inspector", headers=LOCAL)
    connected, _ = await socket.connect()
    assert connected
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send("captures", {"type": "frames.added", "ids": ["airt_a", "airt_b"]})
    assert await socket.receive_json_from(timeout=2) == {"type": "frames.added", "ids": ["airt_a", "airt_b"]}
    await socket.disconnect()
