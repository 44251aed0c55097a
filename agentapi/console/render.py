"""The console drawn with rich: a `ConsoleView` in, exactly one screen of styled lines out.

Rules (ngrok 3's console as its screenshots show it, spec section 1e):
- Line 1: the title, and `(Ctrl+C to quit)` at the right edge; line 2: the latest notice, if any.
- The session fields, one per line, the label in a 30-column gutter (16 below 80 columns). A
  Forwarding line too long for the screen breaks after its arrow, and a value longer than a line
  folds onto the next ones rather than being cut: the URL is what people copy.
- Connections: the six headings `ttl opn rt1 rt5 p50 p90` over their values in 8-column cells
  (6 to 7 when narrow); rates and durations with two decimals.
- HTTP Requests, under its ruled heading, newest first, as many as fit the screen height:
  `time method path status client`, each column as wide as its widest shown value. The path gives
  way first (cut with an ellipsis); the client address is dropped when the path would get fewer
  than 20 columns.
- `console_ui_color` (`agent/config/v3.mdx`): `""` means ngrok's default, black (with a light
  foreground so a light-themed terminal stays readable); `transparent` sets none; any other rich
  colour name or `#rrggbb` is used as given. An unknown colour is a `ConsoleColorError`.
Widths are terminal cells (rich's cell_len), so wide characters in a path keep the columns in line.
Lines are built as rich Segments directly, not through Tables: a full 120x50 frame, written, costs
the terminal thread about 1.5 ms (measured; rich Tables took 9 ms), so ten frames a second take
little of the interpreter from the loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rich.cells import cell_len, chop_cells, set_cell_size
from rich.color import Color, ColorParseError
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from .model import ConsoleView, RequestRow, format_time

WIDE_LABEL = 30  # ngrok's label gutter
NARROW_LABEL = 16
WIDE_FROM = 80  # columns from which the wide layout is used
MIN_PATH_WITH_CLIENT = 20
CONNECTION_HEADINGS = ("ttl", "opn", "rt1", "rt5", "p50", "p90")
QUIT_HINT = "(Ctrl+C to quit)"
DEFAULT_BACKGROUND = Style(color="bright_white", bgcolor="black")

_PLAIN = Style()
_TITLE = Style(bold=True, color="cyan")
_NOTICE = Style(color="yellow")
_ONLINE = Style(color="green")
_OFFLINE = Style(color="yellow")
_DIM = Style(dim=True)
_METHOD = Style(bold=True)
_STATUS = {2: Style(color="green"), 3: Style(color="green"), 4: Style(color="yellow"), 5: Style(color="red")}

Line = list[Segment]


class ConsoleColorError(ValueError):
    """`console_ui_color` names no colour rich knows."""


def background_style(color: str) -> Style | None:
    """The screen's style for ngrok's `console_ui_color`: "" black, "transparent" none, else the colour.

    Raises ConsoleColorError naming the value.
    """
    if color == "":
        return DEFAULT_BACKGROUND
    if color == "transparent":
        return None
    try:
        Color.parse(color)
    except ColorParseError:
        raise ConsoleColorError(f"invalid console_ui_color {color!r}: transparent, black or a colour name") from None
    return Style(bgcolor=color)


class ConsoleScreen:
    """A rich renderable: the view on one full screen (the options' width and height), in `style`."""

    def __init__(
        self, view: ConsoleView, *, style: Style | None = DEFAULT_BACKGROUND, tz: dt.tzinfo | None = None
    ) -> None:
        self.view = view
        self.style = style
        self.tz = tz  # None: the process's local zone

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.size
        lines = screen_lines(self.view, width, height, tz=self.tz, unicode=console.encoding.startswith("utf"))
        if self.style is not None:
            lines = [list(Segment.apply_style(line, self.style)) for line in lines]
        lines = Segment.set_shape(lines, width, height, style=self.style)
        for index, line in enumerate(lines):
            yield from line
            if index < height - 1:
                yield Segment.line()


def screen_lines(
    view: ConsoleView, width: int, height: int, *, tz: dt.tzinfo | None = None, unicode: bool = True
) -> list[Line]:
    """The view as at most `height` lines of at most `width` cells (unpadded, unstyled background)."""
    lines = _header(view, width, unicode)[:height]
    room = height - len(lines) - 4  # the gap, the requests' heading, its rule and a gap
    if view.show_requests and room >= 0:
        lines += [[], [Segment("HTTP Requests")], [Segment("-------------")], []]
        lines += _request_lines(view.requests[:room], width, tz, unicode)
    return lines


def _header(view: ConsoleView, width: int, unicode: bool) -> list[Line]:
    gap = width - cell_len(view.title) - cell_len(QUIT_HINT)
    if gap >= 1:
        title = [Segment(view.title, _TITLE), Segment(" " * gap), Segment(QUIT_HINT)]
    else:
        title = [Segment(set_cell_size(view.title, width), _TITLE)]
    lines: list[Line] = [title, [Segment(_fit(view.notice, width, unicode), _NOTICE)] if view.notice else []]
    label = WIDE_LABEL if width >= WIDE_FROM else NARROW_LABEL
    value_width = max(width - label, 1)

    def field(name: str, value: str, style: Style = _PLAIN) -> None:
        for index, chunk in enumerate(chop_cells(value, value_width) or [""]):
            shown = set_cell_size(name if index == 0 else "", label)
            lines.append([Segment(shown), Segment(chunk, style)])

    field("Session Status", view.status, _ONLINE if view.status == "online" else _OFFLINE)
    field("Account", view.account)
    field("Version", view.version)
    field("Region", view.region)
    field("Latency", view.latency or ("\u2014" if unicode else "-"))
    field("Web Interface", view.web_url)
    for forwarding in view.forwarding:
        text = f"{forwarding.public_url} -> {forwarding.addr}"
        if cell_len(text) <= value_width:
            field("Forwarding", text)
        else:  # break at the arrow first, so each address stays whole where it can
            field("Forwarding", f"{forwarding.public_url} ->")
            field("", forwarding.addr)
    lines.append([])
    cell = min(8, max(6, value_width // len(CONNECTION_HEADINGS)))
    c = view.connections
    values = (str(c.ttl), str(c.opn), f"{c.rt1:.2f}", f"{c.rt5:.2f}", f"{c.p50:.2f}", f"{c.p90:.2f}")
    field("Connections", "".join(heading.ljust(cell) for heading in CONNECTION_HEADINGS).rstrip())
    field("", "".join(value.ljust(cell) for value in values).rstrip())
    return lines


def _request_lines(rows: Sequence[RequestRow], width: int, tz: dt.tzinfo | None, unicode: bool) -> list[Line]:
    if not rows:
        return []
    times = [format_time(row.start, tz) for row in rows]
    statuses = [row.status_text for row in rows]
    time_w = max(map(cell_len, times))
    method_w = max(4, *(cell_len(row.method) for row in rows))
    status_w = max(map(cell_len, statuses))
    client_w = max(cell_len(row.remote_addr) for row in rows)
    longest_path = max(cell_len(row.uri) for row in rows)
    fixed = time_w + 1 + method_w + 1 + 1 + status_w
    path_w = min(longest_path, width - fixed - 1 - client_w)
    with_client = client_w > 0 and (path_w >= MIN_PATH_WITH_CLIENT or path_w == longest_path)
    if not with_client:
        path_w = min(longest_path, width - fixed)
    path_w = max(path_w, 1)
    ellipsis = "\u2026" if unicode else "~"
    lines = []
    for row, shown_time, status in zip(rows, times, statuses, strict=True):
        line = [
            Segment(set_cell_size(shown_time, time_w) + " ", _DIM),
            Segment(set_cell_size(row.method, method_w) + " ", _METHOD),
            Segment(_cut(row.uri, path_w, ellipsis) + " "),
            Segment(set_cell_size(status, status_w), _STATUS.get((row.status_code or 0) // 100, _PLAIN)),
        ]
        if with_client:
            line.append(Segment(" " + row.remote_addr, _DIM))
        lines.append(Segment.adjust_line_length(line, width) if _width(line) > width else line)
    return lines


def _cut(text: str, width: int, ellipsis: str) -> str:
    """`text` in exactly `width` cells: padded, or cut with `ellipsis` (one cell) at the end."""
    if cell_len(text) <= width or width < 2:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + ellipsis


def _fit(text: str, width: int, unicode: bool) -> str:
    return _cut(text, width, "\u2026" if unicode else "~").rstrip() if cell_len(text) > width else text


def _width(line: Line) -> int:
    return sum(segment.cell_length for segment in line)
