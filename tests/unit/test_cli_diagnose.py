"""`diagnose`: each local check passes and fails on the real thing (sockets, directories, an injected
clock), and the report says so."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import pytest

from agentapi import serve
from agentapi.cli import diagnose
from agentapi.cli.diagnose import Check

NOW = dt.datetime(2026, 8, 1, 12, 0, tzinfo=dt.UTC)


def test_a_listening_local_service_passes_and_a_closed_port_fails() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        [ok] = diagnose.check_upstreams([{"name": "web", "proto": "http", "addr": str(port)}])
    assert ok == Check("upstream web", True, f"localhost:{port} accepts connections (127.0.0.1)")
    [closed] = diagnose.check_upstreams([{"name": "web", "proto": "http", "addr": str(port)}])
    assert (closed.ok, closed.detail.startswith(f"localhost:{port} does not answer: 127.0.0.1: ")) == (False, True)


def test_a_file_server_directory_must_exist(tmp_path: Path) -> None:
    [ok, missing] = diagnose.check_upstreams(
        [
            {"name": "site", "proto": "http", "addr": f"file://{tmp_path}"},
            {"name": "gone", "proto": "http", "addr": f"file://{tmp_path}/nope"},
        ]
    )
    assert (ok.ok, missing) == (True, Check("upstream gone", False, f"{tmp_path}/nope is not a directory"))


def test_a_bad_address_is_a_failed_check_not_a_crash() -> None:
    [bad] = diagnose.check_upstreams([{"name": "x", "proto": "tcp", "addr": "localhost"}])
    assert (bad.ok, bad.detail) == (False, "invalid address 'localhost': host:port expected")


def test_the_web_address_is_bindable_unless_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        refused = diagnose.check_web_address(serve.bind_web, addr)
    assert not refused.ok and "bind: address already in use" in refused.detail
    assert diagnose.check_web_address(serve.bind_web, "127.0.0.1:0").ok


def test_the_database_check_reports_the_probes_error() -> None:
    def broken() -> str:
        raise OSError("unable to open database file")

    assert diagnose.check_database(broken) == Check("database", False, "cannot write: unable to open database file")
    assert diagnose.check_database(lambda: "SQLite /d/agent.sqlite3").ok


@pytest.mark.django_db
def test_the_database_probe_writes_and_leaves_nothing_behind() -> None:
    from django.db import connection

    assert diagnose.database_probe().startswith(connection.vendor.replace("sqlite", "SQLite"))
    assert "agent_diagnose_probe" not in connection.introspection.table_names()


def test_the_clock_must_be_past_the_floor_and_not_behind_the_database(tmp_path: Path) -> None:
    database = tmp_path / "agent.sqlite3"
    database.write_text("")
    os.utime(database, (NOW.timestamp(), NOW.timestamp()))
    assert diagnose.check_clock(NOW, database).ok
    assert diagnose.check_clock(NOW - dt.timedelta(minutes=4), database).ok
    behind = diagnose.check_clock(NOW - dt.timedelta(hours=1), database)
    assert (behind.ok, "changed at 2026-08-01T12:00:00+00:00" in behind.detail) == (False, True)
    assert not diagnose.check_clock(dt.datetime(2001, 1, 1, tzinfo=dt.UTC), None).ok


def test_localhost_resolves_to_loopback_here() -> None:
    [local] = diagnose.check_localhost(ipv6=False)
    assert local.ok, local.detail


def test_the_report_and_summary_say_which_checks_failed() -> None:
    checks = [Check("clock", True, "fine"), Check("upstream web", False, "localhost:1 does not answer")]
    report = json.loads(diagnose.report_json(checks, agent_version="3.30.0", now=NOW))
    assert report == {
        "ok": False,
        "agent_version": "3.30.0",
        "time": "2026-08-01T12:00:00+00:00",
        "checks": [
            {"name": "clock", "ok": True, "detail": "fine"},
            {"name": "upstream web", "ok": False, "detail": "localhost:1 does not answer"},
        ],
    }
    assert diagnose.summary_lines(checks)[-1] == "Problems found: upstream web"
    assert diagnose.summary_lines(checks[:1])[-1] == "Successfully diagnosed"
