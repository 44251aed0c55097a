"""The runtime facade: the running agent as every caller sees it (API, inspector, admin, `serve`).

Callers use only what is here and never reach into the engine. Everything here runs on the event
loop: sync callers (Django's worker thread) go through `async_to_sync(runtime.method)`, so a tunnel
or metrics snapshot is taken on the loop and never races the proxy; database work goes to a thread
(`sync_to_async`), never onto the loop. What it offers:

- `start_tunnel(definition, name)`, `stop_tunnel(name)`, `replace_tunnel(name, definition)`: a stop
  of a tunnel that another agent sharing the database runs is routed to that agent (peers.py);
  starting, stopping and the heartbeat are serialised by one lock.
- `replay(capture or raw bytes, tunnel_name)`: the one replay path (the API, the inspector's
  "replay with modifications", the admin action); it answers once the new capture is stored.
- `tunnel(name)`, `tunnels()`: plain `TunnelInfo` values, metrics included.
- `flush_captures()`, `clear_captures()`, `forget_stored_total()`: the capture store's hooks;
  `inspect_db_size`: the stored bytes the captures are kept within.
- `metrics_history()`: the last minutes of each tunnel's metrics, sampled every second
  (metrics_history.py), for the status page's charts.

Its errors are defined in runtime_errors.py and re-exported here (TunnelNotRunning, TunnelExists,
TunnelConfigError, TunnelStartError, PeerUnavailable, ReplayRefused, NotAnHttpTunnel).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from .capture_erasure import erase
from .capture_store import OrmCaptureStore
from .engine.capture_sink import CaptureSink, CaptureStore
from .engine.engine import Engine, RunningTunnel
from .engine.tunnel_spec import TunnelSpec, parse_definition
from .engine_settings import engine_limits
from .metrics_history import HISTORY_INTERVAL, MetricsHistory
from .models import Capture, Tunnel
from .peers import MirrorRow, Peers
from .runtime_errors import (
    NotAnHttpTunnel,
    PeerUnavailable,
    ReplayRefused,
    TunnelConfigError,
    TunnelExists,
    TunnelNotRunning,
    TunnelStartError,
)
from .tls_identity import https_context
from .workers import metrics_merge
from .workers.metrics_merge import State
from .workers.supervisor import SerialStore, TunnelOrder, WorkerSupervisor

__all__ = [
    "CAPTURES_GROUP",
    "TUNNELS_GROUP",
    "AgentRuntime",
    "NotAnHttpTunnel",
    "PeerUnavailable",
    "Replacement",
    "ReplayRefused",
    "Replayed",
    "TunnelConfigError",
    "TunnelExists",
    "TunnelInfo",
    "TunnelNotRunning",
    "TunnelStartError",
    "current_runtime",
]

log = logging.getLogger(__name__)

CAPTURES_GROUP = "captures"
MAX_NAME_LENGTH = 200  # Tunnel.name's max_length
TUNNELS_GROUP = "tunnels"
HTTP_PROTOS = ("http", "https")

_current: AgentRuntime | None = None


def current_runtime() -> AgentRuntime | None:
    """The runtime of this process, or None in a process that runs no tunnels (a web worker, tests)."""
    return _current


@dataclass(frozen=True)
class TunnelInfo:
    """A tunnel this agent runs, as plain values taken on the loop."""

    name: str
    public_url: str
    proto: str
    addr: str
    inspect: bool
    upstream_host: str  # host:port of the local service (the Host a replayed request gets by default)
    metrics: dict[str, dict[str, Any]]  # as the API shows them: conns and http counts, rates, percentiles
    # The Traffic Policy it runs, as text (the deprecated keys' rules included); "" when none.
    traffic_policy: str = ""

    @property
    def replays_requests(self) -> bool:
        return self.proto in HTTP_PROTOS


@dataclass(frozen=True)
class Replayed:
    id: str  # the new capture's
    status_code: int | None


@dataclass(frozen=True)
class Replacement:
    tunnels: list[TunnelInfo]  # the first is the one to report
    replaced: bool  # False: no tunnel had the name, the definition started anew


class AgentRuntime:
    def __init__(self, *, inspect_db_size: int = 0, web_allow_hosts: Sequence[str] = (), workers: int = 1) -> None:
        """`inspect_db_size`: 0 for AGENT_INSPECT_DB_SIZE, -1 for no captures at all.
        `web_allow_hosts`: Host names the web interface answers to on top of AGENT_WEB_ALLOW_HOSTS
        (the config file's `web_allow_hosts`); see host_allow_list.web_allow_hosts.
        `workers`: engine processes sharing each listener (`--workers`, agentapi/workers); 1 is
        this process alone, with no SO_REUSEPORT."""
        self.agent_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.web_allow_hosts = tuple(web_allow_hosts)
        self._layer = get_channel_layer()
        # Held while tunnels start or stop and while the heartbeat checks their rows, so a beat
        # never writes back the row of a tunnel that is stopping, nor one that is being written.
        self._mirror_lock = asyncio.Lock()
        self._store: OrmCaptureStore | None = None
        sink = None
        writes: CaptureStore | None = None  # what the sinks write to
        if inspect_db_size >= 0:
            self._store = OrmCaptureStore(inspect_db_size or settings.AGENT_INSPECT_DB_SIZE)
            # With workers their batches are written here too: one writer at a time.
            writes = SerialStore(self._store) if workers > 1 else self._store
            sink = CaptureSink(writes, self._announce_captures, max_pending=settings.AGENT_CAPTURE_QUEUE)
        self._sink = sink
        self._workers: WorkerSupervisor | None = None
        if workers > 1:
            self._workers = WorkerSupervisor(workers - 1, store=writes, announce=self._announce_captures)
        self._engine = Engine(sink=sink, reuse_port=workers > 1, **engine_limits())
        # Definitions mirrored as the caller gave them where they differ from what the engine
        # runs (an endpoint echoes its upstream.url back as posted), so a written-back row matches.
        self._shown: dict[str, dict[str, Any]] = {}
        self._capture_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._history = MetricsHistory()
        self._history_task: asyncio.Task[None] | None = None
        self.peers = Peers(
            agent_id=self.agent_id,
            layer=self._layer,
            lock=self._mirror_lock,
            running_rows=self._running_rows,
            stop_here=self._stop_here,
        )

    async def start(self) -> None:
        global _current
        await self.peers.start()
        self._engine.https_context = await sync_to_async(https_context)()
        if self._sink is not None:
            self._sink.start()
        self._engine.start()
        if self._workers is not None:
            await self._workers.start()
        self._history_task = asyncio.get_running_loop().create_task(self._sample_metrics(), name="metrics-history")
        _current = self

    async def close(self) -> None:
        """Stop every listener, then write every pending capture."""
        global _current
        names = [tunnel.name for tunnel in self._engine.tunnels()]
        if self._history_task is not None:
            self._history_task.cancel()
            self._history_task = None
        await self.peers.close()
        if self._workers is not None:
            # Their listeners first, then their captures, stored through this process's sink's store.
            await self._workers.close()
        await self._engine.close()
        await sync_to_async(self.peers.remove_own_rows)()
        if self._sink is not None:
            await self._sink.close()
        for name in names:
            log.info("stopped tunnel %s", name)
        if _current is self:
            _current = None

    # --- tunnels ----------------------------------------------------------------------------
    async def start_tunnel(
        self, definition: dict[str, Any], name: str | None = None, *, shown_definition: dict[str, Any] | None = None
    ) -> list[TunnelInfo]:
        """Check a definition and open its listeners; the first tunnel is the one to report.

        `shown_definition` is what the mirror row keeps instead of `definition` (an endpoint as
        posted). Raises TunnelConfigError, TunnelExists (here or in another agent), TunnelStartError.
        """
        name = name or definition.get("name") or await self._fresh_name(definition)
        specs = await self._specs(definition, name)
        async with self._mirror_lock:
            started = await self._start_specs(specs, shown_definition, definition, str(name))
        for tunnel in started:
            await self._announce_tunnel("tunnel.started", tunnel.name)
        workers = await self._worker_metrics()
        return [self._info(tunnel, workers) for tunnel in started]

    async def _specs(self, definition: dict[str, Any], name: str | None) -> list[TunnelSpec]:
        name = name or definition.get("name") or await self._fresh_name(definition)
        if not isinstance(name, str) or not name.strip():
            raise TunnelConfigError("name must be a non-empty string")
        if len(name) > MAX_NAME_LENGTH or name.endswith("/") or any(ord(c) < 32 for c in name):
            # A trailing slash would be read as the optional one of the API paths.
            raise TunnelConfigError(
                f"name must be at most {MAX_NAME_LENGTH} characters, without control characters or a trailing /"
            )
        return parse_definition(definition, name=name, public_host=settings.AGENT_PUBLIC_HOST)

    async def _start_specs(
        self, specs: list[TunnelSpec], shown: dict[str, Any] | None, definition: dict[str, Any], name: str
    ) -> list[RunningTunnel]:
        for spec in specs:
            if await sync_to_async(Tunnel.objects.filter(name=spec.name).exists)():
                raise TunnelExists(f'tunnel "{spec.name}" already exists')
        started: list[RunningTunnel] = []
        try:
            for spec in specs:
                tunnel = await self._engine.start_tunnel(spec)
                started.append(tunnel)
                if self._workers is not None:
                    await self._workers.start_tunnel(_order(definition, name, tunnel))
                if shown is not None:
                    self._shown[spec.name] = shown
                await sync_to_async(self.peers.write_row)(self._row(tunnel))
        except BaseException:
            # Whatever failed (listener, database), leave no listener running without its row.
            for tunnel in started:
                if self._workers is not None:
                    await self._workers.stop_tunnel(tunnel.name)
                await self._engine.stop_tunnel(tunnel.name)
                self._shown.pop(tunnel.name, None)
                await sync_to_async(self.peers.remove_row)(tunnel.name)
            raise
        return started

    async def stop_tunnel(self, name: str) -> None:
        """Stop a tunnel wherever it runs: here, or in the agent sharing the database that runs it.

        Raises TunnelNotRunning (here and in the agent that was asked), PeerUnavailable (the agent
        that runs it cannot be asked).
        """
        if self._engine.tunnel(name) is None:
            row = await sync_to_async(Tunnel.objects.filter(name=name).first)()
            if row is not None and row.agent_id != self.agent_id:
                await self.peers.ask_to_stop(row)
                return
        await self._stop_here(name)

    async def _stop_here(self, name: str) -> None:
        async with self._mirror_lock:
            if self._workers is not None and self._engine.tunnel(name) is not None:
                await self._workers.stop_tunnel(name)  # the workers' listeners first: none outlives it
            try:
                await self._engine.stop_tunnel(name)
            except KeyError:
                raise TunnelNotRunning(name) from None
            self._shown.pop(name, None)
            await sync_to_async(self.peers.remove_row)(name)
        await self._announce_tunnel("tunnel.stopped", name)

    async def replace_tunnel(
        self, name: str, definition: dict[str, Any], *, shown_definition: dict[str, Any] | None = None
    ) -> Replacement:
        """Put `definition` in the place of the tunnel `name` (wherever it runs), or start it anew.

        The new definition is checked before the old tunnel stops, and when its listener cannot
        open, the old tunnel (if it ran here) starts again: a failed replace changes nothing. When
        only its Traffic Policy differs from the tunnel running here, the policy is swapped under
        the running listener: no connection is dropped.
        Raises what start_tunnel and stop_tunnel raise.
        """
        specs = await self._specs(definition, name)  # TunnelConfigError before anything stops
        if len(specs) == 1:
            # Only the policy changed: swap it under the running listener, dropping no connection.
            async with self._mirror_lock:
                swapped = await self._engine.swap_policy(specs[0])
                if swapped is not None and self._workers is not None:
                    await self._workers.swap_policy(_order(definition, name, swapped))
                if swapped is not None:
                    if shown_definition is not None:
                        self._shown[name] = shown_definition
                    else:
                        self._shown.pop(name, None)
                    await sync_to_async(self.peers.rewrite_row)(self._row(swapped))
            if swapped is not None:
                await self._announce_tunnel("tunnel.started", name)
                return Replacement(tunnels=[self._info(swapped, await self._worker_metrics())], replaced=True)
        for spec in specs:  # only checked: start_tunnel loads its own
            if spec.policy is not None:
                spec.policy.close()
        old_row = await sync_to_async(Tunnel.objects.filter(name=name).first)()
        running = self._engine.tunnel(name)
        old = (running.spec.definition, self._shown.get(name)) if running is not None else None
        replaced = old_row is not None or running is not None
        if replaced:
            await self.stop_tunnel(name)
        try:
            started = await self.start_tunnel(definition, name, shown_definition=shown_definition)
        except Exception:
            if old is not None:
                await self._restore(name, *old)
            raise
        return Replacement(tunnels=started, replaced=replaced)

    async def _restore(self, name: str, definition: dict[str, Any], shown: dict[str, Any] | None) -> None:
        try:
            await self.start_tunnel(definition, name, shown_definition=shown)
        except (TunnelConfigError, TunnelExists, TunnelStartError) as error:
            log.warning("could not restore tunnel %s after a failed replace: %s", name, error)

    async def tunnel(self, name: str) -> TunnelInfo | None:
        """The tunnel `name` if it runs here, metrics taken now."""
        running = self._engine.tunnel(name)
        if running is None:
            return None
        return self._info(running, await self._worker_metrics())

    async def tunnels(self) -> list[TunnelInfo]:
        """Every tunnel running here, in the order they started, metrics taken now."""
        workers = await self._worker_metrics()
        return [self._info(tunnel, workers) for tunnel in self._engine.tunnels()]

    async def _worker_metrics(self) -> list[tuple[int, dict[str, State]]] | None:
        """Every worker's metrics of every tunnel (None without workers)."""
        return await self._workers.metrics() if self._workers is not None else None

    def _metrics(self, tunnel: RunningTunnel, workers: list[tuple[int, dict[str, State]]] | None) -> dict[str, Any]:
        """The tunnel's metrics as the API shows them: this process's, or summed over the workers
        (metrics_merge.py) when there are some."""
        if workers is None:
            return tunnel.metrics.snapshot()
        parts = [(os.getpid(), metrics_merge.state(tunnel.metrics))]
        parts += [(pid, states[tunnel.name]) for pid, states in workers if tunnel.name in states]
        return metrics_merge.merged_snapshot(parts)

    def _info(self, tunnel: RunningTunnel, workers: list[tuple[int, dict[str, State]]] | None = None) -> TunnelInfo:
        spec = tunnel.spec
        return TunnelInfo(
            name=spec.name,
            public_url=tunnel.public_url,
            proto=spec.proto,
            addr=spec.addr,
            inspect=spec.inspect,
            upstream_host=spec.upstream.netloc,
            metrics=self._metrics(tunnel, workers),
            traffic_policy=spec.policy.source if spec.policy is not None else "",
        )

    async def _fresh_name(self, definition: dict[str, Any]) -> str:
        # Cut short: a long (even invalid) addr must not make the name itself too long.
        proto = re.sub(r"[^A-Za-z0-9.]+", "-", str(definition.get("proto", "http")))[:8]
        addr = re.sub(r"[^A-Za-z0-9.]+", "-", str(definition.get("addr", "")))[:64].strip("-")
        return f"{proto}-{addr}-{uuid.uuid4().hex[:8]}"

    def _row(self, tunnel: RunningTunnel) -> MirrorRow:
        spec = tunnel.spec
        return MirrorRow(
            name=spec.name,
            tunnel_id=tunnel.tunnel_id,
            proto=spec.proto,
            public_url=tunnel.public_url,
            addr=spec.addr,
            inspect=spec.inspect,
            definition=self._shown.get(spec.name, spec.definition),
        )

    def _running_rows(self) -> list[MirrorRow]:
        return [self._row(tunnel) for tunnel in self._engine.tunnels()]

    def worker_pids(self) -> str:
        """This process's id then its workers' (`--workers`), comma-separated, for the log."""
        pids = [os.getpid(), *(self._workers.pids if self._workers is not None else [])]
        return ",".join(str(pid) for pid in pids)

    # --- metrics history --------------------------------------------------------------------
    async def _sample_metrics(self) -> None:
        # One snapshot a tunnel a second (two sorts of a 1028-value sample): microseconds a tunnel.
        while True:
            try:
                workers = await self._worker_metrics()
                self._history.record(
                    time.time(), [(t.spec.name, self._metrics(t, workers)) for t in self._engine.tunnels()]
                )
            except Exception:  # a bad snapshot must not end the history for good
                log.exception("sampling tunnel metrics failed")
            await asyncio.sleep(HISTORY_INTERVAL)

    async def metrics_history(self) -> dict[str, dict[str, list[float]]]:
        """Each running tunnel's metrics over the last minutes, one sample a second, as columns:
        {name: {"t", "count", "rps", "open", "p50", "p90", "p99"}} (MetricsHistory.series)."""
        return self._history.series()

    # --- captures ---------------------------------------------------------------------------
    @property
    def inspect_db_size(self) -> int | None:
        """The bytes the stored captures are kept within: 0 or less for no bound, None when this
        agent stores no captures (inspect_db_size -1)."""
        return self._store.budget if self._store is not None else None

    @property
    def captures_dropped(self) -> int:
        """Captures not kept since start because the database was not keeping up (the capture
        sink's bounds: AGENT_CAPTURE_QUEUE captures or 64 MiB of capture bytes waiting); their
        requests were forwarded all the same. With --workers, the workers' drops as last reported."""
        own = self._sink.dropped if self._sink is not None else 0
        return own + (self._workers.captures_dropped if self._workers is not None else 0)

    @property
    def captures_cut(self) -> int:
        """Captures kept in part since start: while more than half the sink's 64 MiB waited for
        the database, each new message kept at most PRESSURE_CAPTURE_LIMIT bytes (marked cut, as
        the capture limit's cuts are). With --workers, the workers' as last reported."""
        own = self._sink.cut if self._sink is not None else 0
        return own + (self._workers.captures_cut if self._workers is not None else 0)

    async def replay(
        self,
        source: Capture | bytes,
        tunnel_name: str | None = None,
        *,
        replay_of: str = "",
        through_policy: bool = False,
    ) -> Replayed:
        """Send a request to a running http tunnel's local service and capture the exchange.

        `source` is a stored capture (its request; into its own tunnel unless `tunnel_name` says
        otherwise; read in a thread, so fields the caller deferred may load) or edited request
        bytes (`tunnel_name` needed; `replay_of` names the original).
        The tunnel's Traffic Policy is bypassed, as ngrok's inspector does (the bytes went through it
        once), unless `through_policy`: then its on_http_request phase runs first.
        Returns once the new capture is stored.

        Raises TunnelNotRunning (not here), NotAnHttpTunnel, ReplayRefused: a capture whose request
        did not cross whole or was cut at the capture limit, bytes that are not one whole request.
        """
        refused: ReplayRefused | None = None
        if isinstance(source, Capture):
            own_tunnel, raw, refused = await sync_to_async(_stored_request)(source)
            name = tunnel_name or own_tunnel
            replay_of = source.id
        else:
            name, raw = tunnel_name or "", source
        running = self._engine.tunnel(name)
        if running is None:
            raise TunnelNotRunning(name)
        if running.spec.proto not in HTTP_PROTOS:
            raise NotAnHttpTunnel(name, running.spec.proto)
        if refused is not None:
            raise refused
        try:
            record = await self._engine.replay(raw, name, replay_of=replay_of, through_policy=through_policy)
        except KeyError:  # it stopped meanwhile
            raise TunnelNotRunning(name) from None
        return Replayed(id=record.id, status_code=record.status_code)

    async def flush_captures(self) -> None:
        """Store the captures still queued: clients list right after a request and expect it
        (with `--workers`, every worker's queue too, stored through this process)."""
        if self._workers is not None:
            await self._workers.flush()
        if self._sink is not None:
            await self._sink.flush()

    async def clear_captures(self) -> None:
        await sync_to_async(_delete_all_captures)()
        self.forget_stored_total()
        await self._send(CAPTURES_GROUP, {"type": "captures.cleared"})

    def forget_stored_total(self) -> None:
        """Captures were deleted behind the capture store's back: it re-reads its running total.
        Safe from any thread (it raises a flag the writer thread reads)."""
        if self._store is not None:
            self._store.forget_total()

    # --- announcements ----------------------------------------------------------------------
    def add_capture_listener(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `listener(message)` on the loop for every captures message this agent announces
        (the dict is shared: read only); returns the function that removes it. The terminal
        console listens this way: the channel layer would deep-copy every batch for it."""
        self._capture_listeners.append(listener)

        def remove() -> None:
            if listener in self._capture_listeners:
                self._capture_listeners.remove(listener)

        return remove

    async def _announce_captures(self, message: dict[str, Any]) -> None:
        for listener in list(self._capture_listeners):
            try:
                listener(message)
            except Exception:  # a listener's bug must not stop the announcements
                log.exception("capture listener failed")
        await self._send(CAPTURES_GROUP, message)

    async def _announce_tunnel(self, kind: str, name: str) -> None:
        await self._send(TUNNELS_GROUP, {"type": kind, "name": name})

    async def _send(self, group: str, message: dict[str, Any]) -> None:
        if self._layer is None:
            return
        try:
            await self._layer.group_send(group, message)
        except Exception:  # a channel layer outage must not fail tunnel operations
            log.exception("channel layer send failed")


def _order(definition: dict[str, Any], name: str, tunnel: RunningTunnel) -> TunnelOrder:
    """What a worker needs to run `tunnel` as this process does (the port it bound, if any)."""
    sockets = getattr(tunnel.server, "sockets", None)  # None for an internal endpoint
    port = sockets[0].getsockname()[1] if sockets else 0
    return TunnelOrder(definition=definition, name=name, spec_name=tunnel.name, port=port)


def _stored_request(capture: Capture) -> tuple[str, bytes, ReplayRefused | None]:
    """A capture's tunnel and request, and why sending it would leave the service waiting, if so."""
    raw = bytes(capture.request_raw)
    refused = None
    if not capture.request_complete:
        refused = ReplayRefused(
            f"cannot replay {capture.id}: {capture.incomplete_reason or 'its request is incomplete'}"
        )
    elif len(raw) < capture.request_size:
        refused = ReplayRefused(
            f"cannot replay {capture.id}: only {len(raw)} of {capture.request_size} bytes"
            " of the request were captured (raise AGENT_CAPTURE_LIMIT)"
        )
    return capture.tunnel_name, raw, refused


def _delete_all_captures() -> None:
    erase(Capture.objects.all())
