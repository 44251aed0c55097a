"""`python manage.py agent ...`: the tunnel agent, with ngrok's command line.

    agent                          API + inspector, no tunnels
    agent http 8080                like `ngrok http 8080`
    agent tcp 5432 | agent tls 443
    agent start NAME... | --all | --none   tunnels from --config files
    agent version | --version
    agent authtoken TOKEN | config add-authtoken TOKEN | config add-api-key KEY   accepted, not needed
    agent config check             validate the --config files

This module is the command line only: argparse and the config files become `ServeOptions`, and
agentapi/serve.py runs the process (one asyncio loop: uvicorn and every tunnel).

Traffic Policy (`agent/cli.mdx`): `--traffic-policy-file PATH` (`--policy-file`, its old name) and
`--traffic-policy-url URL` on http, tcp and tls; `--binding internal|public`, `--pooling-enabled`.
The flags ngrok 3.36 deprecated in favour of Traffic Policy still work, hidden from `--help` as in
ngrok, and become the definition keys they stand for (tunnel_spec turns those into policy rules
and logs the deprecation): `--basic-auth`, `--request-header-add/-remove`,
`--response-header-add/-remove`, `--compression`, `--circuit-breaker`, `--verify-webhook` with
`--verify-webhook-secret`, `--ua-filter-allow/-deny`, and `--cidr-allow/-deny` (current on tcp and
tls). List flags repeat; those that hold names, CIDRs or patterns also split on commas, as Go's
string-slice flags do. `--oauth*`, `--oidc*` and `--mutual-tls-cas` parse and are refused: they
need ngrok's cloud. With `--log stdout`
the agent writes ngrok's logfmt lines, which is what pyngrok and npm `ngrok` wait for; without it,
a short human banner. A start-up failure is logged (`lvl=eror ... err=`) and also written to
stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agentapi import serve
from agentapi.config_file import AgentConfig, ConfigFileError, load_config, read_policy_file
from agentapi.definitions import endpoint_definition
from agentapi.engine.policy.document import MAX_POLICY_BYTES
from agentapi.engine.policy.legacy import REFUSED_KEYS
from agentapi.engine.tunnel_spec import parse_definition
from agentapi.logfmt import AgentLog, AgentLogHandler
from agentapi.runtime import TunnelConfigError

# Flags ngrok keeps for its cloud: parsed, then refused with the reason (`agent/cli.mdx`).
_CLOUD_FLAGS = {
    "oauth": "--oauth",
    "oauth_allow_domain": "--oauth-allow-domain",
    "oauth_allow_email": "--oauth-allow-email",
    "oauth_client_id": "--oauth-client-id",
    "oauth_client_secret": "--oauth-client-secret",
    "oauth_scope": "--oauth-scope",
    "oidc": "--oidc",
    "oidc_client_id": "--oidc-client-id",
    "oidc_client_secret": "--oidc-client-secret",
    "oidc_scope": "--oidc-scope",
    "mutual_tls_cas": "--mutual-tls-cas",
}
POLICY_URL_TIMEOUT = 10.0  # seconds to fetch --traffic-policy-url


class AgentError(Exception):
    pass


def _common_options(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    default = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--config", action="append", default=argparse.SUPPRESS if sub else [], help="config file (repeatable)"
    )
    parser.add_argument(
        "--web-addr", default=default, help=f"API and inspector address (default {serve.DEFAULT_WEB_ADDR})"
    )
    parser.add_argument("--log", default=default, help="where to log: stdout, stderr or false")
    parser.add_argument("--log-format", default=default, choices=["logfmt", "json", "term"])
    parser.add_argument("--log-level", default=default, choices=["debug", "info", "warn", "error", "crit"])
    # Cloud-only options clients pass; accepted and ignored.
    parser.add_argument("--authtoken", default=default, help=argparse.SUPPRESS)
    parser.add_argument("--region", default=default, help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default=default, help=argparse.SUPPRESS)


class Command(BaseCommand):
    help = "Run the tunnel agent (ngrok-compatible command line)."
    requires_system_checks: list[str] = []

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
            _policy_options(sub, proto)
            if proto == "http":
                sub.add_argument("--host-header", default=None)
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
        serve_options = serve.ServeOptions(
            web_addr=options.get("web_addr") or config.web_addr,
            web_allow_hosts=tuple(config.web_allow_hosts),
            inspect_db_size=config.inspect_db_size if config.inspect_db_size is not None else 0,
            definitions=tuple(tunnels),
        )
        try:
            serve.run(serve_options, log)
        except serve.StartupError as error:
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
                _check_definitions(load_config(paths))
            except (ConfigFileError, AgentError) as error:
                raise CommandError(str(error), returncode=1) from None
            where = ", ".join(str(p) for p in paths) or "(none: defaults)"
            self.stdout.write(f"Valid configuration file at {where}")
        else:
            raise CommandError(
                f"unsupported: {action} {' '.join(what)}".rstrip()
                + " (this agent knows: config add-authtoken TOKEN, config add-api-key KEY, config check)",
                returncode=1,
            )


def _policy_options(sub: argparse.ArgumentParser, proto: str) -> None:
    """The Traffic Policy flags of `http`, `tcp` and `tls`, and the deprecated ones it replaces."""
    hidden = argparse.SUPPRESS  # ngrok hides its deprecated flags from --help (3.36.0)
    policy_file = "path to a Traffic Policy file (YAML or JSON)"
    sub.add_argument("--traffic-policy-file", "--policy-file", dest="traffic_policy_file", help=policy_file)
    sub.add_argument("--traffic-policy-url", help="URL of a Traffic Policy file (YAML or JSON)")
    sub.add_argument("--binding", choices=["public", "internal", "kubernetes"], help="public or internal")
    sub.add_argument(
        "--pooling-enabled", nargs="?", const="true", choices=["true", "false"], help="share the URL with others"
    )
    sub.add_argument("--cidr-allow", action="append", help=hidden if proto == "http" else "allowed CIDRs")
    sub.add_argument("--cidr-deny", action="append", help=hidden if proto == "http" else "denied CIDRs")
    if proto in ("http", "tls"):
        sub.add_argument("--mutual-tls-cas", help=hidden)
    if proto != "http":
        return
    sub.add_argument("--basic-auth", action="append", default=None, help=hidden)
    for name in (
        "--request-header-add",
        "--request-header-remove",
        "--response-header-add",
        "--response-header-remove",
    ):
        sub.add_argument(name, action="append", help=hidden)
    sub.add_argument("--compression", nargs="?", const="true", choices=["true", "false"], help=hidden)
    sub.add_argument("--circuit-breaker", type=float, help=hidden)
    sub.add_argument("--verify-webhook", help=hidden)
    sub.add_argument("--verify-webhook-secret", help=hidden)
    sub.add_argument("--ua-filter-allow", action="append", help=hidden)
    sub.add_argument("--ua-filter-deny", action="append", help=hidden)
    for dest, flag in _CLOUD_FLAGS.items():
        if dest != "mutual_tls_cas":
            sub.add_argument(flag, dest=dest, nargs="?", const="true", help=hidden)


def _split(values: list[str] | None) -> list[str]:
    """Repeated flags, each split on commas as Go's string-slice flags do (CSV, quotes honoured)."""
    items: list[str] = []
    for value in values or []:
        items.extend(item.strip() for item in next(csv.reader([value])) if item.strip())
    return items


