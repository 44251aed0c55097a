"""The runtime facade in-process: its named errors, the one replay path and the one stop path.

Real listeners and a real local service on loopback, the database of the test, the in-memory channel
layer and short heartbeats (every wait below spans several). Two runtimes in one process stand for
two agents on two hosts sharing the database and the channel layer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from channels.layers import channel_layers
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

import agentapi.peers
from agentapi.models import Capture, Tunnel
from agentapi.runtime import (
    AgentRuntime,
    NotAnHttpTunnel,
    PeerUnavailable,
    ReplayRefused,
    TunnelConfigError,
    TunnelExists,
    TunnelNotRunning,
    TunnelStartError,
)
from tests.support.upstream import Upstream, start_upstream

pytestmark = pytest.mark.django_db(transaction=True)

BEAT = 0.05
GET = b"GET /echo HTTP/1.1\r\nHost: service\r\n\r\n"
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def short_beats_and_a_shared_layer(settings: Any) -> None:
    settings.AGENT_HEARTBEAT_SECONDS = BEAT
    # Long enough that a beat delayed by a busy test thread never makes a live peer look dead.
    settings.AGENT_STALE_AFTER_BEATS = 100
    # One in-memory layer for every runtime of the test (also where CI sets REDIS_URL), made on
    # this test's loop.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = start_upstream()
    yield server
    server.close()


def _on_host(host: str, **options: Any) -> AgentRuntime:
    """A runtime whose rows say it runs on `host`: two in one process then see each other as live
    peers (the pid check applies to this host only)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "gethostname", lambda: host)
        return AgentRuntime(**options)


@pytest.fixture
async def agents() -> AsyncIterator[list[AgentRuntime]]:
    started: list[AgentRuntime] = []
    yield started
    for runtime in reversed(started):
        await runtime.close()


@pytest.fixture
async def agent(agents: list[AgentRuntime]) -> AgentRuntime:
    runtime = _on_host("host-a")
    await runtime.start()
    agents.append(runtime)
    return runtime


@pytest.fixture
async def peer(agent: AgentRuntime, agents: list[AgentRuntime]) -> AgentRuntime:
    runtime = _on_host("host-b", inspect_db_size=-1)
    await runtime.start()
    agents.append(runtime)
    return runtime


async def _rows() -> list[tuple[str, str]]:
    return await sync_to_async(lambda: list(Tunnel.objects.order_by("name").values_list("name", "agent_id")))()


async def _capture(capture_id: str) -> Capture:
    return await sync_to_async(Capture.objects.get)(id=capture_id)


async def _stored(raw: bytes = GET, **fields: Any) -> Capture:
    """A capture as the agent stores one: of tunnel "web", request whole unless `fields` say not."""
    values = {
        "id": f"airt_stored{next(_ids):06d}",
        "tunnel_name": "web",
        "remote_addr": "127.0.0.1",
        "start": timezone.now(),
        "method": "GET",
        "uri": "/echo",
        "request_raw": raw,
        "request_size": len(raw),
        "stored_size": len(raw),
        **fields,
    }
    return await sync_to_async(Capture.objects.create)(**values)


# --- starting ------------------------------------------------------------------------------------
async def test_a_started_tunnel_is_a_plain_value_with_its_metrics(agent: AgentRuntime, upstream: Upstream) -> None:
    [info] = await agent.start_tunnel({"proto": "http", "addr": str(upstream.port)}, "web")
    assert (info.name, info.proto, info.addr) == ("web", "http", f"http://localhost:{upstream.port}")
    assert info.upstream_host == f"localhost:{upstream.port}"
    assert info.replays_requests
    assert info.metrics["http"]["count"] == 0
    assert await agent.tunnels() == [await agent.tunnel("web")]
    assert await agent.tunnel("nope") is None
    assert await _rows() == [("web", agent.agent_id)]


async def test_starting_refuses_with_named_errors(agent: AgentRuntime) -> None:
    with pytest.raises(TunnelConfigError, match="name must be"):
        await agent.start_tunnel({"proto": "http", "addr": "80"}, "trailing/")
    with pytest.raises(TunnelConfigError):
        await agent.start_tunnel({"proto": "gopher", "addr": "80"}, "bad")
    await agent.start_tunnel({"proto": "tcp", "addr": "80"}, "db")
    with pytest.raises(TunnelExists, match='tunnel "db" already exists'):
        await agent.start_tunnel({"proto": "tcp", "addr": "81"}, "db")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(TunnelStartError, match="failed to listen"):
            await agent.start_tunnel({"proto": "tcp", "addr": "80", "remote_addr": f"127.0.0.1:{port}"}, "busy")
    assert await _rows() == [("db", agent.agent_id)]  # no row left by a refusal


