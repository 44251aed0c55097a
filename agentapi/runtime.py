"""The running agent as the API and the command line see it: the engine plus its mirror rows.

Everything here runs on the event loop. The API's sync views reach it through `async_to_sync`;
database work goes to a thread (`sync_to_async`), never onto the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import socket
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from .capture_store import OrmCaptureStore
from .engine.capture_sink import CaptureSink
from .engine.engine import Engine, ReplayRefused, RunningTunnel, TunnelExists
from .engine.tunnel_spec import TunnelConfigError, TunnelSpec, parse_definition
from .models import Capture, Tunnel
from .tls_identity import https_context

log = logging.getLogger(__name__)

CAPTURES_GROUP = "captures"
PEER_TIMEOUT = 5.0
MAX_NAME_LENGTH = 200  # Tunnel.name's max_length
TUNNELS_GROUP = "tunnels"

_current: AgentRuntime | None = None


class PeerUnavailable(Exception):
    """The tunnel runs in another agent that cannot be asked (no shared channel layer, no answer)."""


def current_runtime() -> AgentRuntime | None:
    return _current


class AgentRuntime:
    def __init__(self, *, inspect_db_size: int) -> None:
        self.agent_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.layer = get_channel_layer()
        self.channel = ""  # this agent's channel on the layer, for requests from other agents
        self._peers: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        # Held while tunnels start or stop and while the heartbeat checks their rows, so a beat
        # never writes back the row of a tunnel that is stopping, nor one that is being written.
        self._mirror_lock = asyncio.Lock()
        self.store: OrmCaptureStore | None = None
        sink = None
        if inspect_db_size >= 0:
            self.store = OrmCaptureStore(inspect_db_size or settings.AGENT_INSPECT_DB_SIZE)
            sink = CaptureSink(self.store, self._announce_captures, max_pending=settings.AGENT_CAPTURE_QUEUE)
        self.sink = sink
        self.engine = Engine(
            sink=sink,
            capture_limit=settings.AGENT_CAPTURE_LIMIT,
            upstream_timeout=settings.AGENT_UPSTREAM_TIMEOUT,
            head_timeout=settings.AGENT_HEAD_TIMEOUT,
            idle_timeout=settings.AGENT_IDLE_TIMEOUT,
            response_head_limit=settings.AGENT_RESPONSE_HEAD_LIMIT,
        )

    async def start(self) -> None:
        global _current
        await sync_to_async(_forget_stale_tunnels)(self.agent_id)
        self._beats = asyncio.get_running_loop().create_task(self._heartbeat(), name="tunnel-heartbeat")
        self.engine.https_context = await sync_to_async(https_context)()
        if self.sink is not None:
            self.sink.start()
        self.engine.start()
        if self.layer is not None:
            self.channel = await self.layer.new_channel("agent.")
            self._peers = asyncio.get_running_loop().create_task(self._serve_peers(), name="peer-requests")
        _current = self

    async def close(self) -> None:
        """Stop every listener, then write every pending capture."""
        global _current
        names = [tunnel.name for tunnel in self.engine.tunnels()]
        for task in (self._peers, self._beats):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._peers = self._beats = None
        await self.engine.close()
        await sync_to_async(Tunnel.objects.filter(agent_id=self.agent_id).delete)()
        if self.sink is not None:
            await self.sink.close()
        for name in names:
            log.info("stopped tunnel %s", name)
        if _current is self:
            _current = None

    # --- tunnels ----------------------------------------------------------------------------
    async def start_tunnel(self, definition: dict[str, Any], name: str | None = None) -> list[RunningTunnel]:
        """Check a definition and open its listeners; the first tunnel is the one to report."""
        name = name or definition.get("name") or await self._fresh_name(definition)
        if not isinstance(name, str) or not name.strip():
            raise TunnelConfigError("name must be a non-empty string")
        if len(name) > MAX_NAME_LENGTH or name.endswith("/") or any(ord(c) < 32 for c in name):
            # A trailing slash would be read as the optional one of the API paths.
            raise TunnelConfigError(
                f"name must be at most {MAX_NAME_LENGTH} characters, without control characters or a trailing /"
            )
        specs = parse_definition(definition, name=name, public_host=settings.AGENT_PUBLIC_HOST)
        async with self._mirror_lock:
            started = await self._start_specs(specs)
        for tunnel in started:
            await self._announce_tunnel("tunnel.started", tunnel.name)
        return started

    async def _start_specs(self, specs: list[TunnelSpec]) -> list[RunningTunnel]:
        for spec in specs:
            if await sync_to_async(Tunnel.objects.filter(name=spec.name).exists)():
                raise TunnelExists(f'tunnel "{spec.name}" already exists')
        started: list[RunningTunnel] = []
        try:
            for spec in specs:
                tunnel = await self.engine.start_tunnel(spec)
                started.append(tunnel)
                await sync_to_async(self._mirror)(tunnel)
        except BaseException:
            # Whatever failed (listener, database), leave no listener running without its row.
            for tunnel in started:
                await self.engine.stop_tunnel(tunnel.name)
                await sync_to_async(Tunnel.objects.filter(name=tunnel.name, agent_id=self.agent_id).delete)()
            raise
        return started

    async def stop_tunnel(self, name: str) -> None:
        async with self._mirror_lock:
            await self.engine.stop_tunnel(name)  # KeyError: not running here
            await sync_to_async(Tunnel.objects.filter(name=name, agent_id=self.agent_id).delete)()
        await self._announce_tunnel("tunnel.stopped", name)

    async def stop_elsewhere(self, tunnel: Tunnel) -> None:
        """Ask the agent that runs `tunnel` (sharing this database and channel layer) to stop it."""
        if self.layer is None or not tunnel.agent_channel:
            raise PeerUnavailable(f'tunnel "{tunnel.name}" runs in another agent ({tunnel.agent_id}); stop it there')
        reply_to = await self.layer.new_channel("reply.")
        await self.layer.send(tunnel.agent_channel, {"type": "tunnel.stop", "name": tunnel.name, "reply_to": reply_to})
        try:
            async with asyncio.timeout(PEER_TIMEOUT):
                reply = await self.layer.receive(reply_to)
        except TimeoutError:
            raise PeerUnavailable(
                f'the agent running tunnel "{tunnel.name}" ({tunnel.agent_id}) did not answer in {PEER_TIMEOUT:g} s'
            ) from None
        if not reply.get("ok"):
            raise KeyError(tunnel.name)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.AGENT_HEARTBEAT_SECONDS)
            await self.beat()

    async def beat(self) -> None:
        """Refresh this agent's rows, put back any that went missing, and forget dead agents' rows.

        The engine is the truth: a row of a running tunnel that someone deleted (an agent that
        thought this one dead, a restore) is written again, so the API never loses a live tunnel.
        """
        async with self._mirror_lock:  # no tunnel starts or stops while its row is checked
            running = list(self.engine.tunnels())
            try:
                await sync_to_async(self._beat)(running)
            except Exception:  # a database hiccup must not stop the agent; the next beat retries
                log.exception("tunnel heartbeat failed")

    def _beat(self, running: list[RunningTunnel]) -> None:
        Tunnel.objects.filter(agent_id=self.agent_id).update(heartbeat=timezone.now())
        mirrored = set(Tunnel.objects.filter(agent_id=self.agent_id).values_list("name", flat=True))
        for tunnel in running:
            if tunnel.name not in mirrored:
                log.warning("tunnel %s had lost its row; written again", tunnel.name)
                self._mirror(tunnel)
        _forget_stale_tunnels(self.agent_id)

    async def _serve_peers(self) -> None:
        assert self.layer is not None
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("type") != "tunnel.stop" or not message.get("reply_to"):
                continue
            try:
                await self.stop_tunnel(str(message.get("name")))
                reply = {"type": "tunnel.stop.reply", "ok": True}
            except KeyError:
                reply = {"type": "tunnel.stop.reply", "ok": False}
            try:
                await self.layer.send(message["reply_to"], reply)
            except Exception:  # the asking agent may be gone; this one goes on serving
                log.exception("answering a peer failed")

    async def _fresh_name(self, definition: dict[str, Any]) -> str:
        # Cut short: a long (even invalid) addr must not make the name itself too long.
        proto = re.sub(r"[^A-Za-z0-9.]+", "-", str(definition.get("proto", "http")))[:8]
        addr = re.sub(r"[^A-Za-z0-9.]+", "-", str(definition.get("addr", "")))[:64].strip("-")
        return f"{proto}-{addr}-{uuid.uuid4().hex[:8]}"

    def _mirror(self, tunnel: RunningTunnel) -> None:
        spec: TunnelSpec = tunnel.spec
        Tunnel.objects.create(
            name=spec.name,
            tunnel_id=tunnel.tunnel_id,
            proto=spec.proto,
            public_url=tunnel.public_url,
            addr=spec.addr,
            inspect=spec.inspect,
            definition=spec.definition,
            agent_id=self.agent_id,
            agent_channel=self.channel,
            heartbeat=timezone.now(),
        )

    # --- captures ---------------------------------------------------------------------------
    async def replay(self, capture: Capture, tunnel_name: str) -> str:
        """Replay a stored capture into a running tunnel; returns the new capture's id.

        Raises ReplayRefused for a capture whose request did not cross whole or was cut at the
        capture limit, KeyError when the tunnel does not run here.
        """
        if not capture.request_complete:
            raise ReplayRefused(
                f"cannot replay {capture.id}: {capture.incomplete_reason or 'its request is incomplete'}"
            )
        if capture.request_truncated:
            raise ReplayRefused(
                f"cannot replay {capture.id}: only {len(capture.request_raw)} of {capture.request_size} bytes"
                " of the request were captured (raise AGENT_CAPTURE_LIMIT)"
            )
        record = await self.engine.replay(bytes(capture.request_raw), tunnel_name, replay_of=capture.id)
        return record.id

    async def clear_captures(self) -> None:
        await sync_to_async(_delete_all_captures)()
        if self.store is not None:
            self.store.forget_total()
        await self._send(CAPTURES_GROUP, {"type": "captures.cleared"})

    # --- announcements ----------------------------------------------------------------------
    async def _announce_captures(self, message: dict[str, Any]) -> None:
        await self._send(CAPTURES_GROUP, message)

    async def _announce_tunnel(self, kind: str, name: str) -> None:
        await self._send(TUNNELS_GROUP, {"type": kind, "name": name})

    async def _send(self, group: str, message: dict[str, Any]) -> None:
        if self.layer is None:
            return
        try:
            await self.layer.group_send(group, message)
        except Exception:  # a channel layer outage must not fail tunnel operations
            log.exception("channel layer send failed")


def _forget_stale_tunnels(own_agent_id: str) -> None:
    """Delete the rows of agents that are gone: a dead process on this host (or an earlier
    process that had this one's pid), or no heartbeat for AGENT_STALE_AFTER_BEATS periods.

    Never this agent's own rows: it refreshes them itself (`AgentRuntime.beat`).
    """
    stale_after = dt.timedelta(seconds=settings.AGENT_HEARTBEAT_SECONDS * settings.AGENT_STALE_AFTER_BEATS)
    others = Tunnel.objects.exclude(agent_id=own_agent_id)
    others.exclude(agent_id__in=_live_agent_ids(own_agent_id)).delete()
    others.filter(heartbeat__lt=timezone.now() - stale_after).delete()


def _live_agent_ids(own_agent_id: str) -> list[str]:
    # Only this host's agents can be checked; a row whose process is gone is stale.
    live = []
    host = socket.gethostname()
    for agent_id in Tunnel.objects.exclude(agent_id=own_agent_id).values_list("agent_id", flat=True).distinct():
        agent_host, _, rest = agent_id.partition(":")
        pid = rest.partition(":")[0]
        if agent_host != host or (pid.isdigit() and _pid_alive(int(pid))):
            live.append(agent_id)
    return live


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # another agent id with this process's pid: an earlier process's rows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_all_captures() -> None:
    Capture.objects.all().delete()