def _policy_definition(action: str, options: dict[str, Any]) -> dict[str, Any]:
    """The definition keys the Traffic Policy flags stand for. Raises AgentError."""
    for dest, flag in _CLOUD_FLAGS.items():
        if options.get(dest) is not None:
            key = dest if dest == "mutual_tls_cas" else dest.split("_")[0]  # oauth_scope -> oauth
            raise AgentError(f"{flag}: {REFUSED_KEYS[key]}")
    definition: dict[str, Any] = {}
    policy_file, policy_url = options.get("traffic_policy_file"), options.get("traffic_policy_url")
    if policy_file and policy_url:
        raise AgentError("give --traffic-policy-file or --traffic-policy-url, not both")
    if policy_file:
        try:
            definition["traffic_policy"] = read_policy_file(Path(policy_file).expanduser(), "--traffic-policy-file")
        except ConfigFileError as error:
            raise AgentError(str(error)) from None
    elif policy_url:
        definition["traffic_policy"] = _fetch_policy(policy_url)
    if options.get("binding"):
        definition["bindings"] = [options["binding"]]
    if options.get("pooling_enabled") == "true":
        definition["pooling_enabled"] = True
    allow, deny = _split(options.get("cidr_allow")), _split(options.get("cidr_deny"))
    if allow or deny:
        definition["ip_restriction"] = {"allow_cidrs": allow, "deny_cidrs": deny}
    if action != "http":
        return definition
    if options.get("basic_auth"):
        definition["basic_auth"] = options["basic_auth"]
    for key in ("request_header", "response_header"):
        add = list(options.get(f"{key}_add") or [])  # a value may hold commas: not split
        remove = _split(options.get(f"{key}_remove"))
        if add or remove:
            definition[key] = {"add": add, "remove": remove}
    if options.get("compression") == "true":
        definition["compression"] = True
    if options.get("circuit_breaker") is not None:
        definition["circuit_breaker"] = options["circuit_breaker"]
    if options.get("verify_webhook_secret") and not options.get("verify_webhook"):
        raise AgentError("--verify-webhook-secret needs --verify-webhook PROVIDER")
    if options.get("verify_webhook"):
        definition["verify_webhook"] = {"provider": options["verify_webhook"]}
        if options.get("verify_webhook_secret"):
            definition["verify_webhook"]["secret"] = options["verify_webhook_secret"]
    ua_allow, ua_deny = _split(options.get("ua_filter_allow")), _split(options.get("ua_filter_deny"))
    if ua_allow or ua_deny:
        definition["user_agent_filter"] = {"allow": ua_allow, "deny": ua_deny}
    return definition


