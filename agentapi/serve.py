"""Process start-up: one asyncio loop runs uvicorn (API, inspector, admin) and the runtime's tunnels.

`manage.py agent` parses its command line and config files into `ServeOptions` and calls `run`;
nothing here reads argv or a config file, and nothing writes `django.conf.settings`: what the command
line and config file add (web_allow_hosts, inspect_db_size) goes to the runtime explicitly.

The order: migrate, bind the web socket (trying the next ports when the default one is taken, like
ngrok), start the runtime (so the first API request finds it), start uvicorn on the socket, log the
lines clients wait for, start the requested tunnels, show the console (agentapi/console: ngrok's
`console_ui` rules; the banner lines are printed only without it), log `agent ready`. On
SIGINT/SIGTERM: the console gives the terminal back first, then listeners, then every pending
capture, then the web server. A start-up failure is a `StartupError` whose message is what the
command reports (a bad console_ui or console_ui_color is one).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import call_command

from .console import AgentConsole, ConsoleSettingError, console_wanted
from .logfmt import AgentLog
from .runtime import AgentRuntime, TunnelConfigError, TunnelExists, TunnelInfo, TunnelStartError

DEFAULT_WEB_ADDR = "127.0.0.1:4040"
# Like ngrok: when the default inspector port is taken, try the next ones.
WEB_PORT_FALLBACKS = 10


class StartupError(Exception):
    """The agent cannot start (web port taken, a bad web_addr, a tunnel that cannot open)."""


@dataclass(frozen=True)
class ServeOptions:
    """What the command line and the config files ask of this process, as plain values."""

    web_addr: str | None = None  # host:port; None: DEFAULT_WEB_ADDR or one of the next ports
    web_allow_hosts: tuple[str, ...] = ()  # the config file's, on top of AGENT_WEB_ALLOW_HOSTS
    inspect_db_size: int = 0  # 0: AGENT_INSPECT_DB_SIZE; -1: no captures
    definitions: tuple[dict[str, Any], ...] = ()  # tunnels to start, each with its name
    # ngrok's console_ui: "true", "false" or "iftty" (shown when stdout is a terminal).
    console_ui: str = "iftty"
    # ngrok's console_ui_color: the console's background ("transparent", "black"...); "": the terminal's.
    console_ui_color: str = ""
    # `--log stdout` (or `log: stdout`): the log lines own stdout, so no console, as in ngrok.
    log_to_stdout: bool = False
    # What the console shows as Region; "": "local".
    region_label: str = ""
    # `--workers N`: engine processes sharing each tunnel's port (agentapi/workers); not an ngrok flag.
    workers: int = 1


def run(options: ServeOptions, log: AgentLog) -> None:
    """Serve until SIGINT/SIGTERM. Raises StartupError."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # uvloop is optional (not on Windows); asyncio's loop works too
        pass
    # The capture writer thread shares the GIL with the loop: with Python's default 5 ms switch
    # interval a request could wait that long for the loop to get it back. 0.5 ms halved the
    # inspected p99 at wrk c=32 (13.2 -> 7.1 ms, 6 alternating rounds) at the same CPU per request.
    sys.setswitchinterval(0.0005)
    asyncio.run(serve(options, log), debug=False)


