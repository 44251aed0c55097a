"""The variables a Traffic Policy expression may name, as ngrok documents them, and the ones that
need ngrok's cloud.

Sources: ngrok's docs, `snippets/traffic-policy/variables/{req,res,conn,conn.tls,endpoint,time}.mdx`,
`traffic-policy/variables/{action,ip-intel}.mdx`, `snippets/traffic-policy/variables/conn.geo.mdx`
and `conn.k8s.mdx`. Rules:
- A path is a root (`req`, `res`, `conn`, `endpoint`, `time`, `vars`, `actions`) and the fields
  below it. Below a map of data (`req.headers`, `req.cookies`, `vars`, `actions`...) any key may
  follow; below a plain value nothing may.
- Some names are both a string and an object with fields: `req.url` is the URL and
  `req.url.path` its path; likewise `req.content_type`, `req.user_agent`, `res.content_type`.
- `conn.geo.*`, `conn.client_ip.{geo,as,categories,is_tor_node,is_on_blocklist}` (and the same
  under `conn.server_ip`), `conn.server_region`, `conn.k8s.*` and `identity.*` are answered by
  ngrok's cloud (GeoIP, IP intelligence, its PoPs, Kubernetes operator, OAuth identity): refused.
- Names this agent cannot fill yet (parsed user agents, client certificates, byte counts, JA4)
  are refused too, with the reason, rather than never matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

ROOTS = ("req", "res", "conn", "endpoint", "time", "vars", "actions")


@dataclass(frozen=True, slots=True)
class Refused:
    """A name that cannot be used here, and why (ends the sentence "... is refused: <why>")."""

    reason: str


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


LEAF = _Marker("LEAF")  # a plain value: nothing below it
DATA = _Marker("DATA")  # a map or list of data: any key below it

Node: TypeAlias = "_Marker | Refused | dict[str, Node]"

_CLOUD = "it needs ngrok's cloud"
_GEO = Refused(f"{_CLOUD} (GeoIP data of ngrok's edge)")
_INTEL = Refused(f"{_CLOUD} (ngrok's IP intelligence)")
_IP: dict[str, Node] = {
    "geo": _GEO,
    "as": _INTEL,
    "categories": _INTEL,
    "is_tor_node": _INTEL,
    "is_on_blocklist": _INTEL,
}
_NOT_YET_UA = Refused("this agent does not parse User-Agent strings yet; compare req.user_agent itself")
_NOT_YET_CERT = Refused("this agent does not expose certificate details yet")

_CONTENT_TYPE: dict[str, Node] = {"raw": LEAF, "parameters": DATA}

SCHEMA: dict[str, Node] = {
    "req": {
        "method": LEAF,
        "url": {
            "authority": LEAF,
            "host": LEAF,
            "path": LEAF,
            "port": LEAF,
            "query": LEAF,
            "query_params": DATA,
            "raw": LEAF,
            "raw_path": LEAF,
            "scheme": LEAF,
            "uri": LEAF,
            "user_password": LEAF,
        },
        "headers": DATA,
        "host": LEAF,
        "cookies": DATA,
        "content_type": _CONTENT_TYPE,
        "content_length": LEAF,
        "content_encoding": DATA,
        "trailers": DATA,
        "ts": {"header_received": LEAF, "body_received": LEAF},
        "version": LEAF,
        "location": LEAF,
        "user_agent": {
            name: _NOT_YET_UA
            for name in (
                "name",
                "version",
                "os",
                "os_version",
                "device",
                "is_mobile",
                "is_tablet",
                "is_desktop",
                "is_bot",
                "url",
            )
        },
    },
    "res": {
        "status_code": LEAF,
        "headers": DATA,
        "cookies": DATA,
        "content_type": _CONTENT_TYPE,
        "content_length": LEAF,
        "content_encoding": DATA,
        "location": LEAF,
        "trailers": DATA,
    },
    "conn": {
        "client_ip": _IP,
        "client_port": LEAF,
        "server_ip": _IP,
        "server_port": LEAF,
        "server_region": Refused(f"{_CLOUD} (the ngrok point of presence that took the connection)"),
        "ts": {"start": LEAF},
        "bytes_in": Refused("this agent does not count a connection's bytes for policies yet"),
        "bytes_out": Refused("this agent does not count a connection's bytes for policies yet"),
        "tls": {
            "version": LEAF,
            "cipher_suite": LEAF,
            "sni": LEAF,
            "negotiated_alpn": LEAF,
            "session_resumed": LEAF,
            "ja4_fingerprint": Refused("this agent does not compute JA4 fingerprints"),
            "client": _NOT_YET_CERT,
            "server": _NOT_YET_CERT,
        },
        "geo": _GEO,
        "k8s": Refused(f"{_CLOUD} (pod identity from ngrok's Kubernetes operator)"),
    },
    "endpoint": {"id": LEAF, "url": LEAF, "host": LEAF, "port": LEAF, "protocol": LEAF, "addr": LEAF},
    "time": {"now": LEAF},
    "vars": DATA,
    "actions": DATA,
}

# Roots ngrok has that this agent refuses as a whole.
REFUSED_ROOTS: dict[str, Refused] = {"identity": Refused(f"{_CLOUD} (the identity of an oauth or oidc login)")}


def check_path(path: tuple[str | int, ...]) -> tuple[int, str] | None:
    """None when `path` (a root and its fields) names a variable this agent fills, else the
    index of the first bad segment and why, e.g. (1, "unknown variable req.nope")."""
    node: Node = SCHEMA[str(path[0])]
    for index in range(1, len(path)):
        if node is DATA:
            return None
        shown = show_path(path[: index + 1])
        if isinstance(node, dict):
            segment = path[index]
            child = node.get(segment) if isinstance(segment, str) else None
            if child is None:
                return index, f"unknown variable {shown}"
            if isinstance(child, Refused):
                return index, f"{shown} is refused: {child.reason}"
            node = child
            continue
        return index, f"unknown variable {shown}: {show_path(path[:index])} has no fields"
    return None


def show_path(path: tuple[str | int, ...]) -> str:
    """A path as it is written in CEL: `req.headers['x-id'][0]`."""
    text = str(path[0])
    for segment in path[1:]:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif segment.isidentifier():
            text += f".{segment}"
        else:
            text += f"[{segment!r}]"
    return text