async def test_a_name_another_agent_runs_is_taken(agent: AgentRuntime, peer: AgentRuntime) -> None:
    await agent.start_tunnel({"proto": "tcp", "addr": "80"}, "db")
    with pytest.raises(TunnelExists):
        await peer.start_tunnel({"proto": "tcp", "addr": "80"}, "db")


# --- stopping: one path, wherever the tunnel runs ----------------------------------------------
async def test_stopping_what_runs_nowhere_is_tunnel_not_running(agent: AgentRuntime) -> None:
    with pytest.raises(TunnelNotRunning) as raised:
        await agent.stop_tunnel("nope")
    assert raised.value.name == "nope"


async def test_a_stop_is_routed_to_the_agent_that_runs_the_tunnel(agent: AgentRuntime, peer: AgentRuntime) -> None:
    await agent.start_tunnel({"proto": "tcp", "addr": "80"}, "db")
    await asyncio.sleep(BEAT * 3)
    await peer.stop_tunnel("db")  # over the channel layer to `agent`, which holds the listener
    assert await agent.tunnel("db") is None
    assert await _rows() == []
    with pytest.raises(TunnelNotRunning):
        await peer.stop_tunnel("db")


async def test_a_peer_that_does_not_run_the_tunnel_says_so(agent: AgentRuntime, peer: AgentRuntime) -> None:
    await sync_to_async(Tunnel.objects.create)(
        name="ghost",
        tunnel_id="g" * 32,
        agent_id="host-c:1:x",
        agent_channel=agent.peers.channel,  # asks `agent`, which runs no "ghost"
        heartbeat=timezone.now(),
    )
    with pytest.raises(TunnelNotRunning):
        await peer.stop_tunnel("ghost")


async def test_a_peer_that_cannot_be_asked_is_peer_unavailable(
    agent: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agentapi.peers, "PEER_TIMEOUT", 0.2)
    far = timezone.now() + dt.timedelta(hours=1)  # keeps beating, as far as the rows say
    await sync_to_async(Tunnel.objects.create)(
        name="silent", tunnel_id="s" * 32, agent_id="host-c:1:x", agent_channel="agent.!nobody", heartbeat=far
    )
    await sync_to_async(Tunnel.objects.create)(
        name="unreachable", tunnel_id="u" * 32, agent_id="host-c:1:x", agent_channel="", heartbeat=far
    )
    with pytest.raises(PeerUnavailable, match="did not answer"):
        await agent.stop_tunnel("silent")
    with pytest.raises(PeerUnavailable, match="stop it there"):
        await agent.stop_tunnel("unreachable")


# --- replacing ---------------------------------------------------------------------------------
async def test_replace_starts_anew_or_puts_the_new_definition_in_place(agent: AgentRuntime) -> None:
    first = await agent.replace_tunnel("db", {"proto": "tcp", "addr": "80"})
    assert not first.replaced
    second = await agent.replace_tunnel("db", {"proto": "tcp", "addr": "81"})
    assert second.replaced
    assert [t.addr for t in second.tunnels] == ["localhost:81"]
    assert await _rows() == [("db", agent.agent_id)]


async def test_a_failed_replace_changes_nothing(agent: AgentRuntime) -> None:
    shown = {"proto": "tcp", "addr": "80", "as": "posted"}
    [old] = await agent.start_tunnel({"proto": "tcp", "addr": "80"}, "db", shown_definition=shown)
    with pytest.raises(TunnelConfigError):  # checked before the old one stops
        await agent.replace_tunnel("db", {"proto": "tcp", "addr": "80", "bogus": 1})
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(TunnelStartError):  # the new listener cannot open: the old one comes back
            await agent.replace_tunnel("db", {"proto": "tcp", "addr": "81", "remote_addr": f"127.0.0.1:{port}"})
    restored = await agent.tunnel("db")
    assert restored is not None and restored.addr == old.addr
    row = await sync_to_async(Tunnel.objects.get)(name="db")
    assert row.definition == shown


async def test_a_row_written_back_keeps_the_definition_as_posted(agent: AgentRuntime) -> None:
    shown = {"proto": "tcp", "addr": "80", "as": "posted"}
    await agent.start_tunnel({"proto": "tcp", "addr": "80"}, "db", shown_definition=shown)
    await sync_to_async(Tunnel.objects.all().delete)()
    await asyncio.sleep(BEAT * 4)
    row = await sync_to_async(Tunnel.objects.get)(name="db")
    assert row.definition == shown


