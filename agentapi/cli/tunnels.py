"""Which tunnel definitions a command starts: `http|tcp|tls ADDR [flags]`, or `start NAME... | --all`.

Config-file tunnels (`tunnels:`) are taken as written; endpoints (`endpoints:`) go through
definitions.endpoint_definition (`config_file=True`), as the API's endpoints do. `config check`
checks each of them as a start would (tunnel_spec.parse_definition, policies loaded then closed).
The default config file is ngrok's: `$XDG_CONFIG_HOME/ngrok/ngrok.yml` (`~/.config/ngrok/ngrok.yml`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from agentapi.config_file import AgentConfig
from agentapi.definitions import endpoint_definition
from agentapi.engine.tunnel_spec import parse_definition
from agentapi.runtime import TunnelConfigError

from .errors import AgentError
from .flags import flags_definition


@dataclass
class Requested:
    """The definitions to start (each with its name) and the lines the operator should read."""

    definitions: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # cloud session flags given on the command line


def default_config_path() -> Path:
    """ngrok's default config file on Linux (XDG), whether or not it exists."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "ngrok" / "ngrok.yml"


def default_config() -> list[Path]:
    """The default config file when it exists, else none (the agent runs without one)."""
    path = default_config_path()
    return [path] if path.exists() else []


def requested_tunnels(action: str | None, options: dict[str, Any], config: AgentConfig) -> Requested:
    """The tunnels `action` asks for. Raises AgentError (a refused flag, an unknown name)."""
    if action in ("http", "tcp", "tls"):
        built = flags_definition(action, options["addr"], options)
        return Requested([built.definition], built.notices, built.ignored)
    if action != "start":
        return Requested()
    names = list(options.get("names") or [])
    if options.get("all"):
        names = list(config.tunnels) + list(config.endpoints)
    definitions = []
    for name in names:
        if name not in config.tunnels and name not in config.endpoints:
            raise AgentError(f'tunnel "{name}" is not defined in the configuration file')
        definitions.append(config_definition(config, name))
    return Requested(definitions)


def config_definition(config: AgentConfig, name: str) -> dict[str, Any]:
    """A named tunnel or endpoint of the config files as a tunnel definition. Raises AgentError."""
    if name in config.tunnels:
        return {**config.tunnels[name], "name": name}
    try:
        return endpoint_definition(config.endpoints[name], name=name, config_file=True)
    except TunnelConfigError as error:
        raise AgentError(f"endpoint {name!r}: {error}") from None


def check_definitions(config: AgentConfig) -> None:
    """Every tunnel and endpoint of the files checked as a start would check it (policies loaded,
    then closed). Raises AgentError naming the first bad one."""
    for name in list(config.tunnels) + list(config.endpoints):
        definition = config_definition(config, name)
        try:
            specs = parse_definition(definition, name=name, public_host=settings.AGENT_PUBLIC_HOST)
        except TunnelConfigError as error:
            raise AgentError(f"tunnel {name!r}: {error}") from None
        for spec in specs:
            if spec.policy is not None:
                spec.policy.close()