async def serve(options: ServeOptions, log: AgentLog) -> None:
    import uvicorn
    from django.utils.module_loading import import_string

    from .bounded_http import BoundedHttpToolsProtocol

    try:
        show_console = console_wanted(
            options.console_ui,
            stdout_is_terminal=_is_terminal(sys.stdout),
            # The log's own stream says it too, whoever built the options.
            log_to_stdout=options.log_to_stdout or (log.stream is not None and log.stream is sys.stdout),
        )
    except ConsoleSettingError as error:
        raise StartupError(str(error)) from None
    await asyncio.to_thread(call_command, "migrate", verbosity=0, interactive=False)
    sock = bind_web(options.web_addr)
    web_host, web_port = sock.getsockname()[:2]
    web_addr = f"[{web_host}]:{web_port}" if ":" in web_host else f"{web_host}:{web_port}"

    runtime = AgentRuntime(
        inspect_db_size=options.inspect_db_size, web_allow_hosts=options.web_allow_hosts, workers=options.workers
    )
    try:
        await runtime.start()
    except RuntimeError as error:  # a worker process that could not start
        await runtime.close()
        raise StartupError(str(error)) from None

    # The project's ASGI application, named by settings (ASGI_APPLICATION): the agent app imports
    # nothing of the project package.
    uv_config = uvicorn.Config(
        import_string(settings.ASGI_APPLICATION),
        lifespan="off",
        access_log=False,
        log_config=None,
        ws="websockets",
        http=BoundedHttpToolsProtocol,
    )
    server = uvicorn.Server(uv_config)
    try:
        uv_config.load()
        server.lifespan = uv_config.lifespan_class(uv_config)
        await server.startup(sockets=[sock])
    except BaseException:
        await runtime.close()
        raise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    allow_hosts = [*settings.AGENT_WEB_ALLOW_HOSTS, *options.web_allow_hosts]
    log.line("info", "starting web service", obj="web", addr=web_addr, allow_hosts=",".join(allow_hosts))
    log.line("info", "client session established", obj="csess", id=runtime.agent_id)
    log.line("info", "tunnel session started", obj="tunnels.session")
    if log.stream is None and not show_console:
        print(f"Web Interface                 http://{web_addr}", flush=True)
        print(
            f"Admin                         http://{web_addr}/admin/ (login: python manage.py createsuperuser)",
            flush=True,
        )

    try:
        for definition in options.definitions:
            for tunnel in await _start(runtime, definition):
                log.line(
                    "info", "started tunnel", obj="tunnels", name=tunnel.name, addr=tunnel.addr, url=tunnel.public_url
                )
                if log.stream is None and not show_console:
                    print(f"Forwarding                    {tunnel.public_url} -> {tunnel.addr}", flush=True)
    except StartupError:
        await runtime.close()
        await server.shutdown()
        raise

    console: AgentConsole | None = None
    if show_console:
        console = AgentConsole(
            runtime.tunnels,
            get_channel_layer(),
            log,
            version=settings.AGENT_VERSION,
            web_url=f"http://{web_addr}",
            region=options.region_label,
            color=options.console_ui_color,
            # The runtime's in-process capture hook once it has one: no copy of every batch, as the
            # channel layer makes (agentapi/console/feed.py); until then, the channel layer.
            subscribe=getattr(runtime, "add_capture_listener", None),
        )
        try:
            await console.start()
        except ConsoleSettingError as error:
            await console.close()
            await runtime.close()
            await server.shutdown()
            raise StartupError(str(error)) from None

    # Everything made so far (Django, URL conf, templates) lives as long as the process: keep it
    # out of the collector's generations, and collect young objects less often. At proxy rates
    # the default thresholds meant a full collection every ~1.5 s, pausing the loop up to 66 ms.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    if options.workers > 1:
        log.line("info", "engine workers started", obj="workers", count=options.workers, pids=runtime.worker_pids())
    log.line("info", "agent ready", obj="app", tunnels=len(await runtime.tunnels()))
    main_loop = loop.create_task(server.main_loop())
    stop_wait = loop.create_task(stop.wait())
    try:
        await asyncio.wait([main_loop, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    finally:
        # The terminal first (Ctrl-C gives it back at once, and the log lines held meanwhile).
        if console is not None:
            await console.close()
    log.line("info", "received stop request", obj="app", stopReq="signal")
    # Listeners first, then every pending capture, then the web server.
    await runtime.close()
    server.should_exit = True
    await main_loop
    await server.shutdown()
    stop_wait.cancel()
    log.line("info", "agent stopped", obj="app")


async def _start(runtime: AgentRuntime, definition: dict[str, Any]) -> list[TunnelInfo]:
    name = definition.get("name")
    try:
        return await runtime.start_tunnel(definition, name)
    except (TunnelConfigError, TunnelExists, TunnelStartError) as error:
        raise StartupError(f"tunnel {name!r}: {error}") from None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # a replaced or closed stdout
        return False


def bind_web(web_addr: str | None) -> socket.socket:
    """The web interface's listening socket: `web_addr`, or the default with the next ports as fallbacks."""
    explicit = web_addr is not None
    host, _, port_text = (web_addr or DEFAULT_WEB_ADDR).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit():
        raise StartupError(f"invalid web_addr {web_addr!r}: host:port expected")
    port = int(port_text)
    attempts = 1 if explicit else WEB_PORT_FALLBACKS
    last_error: OSError | None = None
    for offset in range(attempts):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port + offset))
        except OSError as error:
            sock.close()
            last_error = error
            continue
        sock.listen(1024)
        sock.setblocking(False)
        return sock
    # Go's wording (`listen tcp 127.0.0.1:4040: bind: address already in use`), which npm `ngrok`
    # matches to tell a busy port from other failures.
    reason = (last_error.strerror or str(last_error)) if last_error else "unknown error"
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raise StartupError(f"failed to start the web service: listen tcp {shown}: bind: {reason.lower()}")
