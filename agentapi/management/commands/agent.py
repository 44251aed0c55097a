"""`python manage.py agent ...`: the tunnel agent, with ngrok's command line.

    agent                          API + inspector, no tunnels
    agent http 8080                like `ngrok http 8080`
    agent tcp 5432 | agent tls 443
    agent start NAME... | --all | --none   tunnels from --config files
    agent version | --version
    agent authtoken TOKEN | config add-authtoken TOKEN | config add-api-key KEY   accepted, not needed
    agent config check             validate the --config files

One asyncio loop runs uvicorn (API, inspector, admin) and every tunnel. With `--log stdout` the
agent writes ngrok's logfmt lines, which is what pyngrok and npm `ngrok` wait for; without it,
a short human banner. A start-up failure is logged (`lvl=eror ... err=`) and also written to
stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agentapi.config_file import AgentConfig, ConfigFileError, load_config
from agentapi.definitions import endpoint_definition
from agentapi.logfmt import AgentLog, AgentLogHandler
from agentapi.runtime import TunnelConfigError, TunnelExists, TunnelInfo, TunnelStartError

DEFAULT_WEB_ADDR = "127.0.0.1:4040"
# Like ngrok: when the default inspector port is taken, try the next ones.
WEB_PORT_FALLBACKS = 10


class AgentError(Exception):
    pass


def _common_options(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    default = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--config", action="append", default=argparse.SUPPRESS if sub else [], help="config file (repeatable)"
    )
    parser.add_argument("--web-addr", default=default, help=f"API and inspector address (default {DEFAULT_WEB_ADDR})")
    parser.add_argument("--log", default=default, help="where to log: stdout, stderr or false")
    parser.add_argument("--log-format", default=default, choices=["logfmt", "json", "term"])
    parser.add_argument("--log-level", default=default, choices=["debug", "info", "warn", "error", "crit"])
    # Cloud-only options clients pass; accepted and ignored.
    parser.add_argument("--authtoken", default=default, help=argparse.SUPPRESS)
    parser.add_argument("--region", default=default, help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default=default, help=argparse.SUPPRESS)


class Command(BaseCommand):
    help = "Run the tunnel agent (ngrok-compatible command line)."
    requires_system_checks: list[str] = []  # type: ignore[assignment]

    def get_version(self) -> str:
        return f"ngrok version {settings.AGENT_VERSION}"

    def add_arguments(self, parser: CommandParser) -> None:
        _common_options(parser, sub=False)
        subs = parser.add_subparsers(dest="action")
        for proto, port_help in (
            ("http", "local port or URL"),
            ("tcp", "local port or host:port"),
            ("tls", "local port or host:port"),
        ):
            sub = subs.add_parser(proto, help=f"start a {proto} tunnel")
            _common_options(sub, sub=True)
            sub.add_argument("addr", help=port_help)
            sub.add_argument("--name", default="command_line")
            sub.add_argument(
                "--url", "--domain", dest="url", default=None, help="public [scheme://]host:port to listen on"
            )
            if proto == "http":
                sub.add_argument("--host-header", default=None)
                sub.add_argument("--basic-auth", action="append", default=None)
                sub.add_argument("--inspect", default="true", choices=["true", "false"])
                sub.add_argument(
                    "--scheme", action="append", choices=["http", "https"], default=None, help="repeatable"
                )
            if proto == "tcp":
                sub.add_argument("--remote-addr", default=None)
        start = subs.add_parser("start", help="start tunnels from the configuration file")
        _common_options(start, sub=True)
        start.add_argument("names", nargs="*")
        start.add_argument("--all", action="store_true")
        start.add_argument("--none", action="store_true")
        subs.add_parser("version", help="print the version")
        authtoken = subs.add_parser("authtoken", help="accepted for npm ngrok; tokens are not needed")
        _common_options(authtoken, sub=True)
        authtoken.add_argument("token")
        config = subs.add_parser(
            "config", help="add-authtoken TOKEN | add-api-key KEY (accepted, not needed) | check (validate)"
        )
        _common_options(config, sub=True)
        config.add_argument("what", nargs="*")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action")
        if action == "version":
            self.stdout.write(self.get_version())
            return
        if action in ("authtoken", "config"):
            self._config_command(action, options)
            return
        log_target = options.get("log")
        stream = {"stdout": sys.stdout, "stderr": sys.stderr}.get(log_target or "")
        log = AgentLog(stream, options.get("log_format") or "logfmt")
        try:
            config = load_config([Path(p) for p in options.get("config") or []] or _default_config())
            if config.log and log_target is None:
                stream = {"stdout": sys.stdout, "stderr": sys.stderr}.get(config.log)
                log = AgentLog(stream, config.log_format or "logfmt")
            tunnels = _requested_tunnels(action, options, config)
        except (ConfigFileError, AgentError) as error:
            _fail(log, str(error))
        if config.ignored or any(options.get(k) for k in ("authtoken", "region", "api_key")):
            ignored = sorted(set(config.ignored) | {k for k in ("authtoken", "region", "api_key") if options.get(k)})
            log.line("info", "ignoring cloud-only settings", obj="config", keys=",".join(ignored))
        _route_logging(log, options.get("log_level") or config.log_level or "info")
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:  # uvloop is optional (not on Windows); asyncio's loop works too
            pass
        try:
            asyncio.run(_serve(options, config, tunnels, log), debug=False)
        except AgentError as error:
            _fail(log, str(error))

    def _config_command(self, action: str, options: dict[str, Any]) -> None:
        """`authtoken TOKEN` (2.x, npm ngrok) and `config add-authtoken|add-api-key|check` (3.x, pyngrok).

        The agent needs no account, so tokens and keys are accepted and not written anywhere; the
        clients only read the confirmation (pyngrok looks for "Authtoken saved" / "API key saved").
        """
        paths = [Path(p) for p in options.get("config") or []] or _default_config()
        what = ["add-authtoken", options["token"]] if action == "authtoken" else list(options.get("what") or [])
        sub, args = (what[0], what[1:]) if what else ("", [])
        if sub in ("add-authtoken", "add-api-key") and len(args) == 1:
            thing = "Authtoken" if sub == "add-authtoken" else "API key"
            self.stdout.write(f"{thing} saved to configuration file (ignored: this agent needs no account).")
        elif sub == "check" and not args:
            try:
                load_config(paths)
            except ConfigFileError as error:
                raise CommandError(str(error), returncode=1) from None
            where = ", ".join(str(p) for p in paths) or "(none: defaults)"
            self.stdout.write(f"Valid configuration file at {where}")
        else:
            raise CommandError(
                f"unsupported: {action} {' '.join(what)}".rstrip()
                + " (this agent knows: config add-authtoken TOKEN, config add-api-key KEY, config check)",
                returncode=1,
            )


def _default_config() -> list[Path]:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = base / "ngrok" / "ngrok.yml"
    return [path] if path.exists() else []


def _requested_tunnels(action: str | None, options: dict[str, Any], config: AgentConfig) -> list[dict[str, Any]]:
    """The definitions to start, each with its name."""
    if action in ("http", "tcp", "tls"):
        definition: dict[str, Any] = {"proto": action, "addr": options["addr"], "name": options["name"]}
        if options.get("url"):
            definition["remote_addr" if action == "tcp" else "url"] = options["url"]
        if options.get("remote_addr"):
            definition["remote_addr"] = options["remote_addr"]
        if action == "http":
            definition["inspect"] = options["inspect"] == "true"
            if options.get("host_header"):
                definition["host_header"] = options["host_header"]
            if options.get("basic_auth"):
                definition["basic_auth"] = options["basic_auth"]
            if options.get("scheme"):
                definition["schemes"] = options["scheme"]
            elif str(options.get("url") or "").startswith("https://"):
                definition["schemes"] = ["https"]
        return [definition]
    if action != "start":
        return []
    names = list(options.get("names") or [])
    if options.get("all"):
        names = list(config.tunnels) + list(config.endpoints)
    definitions = []
    for name in names:
        if name in config.tunnels:
            definitions.append({**config.tunnels[name], "name": name})
        elif name in config.endpoints:
            try:
                definitions.append(endpoint_definition(config.endpoints[name], name=name))
            except TunnelConfigError as error:
                raise AgentError(f"endpoint {name!r}: {error}") from None
        else:
            raise AgentError(f'tunnel "{name}" is not defined in the configuration file')
    return definitions


def _route_logging(log: AgentLog, level: str) -> None:
    logging_level = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}.get(level, logging.ERROR)
    handler: logging.Handler = AgentLogHandler(log) if log.stream is not None else logging.StreamHandler(sys.stderr)
    handler.setLevel(logging_level if log.stream is not None else logging.WARNING)
    for name in ("agentapi", "django", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging_level)
        logger.propagate = False


def _fail(log: AgentLog, err: str) -> None:
    """Report a start-up failure in the log (pyngrok reads `lvl=eror ... err=`) and on stderr.

    The stderr line is what npm `ngrok` waits for: it rejects on any stderr output, but a process
    that exits after logging only to stdout leaves its `connect()` pending forever.
    """
    log.line("eror", "agent failed to start", obj="agent", err=err)
    if log.stream is not sys.stderr:
        sys.stderr.write(f"ERROR:  {err}\n")
        sys.stderr.flush()
    if log.stream is not None:
        # pyngrok handles one line per check of the process, and stops reading once it has exited.
        time.sleep(0.5)
    raise SystemExit(1)


def _bind_web(web_addr: str | None) -> socket.socket:
    explicit = web_addr is not None
    host, _, port_text = (web_addr or DEFAULT_WEB_ADDR).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit():
        raise AgentError(f"invalid web_addr {web_addr!r}: host:port expected")
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
    raise AgentError(f"failed to start the web service: listen tcp {shown}: bind: {reason.lower()}")


async def _serve(
    options: dict[str, Any], config: AgentConfig, definitions: list[dict[str, Any]], log: AgentLog
) -> None:
    import uvicorn
    from django.utils.module_loading import import_string

    from agentapi.bounded_http import BoundedHttpToolsProtocol
    from agentapi.runtime import AgentRuntime

    await asyncio.to_thread(call_command, "migrate", verbosity=0, interactive=False)
    settings.AGENT_WEB_ALLOW_HOSTS = [*settings.AGENT_WEB_ALLOW_HOSTS, *config.web_allow_hosts]
    sock = _bind_web(options.get("web_addr") or config.web_addr)
    web_host, web_port = sock.getsockname()[:2]
    web_addr = f"[{web_host}]:{web_port}" if ":" in web_host else f"{web_host}:{web_port}"

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
    uv_config.load()
    server.lifespan = uv_config.lifespan_class(uv_config)
    await server.startup(sockets=[sock])

    inspect_db_size = config.inspect_db_size if config.inspect_db_size is not None else 0
    runtime = AgentRuntime(inspect_db_size=inspect_db_size)
    await runtime.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    log.line(
        "info", "starting web service", obj="web", addr=web_addr, allow_hosts=",".join(settings.AGENT_WEB_ALLOW_HOSTS)
    )
    log.line("info", "client session established", obj="csess", id=runtime.agent_id)
    log.line("info", "tunnel session started", obj="tunnels.session")
    if log.stream is None:
        print(f"Web Interface                 http://{web_addr}", flush=True)
        print(
            f"Admin                         http://{web_addr}/admin/ (login: python manage.py createsuperuser)",
            flush=True,
        )

    try:
        for definition in definitions:
            started = await _start(runtime, definition)
            for tunnel in started:
                log.line(
                    "info",
                    "started tunnel",
                    obj="tunnels",
                    name=tunnel.name,
                    addr=tunnel.addr,
                    url=tunnel.public_url,
                )
                if log.stream is None:
                    print(f"Forwarding                    {tunnel.public_url} -> {tunnel.addr}", flush=True)
    except AgentError:
        await runtime.close()
        await server.shutdown()
        raise

    # Everything made so far (Django, URL conf, templates) lives as long as the process: keep it
    # out of the collector's generations, and collect young objects less often. At proxy rates
    # the default thresholds meant a full collection every ~1.5 s, pausing the loop up to 66 ms.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    log.line("info", "agent ready", obj="app", tunnels=len(await runtime.tunnels()))
    main_loop = loop.create_task(server.main_loop())
    stop_wait = loop.create_task(stop.wait())
    await asyncio.wait([main_loop, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    log.line("info", "received stop request", obj="app", stopReq="signal")
    # Listeners first, then every pending capture, then the web server.
    await runtime.close()
    server.should_exit = True
    await main_loop
    await server.shutdown()
    stop_wait.cancel()
    log.line("info", "agent stopped", obj="app")


async def _start(runtime: Any, definition: dict[str, Any]) -> list[TunnelInfo]:
    name = definition.get("name")
    try:
        started: list[TunnelInfo] = await runtime.start_tunnel(definition, name)
        return started
    except (TunnelConfigError, TunnelExists, TunnelStartError) as error:
        raise AgentError(f"tunnel {name!r}: {error}") from None
