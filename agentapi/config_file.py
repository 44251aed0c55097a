"""ngrok's YAML configuration file (versions 2 and 3), read into an AgentConfig.

Version 2 keeps agent settings at the top level; version 3 keeps them under `agent:` (top level is
accepted too). `tunnels:` is a map name -> definition; v3 `endpoints:` is a list of endpoint
definitions with a `name`. Cloud-only settings (authtoken, region, api_key, ...) are accepted and
ignored with a log line; keys nobody knows are refused, as ngrok does.

Traffic Policy (`agent/config/v3.mdx`): an endpoint (or tunnel) gives `traffic_policy` inline, as
an object or YAML/JSON text, or `traffic_policy_file`: the path of a YAML or JSON file, read here
(relative paths from the config file's directory: ours) into `traffic_policy` as its text, so a
missing file fails `config check` and start-up with its path named. Both at once are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOCAL_KEYS = frozenset({"web_addr", "web_allow_hosts", "inspect_db_size", "log", "log_level", "log_format"})
CLOUD_KEYS = frozenset(
    {
        "authtoken",
        "api_key",
        "region",
        "server_addr",
        "connect_timeout",
        "connect_interface",
        "heartbeat_interval",
        "heartbeat_tolerance",
        "root_cas",
        "proxy_url",
        "update",
        "update_channel",
        "update_check",
        "console_ui",
        "console_ui_color",
        "metadata",
        "dns_resolver_ips",
        "crl_noverify",
        "remote_management",
        "web_addr_tls",
        "ca_pool",
        "session_id",
        "web_basic_auth",
    }
)


class ConfigFileError(ValueError):
    pass


@dataclass
class AgentConfig:
    web_addr: str | None = None
    web_allow_hosts: list[str] = field(default_factory=list)
    inspect_db_size: int | None = None
    log: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    tunnels: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def load_config(paths: list[Path]) -> AgentConfig:
    """Read and merge the files in order (later files win, like repeated `--config`)."""
    config = AgentConfig()
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigFileError(f"config file {path} does not exist (create it, or leave out --config)") from None
        except OSError as error:
            raise ConfigFileError(f"cannot read config file {path}: {error.strerror or error}") from None
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigFileError(f"invalid YAML in {path}: {error}") from None
        if not isinstance(document, dict):
            raise ConfigFileError(f"{path}: the configuration must be a YAML mapping")
        _merge(config, document, path)
    return config


def _merge(config: AgentConfig, document: dict[str, Any], path: Path) -> None:
    version = str(document.get("version", "2"))
    if version not in ("1", "2", "3"):
        raise ConfigFileError(f"{path}: unsupported config version {version!r}")
    settings = dict(document)
    agent = settings.pop("agent", None)
    if agent is not None:
        if not isinstance(agent, dict):
            raise ConfigFileError(f"{path}: agent must be a mapping")
        settings.update(agent)
    for key, value in settings.items():
        if key in ("version", "tunnels", "endpoints"):
            continue
        if key in CLOUD_KEYS:
            config.ignored.append(key)
        elif key in LOCAL_KEYS:
            _set_local(config, key, value, path)
        else:
            raise ConfigFileError(f"{path}: unknown configuration key {key!r}")
    tunnels = document.get("tunnels") or {}
    if not isinstance(tunnels, dict):
        raise ConfigFileError(f"{path}: tunnels must be a mapping of name to definition")
    for name, definition in tunnels.items():
        if not isinstance(definition, dict):
            raise ConfigFileError(f"{path}: tunnel {name!r} must be a mapping")
        config.tunnels[str(name)] = _with_policy_file(definition, path, f"tunnel {name!r}")
    endpoints = document.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise ConfigFileError(f"{path}: endpoints must be a list")
    for endpoint in endpoints:
        if not isinstance(endpoint, dict) or not endpoint.get("name"):
            raise ConfigFileError(f"{path}: every endpoint needs a name")
        config.endpoints[str(endpoint["name"])] = _with_policy_file(endpoint, path, f"endpoint {endpoint['name']!r}")


def _with_policy_file(definition: dict[str, Any], path: Path, what: str) -> dict[str, Any]:
    """The definition with `traffic_policy_file` read into `traffic_policy` (the file's text)."""
    if definition.get("traffic_policy_file") is None:
        return {key: value for key, value in definition.items() if key != "traffic_policy_file"}
    policy_path = definition["traffic_policy_file"]
    if not isinstance(policy_path, str) or not policy_path:
        raise ConfigFileError(f"{path}: {what}: traffic_policy_file must be a file path")
    if definition.get("traffic_policy") not in (None, ""):
        raise ConfigFileError(f"{path}: {what}: give traffic_policy or traffic_policy_file, not both")
    text = read_policy_file(path.parent / Path(policy_path).expanduser(), f"{path}: {what}: traffic_policy_file")
    rest = {key: value for key, value in definition.items() if key != "traffic_policy_file"}
    return {**rest, "traffic_policy": text}


def read_policy_file(path: Path, what: str) -> str:
    """A Traffic Policy file's text (YAML or JSON, UTF-8); ConfigFileError naming `what` and the path."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{what}: {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{what}: {path} is not UTF-8 text") from None
    except OSError as error:
        raise ConfigFileError(f"{what}: cannot read {path}: {error.strerror or error}") from None


def _set_local(config: AgentConfig, key: str, value: Any, path: Path) -> None:
    if key == "web_addr":
        if value is False or value == "false":
            raise ConfigFileError(f"{path}: web_addr: false is not supported; the agent API is always served")
        config.web_addr = str(value)
    elif key == "web_allow_hosts":
        if not isinstance(value, list):
            raise ConfigFileError(f"{path}: web_allow_hosts must be a list")
        config.web_allow_hosts = [str(v) for v in value]
    elif key == "inspect_db_size":
        if not isinstance(value, int) or isinstance(value, bool) or value < -1:
            raise ConfigFileError(f"{path}: inspect_db_size must be bytes, 0 (default) or -1 (off)")
        config.inspect_db_size = value
    else:
        setattr(config, key, str(value))
