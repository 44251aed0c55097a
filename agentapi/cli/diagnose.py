"""`diagnose [-6] [-w FILE]`: can this agent run here? A local take on ngrok's `diagnose`.

ngrok's (`agent/diagnose.mdx`) tests the way to ngrok's cloud and "exits 0 if connectivity is OK,
otherwise 1", with `--write-report` JSON. This agent has no cloud, so the checks are what it needs:
- `localhost`: the name resolves to a loopback address (ngrok checks this too, 3.x changelog), as
  every `agent http 8080` dials it; with `-6`, ::1 too.
- `web address`: the API and inspector address (`--web-addr`, the config's `web_addr`, else
  127.0.0.1:4040 or one of the next ports, as a start would pick) can be bound.
- `database`: a table can be made and a row written in a transaction that is then rolled back.
- `upstream NAME`: each tunnel and endpoint of the config files: its local service accepts a TCP
  connection (within CONNECT_TIMEOUT), or its `file://` directory exists and can be read.
- `clock`: the wall clock is after CLOCK_FLOOR, and not behind the database file's last change by
  more than CLOCK_SLACK (a clock that went back makes capture times lie).
`--region` is ngrok's cloud region: accepted and reported as not applicable.
Each check is a `Check(name, ok, detail)`; the report (`report_json`) is
`{"ok", "agent_version", "time", "checks": [{"name", "ok", "detail"}]}`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.db import connection, transaction

from agentapi.engine.tunnel_spec import TunnelConfigError, normalise_addr, upstream_of

CONNECT_TIMEOUT = 3.0  # seconds for one upstream connection
CLOCK_FLOOR = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # older than this agent: the clock is wrong
CLOCK_SLACK = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Check:
    """One diagnosis: what was checked, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str


def check_localhost(*, ipv6: bool) -> list[Check]:
    """`localhost` resolves to loopback addresses (and to ::1 when `ipv6`)."""
    try:
        infos = socket.getaddrinfo("localhost", None, proto=socket.IPPROTO_TCP)
    except OSError as error:
        return [Check("localhost", False, f"localhost does not resolve: {error}")]
    addresses = sorted({str(info[4][0]) for info in infos})
    loopback = all(ipaddress.ip_address(a.partition("%")[0]).is_loopback for a in addresses)
    checks = [Check("localhost", loopback, f"localhost is {', '.join(addresses)}")]
    if ipv6:
        checks.append(
            Check("localhost (IPv6)", "::1" in addresses, "::1 " + ("found" if "::1" in addresses else "missing"))
        )
    return checks


def check_web_address(bind: Callable[[str | None], socket.socket], web_addr: str | None) -> Check:
    """The web address can be bound (`bind` is serve.bind_web: it raises serve.StartupError)."""
    try:
        sock = bind(web_addr)
    except Exception as error:  # StartupError with Go's wording, or a bad address
        return Check("web address", False, str(error))
    host, port = sock.getsockname()[:2]
    sock.close()
    asked = web_addr or "the default"
    return Check("web address", True, f"{asked}: {host}:{port} can be bound")


def database_probe() -> str:
    """Make a table and write a row in the agent's database, then roll back. Returns where it wrote.

    Raises the database's error (a file that cannot be opened or written, a server that refuses).
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE agent_diagnose_probe (x integer)")
            cursor.execute("INSERT INTO agent_diagnose_probe (x) VALUES (1)")
        transaction.set_rollback(True)
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite {settings_dict['NAME']}"
    return f"{connection.vendor} {settings_dict.get('NAME')} on {settings_dict.get('HOST') or 'localhost'}"


def check_database(probe: Callable[[], str]) -> Check:
    """`probe` writes and rolls back; it returns what it wrote to, or raises."""
    try:
        where = probe()
    except Exception as error:  # any database error: the message is what the operator needs
        return Check("database", False, f"cannot write: {error}")
    return Check("database", True, f"{where} is writable")


def check_upstreams(definitions: Iterable[dict[str, Any]]) -> list[Check]:
    """One check per tunnel definition: its local service answers a TCP connection."""
    return [_check_upstream(definition) for definition in definitions]


def _check_upstream(definition: dict[str, Any]) -> Check:
    name = f"upstream {definition.get('name')}"
    proto = str(definition.get("proto") or "http")
    addr = definition.get("addr")
    if isinstance(addr, str) and addr.lower().startswith("file://"):
        return _check_directory(name, addr)
    try:
        upstream = upstream_of(proto, normalise_addr(proto, addr))
    except TunnelConfigError as error:
        return Check(name, False, str(error))
    # The agent dials both loopbacks for localhost (upstream_dial.py): either answering will do.
    hosts = ["127.0.0.1", "::1"] if upstream.host == "localhost" else [upstream.host]
    failures = []
    for host in hosts:
        try:
            socket.create_connection((host, upstream.port), timeout=CONNECT_TIMEOUT).close()
        except OSError as error:
            failures.append(f"{host}: {error.strerror or error}")
            continue
        return Check(name, True, f"{upstream.netloc} accepts connections ({host})")
    return Check(name, False, f"{upstream.netloc} does not answer: {'; '.join(failures)}")


def _check_directory(name: str, addr: str) -> Check:
    path = Path(unquote(urlsplit(addr).path) or "/")
    if not path.is_dir():
        return Check(name, False, f"{path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        return Check(name, False, f"{path} cannot be read")
    return Check(name, True, f"{path} can be served")


def check_clock(now: dt.datetime, database_file: Path | None) -> Check:
    """The wall clock is past CLOCK_FLOOR and not behind the database file's last change."""
    if now < CLOCK_FLOOR:
        return Check("clock", False, f"the clock says {now.isoformat()}: before {CLOCK_FLOOR.date()}")
    if database_file is not None and database_file.exists():
        changed = dt.datetime.fromtimestamp(database_file.stat().st_mtime, dt.UTC)
        if changed - now > CLOCK_SLACK:
            return Check(
                "clock",
                False,
                f"the clock says {now.isoformat()}, but {database_file.name} changed at {changed.isoformat()}",
            )
    return Check("clock", True, now.isoformat(timespec="seconds"))


def report_json(checks: list[Check], *, agent_version: str, now: dt.datetime) -> str:
    """The --write-report document (see the banner), as JSON text."""
    document = {
        "ok": all(check.ok for check in checks),
        "agent_version": agent_version,
        "time": now.isoformat(),
        "checks": [asdict(check) for check in checks],
    }
    return json.dumps(document, indent=2) + "\n"


def summary_lines(checks: list[Check]) -> list[str]:
    """The human report: one line per check, then the verdict."""
    width = max((len(check.name) for check in checks), default=0)
    lines = [f"  {check.name:<{width}}  {'OK' if check.ok else 'FAIL'}  {check.detail}" for check in checks]
    failed = [check.name for check in checks if not check.ok]
    lines.append("Successfully diagnosed" if not failed else f"Problems found: {', '.join(failed)}")
    return lines
