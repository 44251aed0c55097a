"""ngrok's YAML configuration file (versions 2 and 3), read into an AgentConfig.

Version 2 keeps agent settings at the top level; version 3 keeps them under `agent:` (top level is
accepted too). `tunnels:` is a map name -> definition; v3 `endpoints:` is a list of endpoint
definitions with a `name`. Keys nobody knows are refused, as ngrok does; every key ngrok 3.39
documents is known (`agent/config/v3.mdx`, `agent/config/v2.mdx`, `agent/changelog.mdx`):

| key                                   | here                                                      |
|---------------------------------------|-----------------------------------------------------------|
| `web_addr`                            | the API and inspector address (`false` is refused: pyngrok |
|                                       | and npm `ngrok` need the API)                              |
| `web_allow_hosts`                     | Host allow list of the API and inspector                   |
| `inspect_db_size`                     | capture store bound in bytes; 0 the default, -1 off        |
| `local_storage` (3.32)                | `false` turns the local inspector's storage off: no        |
|                                       | captures, as `inspect_db_size: -1`                         |
| `log`, `log_level`, `log_format`      | log target (stdout, stderr, false or a file), level, format|
| `console_ui`, `console_ui_color`      | the terminal console: true, false, iftty; its background   |
| `workers` (ours, not ngrok's)         | engine processes sharing each tunnel's port, 1 to 64; as   |
|                                       | `--workers` (docs/workers.md), which wins over it          |
| cloud session keys (CLOUD_KEYS):      | accepted and named in one log line ("ignoring cloud-only   |
| `authtoken`, `api_key`, `connect_url`,| settings"): they configure the session with ngrok's cloud, |
| `connect_cas`, `crl_url`, ...         | which this agent never opens                               |

Values are checked: a level or format ngrok does not have, a `console_ui` other than true, false
or iftty, a non-boolean `local_storage` is refused naming the key and the file.

An endpoint's `agent_tls_termination` certificate and key paths are read from the config file's
directory when relative (ours, as for `traffic_policy_file`).

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

from .logfmt import LOG_FORMATS

LOCAL_KEYS = frozenset(
    {
        "web_addr",
        "web_allow_hosts",
        "inspect_db_size",
        "local_storage",
        "log",
        "log_level",
        "log_format",
        "console_ui",
        "console_ui_color",
        "workers",
    }
)
CLOUD_KEYS = frozenset(
    {
        "authtoken",
        "api_key",
        "region",
        "server_addr",  # v2 name of connect_url
        "connect_url",
        "connect_timeout",
        "connect_interface",
        "heartbeat_interval",
        "heartbeat_tolerance",
        "root_cas",  # v2 name of connect_cas
        "connect_cas",
        "proxy_url",
        "update",
        "update_channel",
        "update_check",
        "metadata",
        "dns_resolver_ips",
        "crl_noverify",
        "crl_url",  # 3.39.7
        "remote_management",
        "web_addr_tls",
        "ca_pool",
        "session_id",
        "web_basic_auth",
    }
)
LOG_LEVELS = ("debug", "info", "warn", "error", "crit")
CONSOLE_UI = ("true", "false", "iftty")


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
    console_ui: str | None = None  # "true", "false" or "iftty"
    console_ui_color: str | None = None
    local_storage: bool | None = None  # False: no captures (inspect_db_size -1)
    workers: int | None = None  # ours: engine processes (docs/workers.md); --workers wins
    tunnels: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    @property
    def capture_db_size(self) -> int:
        """The capture store bound as ServeOptions takes it: -1 off, 0 the default, else bytes."""
        if self.local_storage is False:
            return -1
        return self.inspect_db_size if self.inspect_db_size is not None else 0


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
        what = f"endpoint {endpoint['name']!r}"
        config.endpoints[str(endpoint["name"])] = _with_tls_paths(_with_policy_file(endpoint, path, what), path)


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


def _with_tls_paths(endpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    """`agent_tls_termination`'s certificate and key paths taken from the config file's directory
    when relative (PEM text, and anything that is not a string, is left for the endpoint checks)."""
    termination = endpoint.get("agent_tls_termination")
    if not isinstance(termination, dict):
        return endpoint
    resolved = dict(termination)
    for key in ("server_certificate", "server_private_key"):
        value = termination.get(key)
        if isinstance(value, str) and value.strip() and not value.lstrip().startswith("-----BEGIN "):
            resolved[key] = str(path.parent / Path(value).expanduser())
    return {**endpoint, "agent_tls_termination": resolved}


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
    elif key == "workers":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
            raise ConfigFileError(f"{path}: workers must be a whole number from 1 to 64")
        config.workers = value
    elif key == "local_storage":
        if not isinstance(value, bool):
            raise ConfigFileError(f"{path}: local_storage must be true or false")
        config.local_storage = value
    elif key == "log":
        config.log = "false" if value is False else _text(key, value, path)
    elif key == "console_ui":
        shown = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
        config.console_ui = _one_of(key, shown, CONSOLE_UI, path)
    elif key == "log_level":
        config.log_level = _one_of(key, value, LOG_LEVELS, path)
    elif key == "log_format":
        config.log_format = _one_of(key, value, LOG_FORMATS, path)
    else:  # console_ui_color
        config.console_ui_color = _text(key, value, path)


def _text(key: str, value: Any, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigFileError(f"{path}: {key} must be a string")
    return value


def _one_of(key: str, value: Any, allowed: tuple[str, ...], path: Path) -> str:
    if value not in allowed:
        raise ConfigFileError(f"{path}: invalid {key} {value!r}: one of {', '.join(allowed)}")
    return str(value)
