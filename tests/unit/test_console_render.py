"""The console drawn at fixed sizes: what a terminal of 80, 120 and 60 columns shows, cell for cell."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.style import Style

from agentapi.console.model import Connections, ConsoleView, Forwarding, RequestRow
from agentapi.console.render import DEFAULT_BACKGROUND, ConsoleColorError, ConsoleScreen, background_style

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def row(
    i: int, *, uri: str = "/", method: str = "GET", status: int | None = 200, addr: str = "127.0.0.1"
) -> RequestRow:
    return RequestRow(f"airt_{i:03d}", "web", START + i * 0.125, method, uri, status, addr)


def view(*rows: RequestRow, forwarding: tuple[Forwarding, ...] | None = None, notice: str = "") -> ConsoleView:
    return ConsoleView(
        title="tunnel-agent",
        version="3.30.0",
        web_url="http://127.0.0.1:4040",
        forwarding=forwarding
        if forwarding is not None
        else (Forwarding("https://127.0.0.1:40123", "http://localhost:8080"),),
        connections=Connections(ttl=3, opn=1, rt1=0.05, rt5=0.01, p50=5.01, p90=7.0),
        show_requests=True,
        requests=tuple(sorted(rows, key=lambda r: r.start, reverse=True)),
        notice=notice,
    )


def screen(
    shown: ConsoleView, width: int, height: int, *, encoding: str = "utf-8", style: Style | None = None
) -> list[str]:
    file = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    console = Console(file=file, record=True, width=width, height=height, force_terminal=True, color_system="truecolor")
    console.print(ConsoleScreen(shown, style=style, tz=dt.UTC), end="")
    return console.export_text(styles=False).split("\n")


def test_an_80_column_terminal_shows_ngroks_layout() -> None:
    shown = view(row(1, uri="/favicon.ico", status=404), row(2, method="POST", uri="/hooks/github", status=201))
    lines = [line.rstrip() for line in screen(shown, 80, 24)]
    assert lines == [
        "tunnel-agent                                                    (Ctrl+C to quit)",
        "",
        "Session Status                online",
        "Account                       local",
        "Version                       3.30.0",
        "Region                        local",
        "Latency                       \u2014",
        "Web Interface                 http://127.0.0.1:4040",
        "Forwarding                    https://127.0.0.1:40123 -> http://localhost:8080",
        "",
        "Connections                   ttl     opn     rt1     rt5     p50     p90",
        "                              3       1       0.05    0.01    5.01    7.00",
        "",
        "HTTP Requests",
        "-------------",
        "",
        "00:00:00.250 UTC POST /hooks/github 201 Created   127.0.0.1",
        "00:00:00.125 UTC GET  /favicon.ico  404 Not Found 127.0.0.1",
        "",
        "",
        "",
        "",
        "",
        "",
    ]


def test_every_line_fills_the_screen_exactly_at_any_size() -> None:
    shown = view(*(row(i, uri="/p/" + "x" * i) for i in range(60)))
    for width, height in ((80, 24), (120, 40), (60, 20), (40, 12)):
        lines = screen(shown, width, height)
        assert len(lines) == height
        assert {cell_len(line) for line in lines} == {width}


def test_the_requests_list_takes_the_rows_left_below_the_header_newest_first() -> None:
    shown = view(*(row(i, uri=f"/item/{i}") for i in range(40)))
    lines = screen(shown, 80, 24)
    listed = [line.split()[3] for line in lines[16:]]
    assert listed == [f"/item/{i}" for i in range(39, 31, -1)]  # 24 - 16 header lines = 8 rows


def test_at_120_columns_a_long_path_is_shown_whole_with_the_client_address() -> None:
    path = "/api/v1/organizations/acme/projects/website/deployments?page=2"
    lines = screen(view(row(1, uri=path, status=502, addr="203.0.113.7")), 120, 24)
    assert lines[16].rstrip() == f"00:00:00.125 UTC GET  {path} 502 Bad Gateway 203.0.113.7"


def test_at_80_columns_a_long_path_is_cut_with_an_ellipsis_and_the_status_stays_in_view() -> None:
    path = "/api/v1/organizations/acme/projects/website/deployments?status=failed&limit=50"
    line = screen(view(row(1, uri=path, status=502, addr="203.0.113.7")), 80, 24)[16]
    assert line.rstrip().endswith("\u2026 502 Bad Gateway 203.0.113.7")
    assert line.startswith("00:00:00.125 UTC GET  /api/v1/organizations/")


def test_at_60_columns_the_gutter_narrows_forwarding_breaks_after_its_arrow_and_the_client_goes() -> None:
    path = "/api/v1/organizations/acme/projects?page=2"
    lines = [line.rstrip() for line in screen(view(row(1, uri=path, status=404)), 60, 22)]
    assert lines[:14] == [
        "tunnel-agent                                (Ctrl+C to quit)",
        "",
        "Session Status  online",
        "Account         local",
        "Version         3.30.0",
        "Region          local",
        "Latency         \u2014",
        "Web Interface   http://127.0.0.1:4040",
        "Forwarding      https://127.0.0.1:40123 ->",
        "                http://localhost:8080",
        "",
        "Connections     ttl    opn    rt1    rt5    p50    p90",
        "                3      1      0.05   0.01   5.01   7.00",
        "",
    ]
    # With the client the path would get 14 columns (< 20): the client goes, the path gets 24.
    assert lines[17] == "00:00:00.125 UTC GET  /api/v1/organizations/a\u2026 404 Not Found"


def test_wide_characters_in_a_path_keep_the_status_column_aligned() -> None:
    lines = screen(view(row(1, uri="/caf\u00e9"), row(2, uri="/\u65e5\u672c\u8a9e/\u30da\u30fc\u30b8")), 80, 24)
    first, second = lines[16], lines[17]
    assert cell_len(first[: first.index("200 OK")]) == cell_len(second[: second.index("200 OK")])


def test_a_pending_exchange_shows_no_status_yet() -> None:
    line = screen(view(row(1, uri="/slow", status=None)), 80, 24)[16]
    assert line.rstrip() == "00:00:00.125 UTC GET  /slow  127.0.0.1"


def test_the_latest_notice_is_shown_under_the_title() -> None:
    lines = screen(view(notice="warn: capture queue full: 1 captures dropped so far"), 80, 24)
    assert lines[1].rstrip() == "warn: capture queue full: 1 captures dropped so far"


def test_a_screen_too_short_for_the_header_shows_no_requests_heading() -> None:
    lines = [line.rstrip() for line in screen(view(row(1)), 80, 8)]
    assert len(lines) == 8 and "HTTP Requests" not in lines


def test_a_terminal_that_cannot_show_unicode_gets_ascii_marks() -> None:
    lines = screen(view(row(1, uri="/" + "y" * 100)), 80, 24, encoding="latin-1")
    assert lines[6].rstrip() == "Latency                       -"
    assert "~ 200 OK" in lines[16]


def test_without_an_http_tunnel_there_is_no_requests_list() -> None:
    shown = ConsoleView(
        title="tunnel-agent",
        version="3.30.0",
        web_url="http://127.0.0.1:4040",
        forwarding=(Forwarding("tcp://127.0.0.1:5432", "localhost:5432"),),
    )
    assert "HTTP Requests" not in "\n".join(screen(shown, 80, 24))


def test_ngroks_default_background_is_black_on_every_cell() -> None:
    file = io.StringIO()
    console = Console(file=file, width=40, height=5, force_terminal=True, color_system="truecolor")
    segments = list(console.render(ConsoleScreen(view(), style=DEFAULT_BACKGROUND, tz=dt.UTC)))
    painted = [s for s in segments if s.text and s.text != "\n"]
    assert painted and all(s.style is not None and s.style.bgcolor is not None for s in painted)
    assert {s.style.bgcolor.name for s in painted if s.style and s.style.bgcolor} == {"black"}


@pytest.mark.parametrize(
    ("color", "expected"),
    [
        ("", DEFAULT_BACKGROUND),
        ("transparent", None),
        ("blue", Style(bgcolor="blue")),
        ("#202020", Style(bgcolor="#202020")),
    ],
)
def test_console_ui_color_sets_the_background_as_ngrok_does(color: str, expected: Style | None) -> None:
    assert background_style(color) == expected


def test_an_unknown_console_ui_color_is_refused_naming_it() -> None:
    with pytest.raises(ConsoleColorError, match=r"invalid console_ui_color 'blurple'"):
        background_style("blurple")
