"""`config upgrade`: a config file's YAML document moved to a newer version, as ngrok's command does.

Rules (`agent/upgrade-v2-v3.mdx`, `agent/config/v3.mdx` "Breaking changes" and "Migrating from
v2", `agent/changelog.mdx` 3.0.1 and 3.16.0):
- A file without `version` is version 1 (ngrok 2's). Upgrading from it adds `version: "2"` and
  `region: us` when the file had no region ("since that was previously the default").
- Legacy tunnel option names become their new ones whatever the versions: `auth: "u:p"` ->
  `basic_auth: ["u:p"]`; `bind_tls: true|false|both` -> `schemes: [https] | [http] | [https, http]`.
- To version 3: every agent setting (every top-level key but `version`, `tunnels`, `endpoints`)
  moves under `agent:` (merged with an `agent:` already there), `server_addr` becomes
  `connect_url` and `root_cas` becomes `connect_cas`. `tunnels:` stay as they are: v3 still reads
  them (deprecated, `agent/config/v3.mdx` "Tunnels (deprecated)") and not every tunnel option has
  an endpoint form (both schemes, request headers), so nothing is lost. A tunnel with `labels`
  is refused: v3 has no labeled tunnels.
- A version lower than the file's is refused ("Attempting to downgrade will result in an error").
The result is a new mapping (the input is not changed); keys keep their order, `version` first.
Comments do not survive (PyYAML); the command keeps the original file as a backup.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

LATEST = 3
_SECTIONS = ("version", "agent", "tunnels", "endpoints")
V3_RENAMES = {"server_addr": "connect_url", "root_cas": "connect_cas"}


class UpgradeError(ValueError):
    """A document that cannot be upgraded (a downgrade, a labeled tunnel, a bad shape)."""


@dataclass(frozen=True)
class Upgraded:
    """The upgraded document, its versions, and one line per change made (for the operator)."""

    document: dict[str, Any]
    from_version: int
    to_version: int
    changes: tuple[str, ...]


def document_version(document: dict[str, Any]) -> int:
    """The file's version: 1 when absent. Raises UpgradeError for anything but 1, 2 or 3."""
    raw = document.get("version")
    if raw is None:
        return 1
    text = str(raw).strip().strip('"')
    if text not in ("1", "2", "3"):
        raise UpgradeError(f"unsupported config version {raw!r}")
    return int(text)


def upgrade(document: dict[str, Any], to_version: int = LATEST) -> Upgraded:
    """`document` upgraded to `to_version` (2 or 3). Raises UpgradeError."""
    if not isinstance(document, dict):
        raise UpgradeError("the configuration must be a YAML mapping")
    if to_version not in (2, 3):
        raise UpgradeError(f"cannot upgrade to version {to_version}: 2 or 3")
    from_version = document_version(document)
    if to_version < from_version:
        raise UpgradeError(f"cannot downgrade a version {from_version} file to version {to_version}")
    result = copy.deepcopy(document)
    changes: list[str] = []
    if from_version == 1:
        result["version"] = "2"
        changes.append('added version: "2"')
        if "region" not in result:
            result["region"] = "us"
            changes.append("added region: us (ngrok 2's default)")
    changes += _rename_tunnel_options(result)
    if to_version == 3 and from_version < 3:
        changes += _to_v3(result)
    return Upgraded(_ordered(result), from_version, to_version, tuple(changes))


def _rename_tunnel_options(document: dict[str, Any]) -> list[str]:
    tunnels = document.get("tunnels") or {}
    if not isinstance(tunnels, dict):
        raise UpgradeError("tunnels must be a mapping of name to definition")
    changes = []
    for name, tunnel in tunnels.items():
        if not isinstance(tunnel, dict):
            raise UpgradeError(f"tunnel {name!r} must be a mapping")
        if "auth" in tunnel:
            auth = tunnel.pop("auth")
            tunnel["basic_auth"] = auth if isinstance(auth, list) else [auth]
            changes.append(f"tunnel {name}: auth -> basic_auth")
        if "bind_tls" in tunnel:
            bind_tls = tunnel.pop("bind_tls")
            tunnel["schemes"] = _schemes(name, bind_tls)
            changes.append(f"tunnel {name}: bind_tls -> schemes")
    return changes


def _schemes(name: str, bind_tls: Any) -> list[str]:
    if bind_tls in (True, "true"):
        return ["https"]
    if bind_tls in (False, "false"):
        return ["http"]
    if bind_tls == "both":
        return ["https", "http"]
    raise UpgradeError(f'tunnel {name!r}: invalid bind_tls {bind_tls!r}: true, false or "both"')


def _to_v3(document: dict[str, Any]) -> list[str]:
    for name, tunnel in (document.get("tunnels") or {}).items():
        if "labels" in tunnel:
            raise UpgradeError(f"tunnel {name!r} has labels: version 3 has no labeled tunnels (remove it first)")
    agent = document.get("agent") or {}
    if not isinstance(agent, dict):
        raise UpgradeError("agent must be a mapping")
    changes = []
    moved = [key for key in document if key not in _SECTIONS]
    for key in moved:
        value = document.pop(key)
        new_key = V3_RENAMES.get(key, key)
        if new_key in agent:
            raise UpgradeError(f"{key} is given at the top level and under agent: keep one")
        agent[new_key] = value
        changes.append(f"{key} -> agent.{new_key}" if new_key != key else f"{key} -> agent.{key}")
    for old, new in V3_RENAMES.items():
        if old in agent:
            if new in agent:
                raise UpgradeError(f"agent has both {old} and {new}: keep {new}")
            agent[new] = agent.pop(old)
            changes.append(f"agent.{old} -> agent.{new}")
    document["agent"] = agent
    document["version"] = "3"
    changes.append('version: "3"')
    return changes


def _ordered(document: dict[str, Any]) -> dict[str, Any]:
    """version, agent, the rest as they were, endpoints, tunnels (ngrok's examples' order)."""
    head = {key: document[key] for key in ("version", "agent") if key in document}
    rest = {key: value for key, value in document.items() if key not in _SECTIONS}
    tail = {key: document[key] for key in ("endpoints", "tunnels") if key in document}
    return {**head, **rest, **tail}
