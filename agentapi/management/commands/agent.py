"""`python manage.py agent ...`: the tunnel agent, with ngrok's command line (`agent/cli.mdx`).

    agent                          API + inspector, no tunnels
    agent http 8080 | http file:///srv/site   like `ngrok http 8080`
    agent tcp 5432 | agent tls 443
    agent start NAME... | --all | --none   tunnels from --config files
    agent config check | upgrade [--dry-run] | edit | add-authtoken TOKEN | add-api-key KEY
    agent authtoken TOKEN          ngrok 2's spelling, for npm `ngrok`
    agent completion bash|zsh|fish
    agent diagnose [-6] [-w report.json]
    agent service install --config FILE [--user] | start | stop | restart | uninstall
    agent version | --version | credits

This module is the entry point only: the parser is assembled here from agentapi/cli (the flag
table in cli/flags.py, the flags every command takes in cli/global_flags.py), each subcommand runs
from its own module there, and serving goes through agentapi/serve.py (one asyncio loop).
Every flag of ngrok's `http`, `tcp` and `tls` works, becomes a definition key, or is refused with
the reason; none is ignored (docs/command-line.md has the table). Bool flags take Go's
`--flag=false` (cli/go_flags.py).

Logging: `--log` (or the config's `log`) is stdout, stderr, false or a file (logfmt.open_log_target);
a flag wins over the config key. With `--log stdout` the agent writes ngrok's logfmt lines, which is
what pyngrok and npm `ngrok` wait for, and no console (ServeOptions.log_to_stdout). A start-up
failure is logged (`lvl=eror ... err=`) and also written to stderr, exit status 1. Other commands'
failures are one line on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agentapi import serve
from agentapi.cli import completion, diagnose
from agentapi.cli.config_commands import SUBCOMMANDS, check_files, run_config_command
from agentapi.cli.errors import AgentError
from agentapi.cli.flags import add_endpoint_flags
from agentapi.cli.global_flags import add_global_flags, config_paths, session_flags_given
from agentapi.cli.go_flags import GoBool, GoFlagParser
from agentapi.cli.service import ACTIONS, ServiceCommand, run_service
from agentapi.cli.tunnels import Requested, config_definition, default_config, requested_tunnels
from agentapi.config_file import AgentConfig, ConfigFileError, load_config
from agentapi.logfmt import AgentLog, AgentLogHandler, LogTargetError, open_log_target

__all__ = ["AgentError", "Command", "_requested_tunnels"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
}
CREDITS = (
    "tunnel-agent: a self-hosted agent with ngrok's command line, config file and agent API.\n"
    "ngrok is a trademark of ngrok, Inc.; this agent is not ngrok and contains none of its code.\n"
    "Its Python dependencies keep their own licences (see requirements.txt for the list).\n"
)


class Command(BaseCommand):
    help = "Run the tunnel agent (ngrok-compatible command line)."
    requires_system_checks: list[str] = []

    def get_version(self) -> str:
        return f"ngrok version {settings.AGENT_VERSION}"

    def add_arguments(self, parser: CommandParser) -> None:
        add_global_flags(parser, sub=False)
        subs = parser.add_subparsers(dest="action", parser_class=GoFlagParser)
        for proto, addr_help in (
            ("http", "local port, host:port, URL or file:///directory"),
            ("tcp", "local port or host:port"),
            ("tls", "local port or host:port"),
        ):
            sub = subs.add_parser(proto, help=f"start a {proto} endpoint")
            add_global_flags(sub, sub=True, endpoint=True)
            sub.add_argument("addr", help=addr_help)
            add_endpoint_flags(sub, proto)
        start = subs.add_parser("start", help="start endpoints or tunnels by name from the configuration file")
        add_global_flags(start, sub=True)
        start.add_argument("names", nargs="*")
        start.add_argument("--all", action=GoBool, help="start all endpoints or tunnels in the configuration file")
        start.add_argument("--none", action=GoBool, help="start running no endpoints or tunnels")
        config = subs.add_parser("config", help=" | ".join(SUBCOMMANDS))
        add_global_flags(config, sub=True)
        config.add_argument("what", nargs="*", help="subcommand and its argument")
        config.add_argument("--dry-run", action=GoBool, help="upgrade: preview the proposed changes")
        config.add_argument("--relocate", action=GoBool, help="upgrade: move the file to the default location")
        authtoken = subs.add_parser("authtoken", help="accepted for npm ngrok; tokens are not needed")
        add_global_flags(authtoken, sub=True)
        authtoken.add_argument("token")
        shell = subs.add_parser("completion", help="shell completion code for bash, zsh or fish")
        add_global_flags(shell, sub=True)
        shell.add_argument("shell", nargs="?", default="bash", choices=completion.SHELLS)
        shell.add_argument("--prog", default="ngrok", help="the command name to complete (default ngrok)")
        doctor = subs.add_parser("diagnose", help="check this agent can run here (exit status 0 or 1)")
        add_global_flags(doctor, sub=True)
        doctor.add_argument("-6", "--ipv6", dest="ipv6", action=GoBool, help="also check IPv6 (::1)")
        doctor.add_argument("-w", "--write-report", help="write a JSON report to this file")
        service = subs.add_parser("service", help="run and control the agent as a systemd service")
        add_global_flags(service, sub=True)
        service.add_argument("service_action", choices=ACTIONS)
        service.add_argument("--user", action=GoBool, help="a user unit (~/.config/systemd/user)")
        service.add_argument("--unit-dir", help="write the unit here and run no systemctl")
        subs.add_parser("version", help="print the version string")
        subs.add_parser("credits", help="prints author and licensing information")
        for name, reason in _CLOUD_COMMANDS.items():
            cloud = subs.add_parser(name, help=f"refused: {reason}")
            cloud.add_argument("rest", nargs=argparse.REMAINDER)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action")
        if action == "version":
            self.stdout.write(self.get_version())
            return
        if action == "credits":
            self.stdout.write(CREDITS, ending="")
            return
        if action in _CLOUD_COMMANDS:
            raise CommandError(f"{action}: {_CLOUD_COMMANDS[action]}", returncode=1)
        try:
            if action in ("authtoken", "config"):
                run_config_command(action, options, self.stdout, self.stderr)
            elif action == "completion":
                self._completion(options)
            elif action == "diagnose":
                self._diagnose(options)
            elif action == "service":
                self._service(options)
            else:
                self._serve(action, options)
        except AgentError as error:
            raise CommandError(str(error), returncode=1) from None

    def _serve(self, action: str | None, options: dict[str, Any]) -> None:
        flag_target, flag_format = options.get("log"), options.get("log_format")
        flag_level = options.get("log_level")
        try:
            log = open_log_target(flag_target or "false", flag_format or "logfmt", level=flag_level or "info")
        except LogTargetError as error:
            _fail(AgentLog(None), str(error))
        try:
            config = load_config(config_paths(options) or default_config())
        except ConfigFileError as error:
            _fail(log, str(error))
        target = flag_target or config.log or "false"
        fmt = flag_format or config.log_format or "logfmt"
        level = flag_level or config.log_level or "info"
        if (target, fmt, level) != (flag_target or "false", flag_format or "logfmt", flag_level or "info"):
            log.close()
            try:
                log = open_log_target(target, fmt, level=level)
            except LogTargetError as error:
                _fail(AgentLog(None), str(error))
        _route_logging(log, level)
        try:
            requested = requested_tunnels(action, options, config)
        except AgentError as error:
            _fail(log, str(error))
        _log_notices(log, config, options, requested)
        serve_options = serve.ServeOptions(
            web_addr=options.get("web_addr") or config.web_addr,
            web_allow_hosts=tuple(config.web_allow_hosts),
            inspect_db_size=config.capture_db_size,
            definitions=tuple(requested.definitions),
            console_ui=config.console_ui or "iftty",
            console_ui_color=config.console_ui_color or "",
            log_to_stdout=target == "stdout",
            workers=options.get("workers") or config.workers or 1,
        )
        try:
            serve.run(serve_options, log)
        except serve.StartupError as error:
            _fail(log, str(error))
        finally:
            log.close()

    def _completion(self, options: dict[str, Any]) -> None:
        parser = self.create_parser("manage.py", "agent")
        tree = completion.command_tree(parser, {"config": SUBCOMMANDS})
        try:
            self.stdout.write(completion.script(options["shell"], tree, options.get("prog") or "ngrok"), ending="")
        except ValueError as error:
            raise AgentError(f"completion: {error}") from None

    def _diagnose(self, options: dict[str, Any]) -> None:
        try:
            config = load_config(config_paths(options) or default_config())
        except ConfigFileError as error:
            raise AgentError(str(error)) from None
        checks = diagnose.check_localhost(ipv6=bool(options.get("ipv6")))
        checks.append(diagnose.check_web_address(serve.bind_web, options.get("web_addr") or config.web_addr))
        checks.append(diagnose.check_database(diagnose.database_probe))
        names = list(config.tunnels) + list(config.endpoints)
        definitions = []
        for name in names:
            try:
                definitions.append(config_definition(config, name))
            except AgentError as error:
                checks.append(diagnose.Check(f"upstream {name}", False, str(error)))
        checks += diagnose.check_upstreams(definitions)
        now = dt.datetime.now(dt.UTC)
        database = settings.DATABASES["default"]
        sqlite_file = Path(str(database["NAME"])) if database["ENGINE"].endswith("sqlite3") else None
        checks.append(diagnose.check_clock(now, sqlite_file))
        if options.get("region"):
            self.stdout.write(f"--region {options['region']}: not applicable (ngrok's cloud regions)")
        for line in diagnose.summary_lines(checks):
            self.stdout.write(line)
        report = options.get("write_report")
        if report:
            try:
                Path(report).write_text(
                    diagnose.report_json(checks, agent_version=settings.AGENT_VERSION, now=now), encoding="utf-8"
                )
            except OSError as error:
                raise AgentError(f"--write-report {report}: {error.strerror or error}") from None
            self.stdout.write(f"Report written to {report}")
        if not all(check.ok for check in checks):
            raise CommandError("diagnose: problems found", returncode=1)

    def _service(self, options: dict[str, Any]) -> None:
        paths = config_paths(options)
        command = ServiceCommand(
            action=options["service_action"],
            config=paths[0] if paths else None,
            user=bool(options.get("user")),
            unit_dir=Path(options["unit_dir"]) if options.get("unit_dir") else None,
        )
        run_service(
            command,
            manage_py=Path(settings.BASE_DIR) / "manage.py",
            data_dir=Path(settings.DATA_DIR).resolve(),
            check_config=lambda path: check_files([path]),
            say=self.stdout.write,
            warn=self.stderr.write,
        )


_CLOUD_COMMANDS = {
    "api": "`ngrok api` is a client for ngrok's cloud API; this agent's own API is at its web address (/api)",
    "update": "this agent is updated with its source (git pull, pip install -r requirements.txt), "
    "not by ngrok's updater",
}


def _requested_tunnels(action: str | None, options: dict[str, Any], config: AgentConfig) -> list[dict[str, Any]]:
    """The definitions `action` starts (kept for callers of the older command module)."""
    return requested_tunnels(action, options, config).definitions


def _log_notices(log: AgentLog, config: AgentConfig, options: dict[str, Any], requested: Requested) -> None:
    """One line for the cloud-only settings accepted and ignored, and one per flag notice."""
    ignored = sorted(
        set(config.ignored) | {flag[2:] for flag in session_flags_given(options)} | {f[2:] for f in requested.ignored}
    )
    if ignored:
        log.line("info", "ignoring cloud-only settings", obj="config", keys=",".join(ignored))
    for notice in requested.notices:
        log.line("info", notice, obj="cli")


def _route_logging(log: AgentLog, level: str) -> None:
    logging_level = _LEVELS.get(level, logging.INFO)
    handler: logging.Handler = AgentLogHandler(log) if log.stream is not None else logging.StreamHandler(sys.stderr)
    handler.setLevel(logging_level if log.stream is not None else logging.WARNING)
    for name in ("agentapi", "django", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging_level)
        logger.propagate = False


def _fail(log: AgentLog, err: str) -> NoReturn:
    """Report a start-up failure in the log (pyngrok reads `lvl=eror ... err=`) and on stderr.

    The stderr line is what npm `ngrok` waits for: it rejects on any stderr output, but a process
    that exits after logging only to stdout leaves its `connect()` pending forever.
    """
    log.line("eror", "agent failed to start", obj="agent", err=err)
    if log.stream is not sys.stderr:
        sys.stderr.write(f"ERROR:  {err}\n")
        sys.stderr.flush()
    if log.stream is sys.stdout:
        # pyngrok handles one line per check of the process, and stops reading once it has exited.
        time.sleep(0.5)
    log.close()
    raise SystemExit(1)