# --- replay: one path for a stored capture and for edited bytes ----------------------------------
async def test_a_stored_capture_replays_into_its_tunnel(agent: AgentRuntime, upstream: Upstream) -> None:
    await agent.start_tunnel({"proto": "http", "addr": str(upstream.port)}, "web")
    original = await _stored()
    replayed = await agent.replay(original)
    assert replayed.status_code == 200
    stored = await _capture(replayed.id)
    assert (stored.tunnel_name, stored.replay_of, bytes(stored.request_raw)) == ("web", original.id, GET)
    assert upstream.received[-1].path == "/echo"
    [info] = await agent.tunnels()
    assert info.metrics["http"]["count"] == 1


async def test_edited_bytes_replay_into_the_named_tunnel(agent: AgentRuntime, upstream: Upstream) -> None:
    await agent.start_tunnel({"proto": "http", "addr": str(upstream.port)}, "web")
    edited = b"POST /edited HTTP/1.1\r\nHost: service\r\nContent-Length: 2\r\n\r\nhi"
    replayed = await agent.replay(edited, "web", replay_of="airt_original")
    stored = await _capture(replayed.id)
    assert (stored.method, stored.uri, stored.replay_of) == ("POST", "/edited", "airt_original")
    assert upstream.received[-1].body == b"hi"


async def test_replay_refuses_with_named_errors(agent: AgentRuntime, upstream: Upstream) -> None:
    await agent.start_tunnel({"proto": "http", "addr": str(upstream.port)}, "web")
    await agent.start_tunnel({"proto": "tcp", "addr": "80"}, "db")
    original = await _stored()
    with pytest.raises(TunnelNotRunning):
        await agent.replay(original, "nope")
    with pytest.raises(NotAnHttpTunnel, match='tunnel "db" is tcp: only http tunnels replay requests'):
        await agent.replay(original, "db")
    cut = await _stored(request_size=len(GET) + 10)
    with pytest.raises(ReplayRefused, match="raise AGENT_CAPTURE_LIMIT"):
        await agent.replay(cut)
    broken = await _stored(request_complete=False, incomplete_reason="the client left")
    with pytest.raises(ReplayRefused, match="the client left"):
        await agent.replay(broken)
    with pytest.raises(ReplayRefused, match="not complete"):
        await agent.replay(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", "web")
    assert len(upstream.received) == 0  # nothing refused reached the service


# --- the callers use these paths ----------------------------------------------------------------
@pytest.fixture
async def staff() -> Client:
    user = await sync_to_async(User.objects.create_superuser)("admin", "admin@example.com", "pw")
    client = Client(HTTP_HOST="127.0.0.1:4040")
    await sync_to_async(client.force_login)(user)
    return client


@pytest.fixture
def quiet_beats(settings: Any) -> None:
    """No heartbeat while a request thread reads: the test database (SQLite in memory, shared
    cache) answers a read that meets another connection's write with "table is locked" instead of
    waiting, as a real database file does."""
    settings.AGENT_HEARTBEAT_SECONDS = 3600


async def _request(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A sync view's call as Django's ASGI handler makes it: in a thread of the request's own, from
    which the view reaches the runtime on this loop with async_to_sync."""
    async with ThreadSensitiveContext():
        return await sync_to_async(call)(*args, **kwargs)


async def test_the_admin_stops_a_tunnel_another_agent_runs(
    quiet_beats: None, agent: AgentRuntime, peer: AgentRuntime, staff: Client
) -> None:
    await agent.start_tunnel({"proto": "tcp", "addr": "80"}, "db")
    row = await sync_to_async(Tunnel.objects.get)(name="db")
    # `peer` started last: it is this process's runtime, the one the admin acts through.
    response = await _request(
        staff.post, "/admin/agentapi/tunnel/", {"action": "stop_selected", "_selected_action": [row.pk]}, follow=True
    )
    assert "Stopped: db" in response.content.decode()
    assert await agent.tunnel("db") is None


async def test_the_admin_and_the_inspector_replay_through_the_runtime(
    quiet_beats: None, agent: AgentRuntime, upstream: Upstream, staff: Client
) -> None:
    await agent.start_tunnel({"proto": "http", "addr": str(upstream.port)}, "web")
    original = await _stored()
    response = await _request(
        staff.post,
        "/admin/agentapi/capture/",
        {"action": "replay_selected", "_selected_action": [original.id]},
        follow=True,
    )
    assert "Replayed 1 capture(s)." in response.content.decode()
    edit = {"id": original.id, "method": "PUT", "target": "/edited", "headers": "", "body_base64": "aGk="}
    answer = await _request(staff.post, "/inspect/replay", edit, content_type="application/json")
    assert answer.status_code == 201, answer.content
    stored = await _capture(answer.json()["id"])
    assert (stored.method, stored.uri, stored.replay_of) == ("PUT", "/edited", original.id)
    assert upstream.received[-1].header("Host") == f"localhost:{upstream.port}"  # the service's own
    assert [r.path for r in upstream.received] == ["/echo", "/edited"]
