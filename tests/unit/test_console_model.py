"""The console's view model: rows from capture announcements, the Connections row, when to show it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agentapi.console import ConsoleSettingError, console_wanted
from agentapi.console.model import Connections, ConsoleModel, format_time, reason_phrase

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass
class Tunnel:
    name: str
    public_url: str = "https://127.0.0.1:40001"
    addr: str = "http://localhost:8080"
    proto: str = "https"
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)


def summary(id: str, *, tunnel: str = "web", start: float = START, status: int | None = 200, **more: Any) -> dict:
    return {
        "id": id,
        "tunnel_name": tunnel,
        "start": start,
        "duration_ns": 1000,
        "method": more.pop("method", "GET"),
        "uri": more.pop("uri", "/"),
        "status_code": status,
        "remote_addr": more.pop("remote_addr", "127.0.0.1"),
        **more,
    }


def stored(created: Sequence[dict] = (), updated: Sequence[dict] = ()) -> dict:
    return {"type": "captures.stored", "created": list(created), "updated": list(updated), "evicted": []}


def model_with(*tunnels: Tunnel, max_requests: int = 500) -> ConsoleModel:
    model = ConsoleModel(version="3.30.0", web_url="http://127.0.0.1:4040", max_requests=max_requests)
    model.set_tunnels(list(tunnels) or [Tunnel("web")])
    return model


def test_a_started_exchange_shows_as_a_pending_row_that_its_update_completes() -> None:
    model = model_with()
    assert model.apply(stored(created=[summary("airt_1", status=None, method="POST", uri="/hook")]))
    [row] = model.view().requests
    assert (row.method, row.uri, row.status_code, row.status_text) == ("POST", "/hook", None, "")

    assert model.apply(stored(updated=[summary("airt_1", status=201, method="POST", uri="/hook")]))
    [row] = model.view().requests
    assert row.status_text == "201 Created"


def test_rows_are_listed_newest_first_whatever_order_they_are_announced_in() -> None:
    model = model_with()
    model.apply(stored(created=[summary("airt_b", start=START + 2), summary("airt_a", start=START + 1)]))
    model.apply(stored(created=[summary("airt_c", start=START + 3), summary("airt_0", start=START)]))
    assert [row.id for row in model.view().requests] == ["airt_c", "airt_b", "airt_a", "airt_0"]


def test_rows_started_in_the_same_millisecond_keep_their_id_order_newest_first() -> None:
    model = model_with()
    model.apply(stored(created=[summary("airt_2"), summary("airt_1"), summary("airt_3")]))
    assert [row.id for row in model.view().requests] == ["airt_3", "airt_2", "airt_1"]


def test_captures_of_tunnels_this_agent_never_ran_are_not_listed() -> None:
    # Agents sharing a Redis channel layer hear each other's announcements.
    model = model_with(Tunnel("web"))
    assert not model.apply(stored(created=[summary("airt_other", tunnel="someone-elses")]))
    assert model.view().requests == ()


def test_a_stopped_tunnels_late_captures_still_count() -> None:
    model = model_with(Tunnel("web"))
    model.set_tunnels([])
    assert model.apply(stored(updated=[summary("airt_1", tunnel="web")]))


def test_beyond_the_limit_the_oldest_rows_go() -> None:
    model = model_with(max_requests=3)
    model.apply(stored(created=[summary(f"airt_{i}", start=START + i) for i in range(5)]))
    assert [row.id for row in model.view().requests] == ["airt_4", "airt_3", "airt_2"]


def test_evictions_and_clearing_in_the_inspector_leave_the_console_rows() -> None:
    model = model_with()
    model.apply(stored(created=[summary("airt_1")]))
    assert not model.apply({"type": "captures.cleared"})
    assert not model.apply({"type": "captures.stored", "created": [], "updated": [], "evicted": ["airt_1"]})
    assert [row.id for row in model.view().requests] == ["airt_1"]


def test_the_view_is_the_same_object_until_something_changes() -> None:
    model = model_with()
    first, changes = model.view(), model.changes
    model.set_tunnels([Tunnel("web")])  # the same tunnels again
    model.apply(stored(created=[]))
    assert model.view() is first and model.changes == changes
    model.set_notice("warn: capture queue full")
    assert model.view() is not first and model.view().notice == "warn: capture queue full"


def test_a_notice_is_one_line() -> None:
    model = model_with()
    model.set_notice("error: storing captures failed:\n  disk full")
    assert model.view().notice == "error: storing captures failed: disk full"


def test_forwarding_lines_follow_the_running_tunnels_in_order() -> None:
    model = model_with(Tunnel("a", public_url="https://a"), Tunnel("b", public_url="tcp://b:1", proto="tcp"))
    assert [(f.public_url, f.addr) for f in model.view().forwarding] == [
        ("https://a", "http://localhost:8080"),
        ("tcp://b:1", "http://localhost:8080"),
    ]


def test_the_requests_list_is_shown_only_with_an_http_tunnel() -> None:
    assert not model_with(Tunnel("db", proto="tcp")).view().show_requests
    assert model_with(Tunnel("web", proto="http")).view().show_requests


def test_connections_add_counts_and_rates_and_weigh_percentiles_by_connections() -> None:
    def conns(count: int, gauge: int, rate1: float, rate5: float, p50_s: float, p90_s: float) -> dict:
        ns = 1_000_000_000
        return {
            "conns": {
                "count": count,
                "gauge": gauge,
                "rate1": rate1,
                "rate5": rate5,
                "p50": p50_s * ns,
                "p90": p90_s * ns,
            }
        }

    model = model_with(
        Tunnel("a", metrics=conns(3, 1, 0.05, 0.01, 2.0, 4.0)), Tunnel("b", metrics=conns(1, 0, 0.5, 0.1, 6.0, 8.0))
    )
    c = model.view().connections
    assert (c.ttl, c.opn) == (4, 1)
    assert c.rt1 == pytest.approx(0.55) and c.rt5 == pytest.approx(0.11)
    assert c.p50 == pytest.approx(3.0) and c.p90 == pytest.approx(5.0)


def test_a_tunnel_without_connections_yet_shows_zeroes() -> None:
    assert model_with(Tunnel("web", metrics={})).view().connections == Connections()


def test_times_show_milliseconds_and_the_zone_abbreviation() -> None:
    assert format_time(START + 0.2549, dt.UTC) == "00:00:00.254 UTC"
    assert format_time(START + 3.5, ZoneInfo("Europe/Paris")) == "01:00:03.500 CET"
    assert format_time(START, ZoneInfo("Asia/Kathmandu")) == "05:45:00.000 +0545"


def test_a_status_without_a_standard_reason_is_shown_alone() -> None:
    assert reason_phrase(404) == "Not Found"
    model = model_with()
    model.apply(stored(created=[summary("airt_1", status=499)]))
    assert model.view().requests[0].status_text == "499"


@pytest.mark.parametrize(
    ("console_ui", "terminal", "log_to_stdout", "shown"),
    [
        ("iftty", True, False, True),
        ("iftty", False, False, False),  # piped or redirected: log lines only
        ("true", False, False, True),
        ("TRUE", False, False, True),
        ("false", True, False, False),
        ("true", True, True, False),  # --log stdout: pyngrok and npm ngrok read lines, not a screen
        ("iftty", True, True, False),
    ],
)
def test_the_console_is_shown_by_ngroks_console_ui_rules(
    console_ui: str, terminal: bool, log_to_stdout: bool, shown: bool
) -> None:
    assert console_wanted(console_ui, stdout_is_terminal=terminal, log_to_stdout=log_to_stdout) is shown


def test_an_unknown_console_ui_value_is_refused_naming_it() -> None:
    with pytest.raises(ConsoleSettingError, match=r"invalid console_ui 'sometimes': true, false or iftty expected"):
        console_wanted("sometimes", stdout_is_terminal=True, log_to_stdout=False)
