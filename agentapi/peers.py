"""This agent among the others that share its database and channel layer.

Several agents may share one PostgreSQL and one Redis (DATABASE_URL, REDIS_URL). Each mirrors the
tunnels it runs in `Tunnel` rows stamped with its id and its channel on the layer. The rules:

- Own rows. A row is written when a tunnel starts and removed when it stops or the agent closes;
  nothing else ever removes a row of this agent while it runs.
- Heartbeat. Every AGENT_HEARTBEAT_SECONDS this agent refreshes its rows and writes back any that
  went missing (an agent that thought this one dead, a restore): its engine is the truth, so the API
  never loses a live tunnel. A beat holds the runtime's lock, so it never writes back the row of a
  tunnel that is stopping, nor one that is being written.
- Stale rows. Rows of other agents that are gone are removed (at start and on every beat): a dead
  process on this host (or an earlier process that had this one's pid), or an agent on any host
  without a heartbeat for AGENT_STALE_AFTER_BEATS periods.
- Stop routing. Stopping a tunnel another agent runs is asked of that agent on its channel:
      {"type": "tunnel.stop", "name": NAME, "reply_to": CHANNEL}
  and it answers on `reply_to`:
      {"type": "tunnel.stop.reply", "ok": true | false}     (false: it does not run NAME)
  No shared layer, no channel on the row, or no answer within PEER_TIMEOUT seconds: PeerUnavailable.

Everything here runs on the event loop; the database work goes to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from .models import Tunnel
from .runtime_errors import PeerUnavailable, TunnelNotRunning

log = logging.getLogger(__name__)

PEER_TIMEOUT = 5.0


@dataclass(frozen=True)
class MirrorRow:
    """What a `Tunnel` row says of a tunnel this agent runs (the stamps are added on writing)."""

    name: str
    tunnel_id: str
    proto: str
    public_url: str
    addr: str
    inspect: bool
    definition: dict[str, Any]


class Peers:
    """This agent's rows, its heartbeat, and stop requests to and from the other agents.

    `running_rows` gives the rows of what the engine runs now (called on the loop, under `lock`);
    `stop_here` stops a tunnel this agent runs (raising TunnelNotRunning), for a peer that asks.
    """

    def __init__(
        self,
        *,
        agent_id: str,
        layer: Any,
        lock: asyncio.Lock,
        running_rows: Callable[[], list[MirrorRow]],
        stop_here: Callable[[str], Awaitable[None]],
    ) -> None:
        self.agent_id = agent_id
        self.channel = ""  # this agent's channel on the layer, for requests from other agents
        self._layer = layer
        self._lock = lock
        self._running_rows = running_rows
        self._stop_here = stop_here
        self._beats: asyncio.Task[None] | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Forget the rows of agents that are gone, then beat and answer peers until `close`."""
        await sync_to_async(forget_stale_rows)(self.agent_id)
        loop = asyncio.get_running_loop()
        self._beats = loop.create_task(self._heartbeat(), name="tunnel-heartbeat")
        if self._layer is not None:
            self.channel = await self._layer.new_channel("agent.")
            self._serving = loop.create_task(self._serve(), name="peer-requests")

    async def close(self) -> None:
        for task in (self._serving, self._beats):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._serving = self._beats = None

    # --- own rows (sync: called in a thread) ----------------------------------------------------
    def write_row(self, row: MirrorRow) -> None:
        Tunnel.objects.create(
            **asdict(row), agent_id=self.agent_id, agent_channel=self.channel, heartbeat=timezone.now()
        )

    def rewrite_row(self, row: MirrorRow) -> None:
        """A running tunnel's row with its new definition (its Traffic Policy was swapped)."""
        Tunnel.objects.filter(name=row.name, agent_id=self.agent_id).update(
            definition=row.definition, heartbeat=timezone.now()
        )

    def remove_row(self, name: str) -> None:
        Tunnel.objects.filter(name=name, agent_id=self.agent_id).delete()

    def remove_own_rows(self) -> None:
        """The agent is closing: every row it wrote goes with it."""
        Tunnel.objects.filter(agent_id=self.agent_id).delete()

    # --- heartbeat -------------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.AGENT_HEARTBEAT_SECONDS)
            await self.beat()

    async def beat(self) -> None:
        """Refresh this agent's rows, put back any that went missing, and forget dead agents' rows."""
        async with self._lock:  # no tunnel starts or stops while its row is checked
            running = self._running_rows()
            try:
                await sync_to_async(self._beat)(running)
            except Exception:  # a database hiccup must not stop the agent; the next beat retries
                log.exception("tunnel heartbeat failed")

    def _beat(self, running: list[MirrorRow]) -> None:
        Tunnel.objects.filter(agent_id=self.agent_id).update(heartbeat=timezone.now())
        mirrored = set(Tunnel.objects.filter(agent_id=self.agent_id).values_list("name", flat=True))
        for row in running:
            if row.name not in mirrored:
                log.warning("tunnel %s had lost its row; written again", row.name)
                self.write_row(row)
        forget_stale_rows(self.agent_id)

    # --- stop routing ----------------------------------------------------------------------------
    async def ask_to_stop(self, row: Tunnel) -> None:
        """Ask the agent that runs `row`'s tunnel to stop it; returns once it has.

        Raises PeerUnavailable when it cannot be asked or does not answer, TunnelNotRunning when it
        answers that it does not run the tunnel.
        """
        if self._layer is None or not row.agent_channel:
            raise PeerUnavailable(f'tunnel "{row.name}" runs in another agent ({row.agent_id}); stop it there')
        reply_to = await self._layer.new_channel("reply.")
        await self._layer.send(row.agent_channel, {"type": "tunnel.stop", "name": row.name, "reply_to": reply_to})
        try:
            async with asyncio.timeout(PEER_TIMEOUT):
                reply = await self._layer.receive(reply_to)
        except TimeoutError:
            raise PeerUnavailable(
                f'the agent running tunnel "{row.name}" ({row.agent_id}) did not answer in {PEER_TIMEOUT:g} s'
            ) from None
        if not reply.get("ok"):
            raise TunnelNotRunning(row.name)

    async def _serve(self) -> None:
        while True:
            message = await self._layer.receive(self.channel)
            if message.get("type") != "tunnel.stop" or not message.get("reply_to"):
                continue
            try:
                await self._stop_here(str(message.get("name")))
                reply = {"type": "tunnel.stop.reply", "ok": True}
            except TunnelNotRunning:
                reply = {"type": "tunnel.stop.reply", "ok": False}
            except Exception:  # a database hiccup: no answer (the asker reports it), serve on
                log.exception("stopping a tunnel for a peer failed")
                continue
            try:
                await self._layer.send(message["reply_to"], reply)
            except Exception:  # the asking agent may be gone; this one goes on serving
                log.exception("answering a peer failed")


def forget_stale_rows(own_agent_id: str) -> None:
    """Delete the rows of agents that are gone: a dead process on this host (or an earlier
    process that had this one's pid), or no heartbeat for AGENT_STALE_AFTER_BEATS periods.

    Never this agent's own rows: it refreshes them itself (`Peers.beat`).
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