def _fetch_policy(url: str) -> str:
    """--traffic-policy-url: the policy text at an http(s) URL. Raises AgentError."""
    if not url.lower().startswith(("http://", "https://")):
        raise AgentError(f"--traffic-policy-url {url!r}: an http:// or https:// URL is required")
    try:
        with urllib.request.urlopen(url, timeout=POLICY_URL_TIMEOUT) as response:  # the scheme is checked above
            body: bytes = response.read(MAX_POLICY_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise AgentError(f"--traffic-policy-url {url}: cannot fetch the policy: {reason}") from None
    if len(body) > MAX_POLICY_BYTES:
        raise AgentError(f"--traffic-policy-url {url}: the policy is larger than {MAX_POLICY_BYTES // 1024} KiB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise AgentError(f"--traffic-policy-url {url}: the policy is not UTF-8 text") from None


def _check_definitions(config: AgentConfig) -> None:
    """`config check`: every tunnel and endpoint of the files is checked as a start would check it
    (policies loaded, then closed). Raises AgentError naming the first bad one."""
    for name in list(config.tunnels) + list(config.endpoints):
        definition = _config_definition(config, name)
        try:
            specs = parse_definition(definition, name=name, public_host=settings.AGENT_PUBLIC_HOST)
        except TunnelConfigError as error:
            raise AgentError(f"tunnel {name!r}: {error}") from None
        for spec in specs:
            if spec.policy is not None:
                spec.policy.close()


def _default_config() -> list[Path]:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = base / "ngrok" / "ngrok.yml"
    return [path] if path.exists() else []


def _requested_tunnels(action: str | None, options: dict[str, Any], config: AgentConfig) -> list[dict[str, Any]]:
    """The definitions to start, each with its name."""
    if action in ("http", "tcp", "tls"):
        definition: dict[str, Any] = {"proto": action, "addr": options["addr"], "name": options["name"]}
        definition.update(_policy_definition(action, options))
        if options.get("url"):
            # A tcp URL is the listen address (remote_addr), unless it names an internal endpoint.
            internal = "internal" in definition.get("bindings", []) or ".internal" in options["url"]
            definition["remote_addr" if action == "tcp" and not internal else "url"] = options["url"]
        if options.get("remote_addr"):
            definition["remote_addr"] = options["remote_addr"]
        if action == "http":
            definition["inspect"] = options["inspect"] == "true"
            if options.get("host_header"):
                definition["host_header"] = options["host_header"]
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
        if name not in config.tunnels and name not in config.endpoints:
            raise AgentError(f'tunnel "{name}" is not defined in the configuration file')
        definitions.append(_config_definition(config, name))
    return definitions


def _config_definition(config: AgentConfig, name: str) -> dict[str, Any]:
    """A named tunnel or endpoint of the config files as a tunnel definition. Raises AgentError."""
    if name in config.tunnels:
        return {**config.tunnels[name], "name": name}
    try:
        return endpoint_definition(config.endpoints[name], name=name, config_file=True)
    except TunnelConfigError as error:
        raise AgentError(f"endpoint {name!r}: {error}") from None


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
