"""The live terminal console: ngrok 3's full-screen view of the running agent (spec section 1e).

When it is shown (`agent/config/v3.mdx`, `console_ui`): "true" always, "false" never, "iftty" (the
default) when stdout is a terminal; never when the log goes to stdout (`--log stdout`, which is how
pyngrok and npm `ngrok` run the agent: they read log lines, not a screen). docs/console.md shows it.

The parts, each in its module:
- model.py: the view model (what is shown), fed on the loop, frozen views out; no rich, no Django.
- render.py: a view drawn as one screen of rich segments at a given size.
- terminal.py: the thread that owns the terminal (full screen, bounded redraws, no echo).
- feed.py: live captures from the channel layer and the runtime's tunnels, on the loop.
- log_routing.py: while the console is up, nothing else writes to the terminal.
`AgentConsole` puts them together for agentapi/serve.py. Rich is imported only when a console is
started, so a run without one (pyngrok's) does not pay for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from ..logfmt import AgentLog
from .feed import CaptureSubscribe, ChannelLayer, ConsoleFeed
from .log_routing import console_owns_terminal
from .model import ConsoleModel, TunnelLike

if TYPE_CHECKING:
    from .terminal import TerminalConsole

CONSOLE_UI_VALUES = ("true", "false", "iftty")
PUBLISH_INTERVAL = 0.1  # seconds: changes within it reach the terminal as one view

__all__ = ["CONSOLE_UI_VALUES", "AgentConsole", "ConsoleSettingError", "console_wanted"]


class ConsoleSettingError(ValueError):
    """`console_ui` or `console_ui_color` has a value ngrok does not accept; the message says which."""


def console_wanted(console_ui: str, *, stdout_is_terminal: bool, log_to_stdout: bool) -> bool:
    """Whether to show the console, by ngrok's rules (see the module's docstring).

    `console_ui` is "true", "false" or "iftty" (any case). Raises ConsoleSettingError otherwise.
    """
    value = str(console_ui).strip().lower()
    if value not in CONSOLE_UI_VALUES:
        raise ConsoleSettingError(f"invalid console_ui {console_ui!r}: true, false or iftty expected")
    if value == "false" or log_to_stdout:
        return False
    return value == "true" or stdout_is_terminal


class AgentConsole:
    """The console of one agent: `await start()` once the tunnels run, `await close()` on the way out.

    `tunnels` is the runtime's `tunnels` method; `subscribe` its in-process capture hook if it has
    one, else captures come from `layer`, the channel layer (both None: no live list).
    Raises ConsoleSettingError from `start` for an unknown `color` (ngrok's console_ui_color).
    """

    def __init__(
        self,
        tunnels: Callable[[], Awaitable[Sequence[TunnelLike]]],
        layer: ChannelLayer | None,
        log: AgentLog,
        *,
        version: str,
        web_url: str,
        region: str = "",
        color: str = "",
        subscribe: CaptureSubscribe | None = None,
        file: TextIO | None = None,
        stdin: TextIO | None = None,
    ) -> None:
        self.model = ConsoleModel(version=version, web_url=web_url, region=region)
        self._tunnels = tunnels
        self._layer = layer
        self._log = log
        self._color = color
        self._subscribe = subscribe
        self._file = file if file is not None else sys.stdout
        self._stdin = stdin if stdin is not None else sys.stdin
        self._terminal: TerminalConsole | None = None
        self._feed: ConsoleFeed | None = None
        self._routing: contextlib.ExitStack | None = None
        self._publish_pending: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        from .render import ConsoleColorError, background_style
        from .terminal import TerminalConsole

        try:
            style = background_style(self._color)
        except ConsoleColorError as error:
            raise ConsoleSettingError(str(error)) from None
        loop = asyncio.get_running_loop()
        terminal = TerminalConsole(self._file, style=style, stdin=self._stdin)
        feed = ConsoleFeed(self.model, self._tunnels, self._layer, self._redraw, subscribe=self._subscribe)
        await feed.start()

        def notice(text: str) -> None:  # from any thread: the model lives on the loop
            loop.call_soon_threadsafe(self._notice, text)

        self._routing = contextlib.ExitStack()
        self._routing.enter_context(console_owns_terminal(self._log, notice))
        terminal.start(self.model.view())
        self._terminal, self._feed = terminal, feed
        with contextlib.suppress(ValueError, RuntimeError, AttributeError):  # no SIGWINCH (Windows)
            loop.add_signal_handler(signal.SIGWINCH, terminal.wake)

    async def close(self) -> None:
        """Leave the full screen, stop the feed, give the terminal back to the log (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._publish_pending is not None:
            self._publish_pending.cancel()
            self._publish_pending = None
        if self._terminal is not None:
            with contextlib.suppress(ValueError, RuntimeError, AttributeError):
                loop.remove_signal_handler(signal.SIGWINCH)
            # Joined off the loop: a terminal that stopped reading must not stall the shutdown.
            await asyncio.to_thread(self._terminal.close)
            self._terminal = None
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        if self._routing is not None:
            self._routing.close()
            self._routing = None

    def _redraw(self) -> None:
        # Coalesced: however many capture batches arrive, the view is built at most once per
        # PUBLISH_INTERVAL (sorting the rows is the model's one cost that grows with traffic).
        if self._terminal is None or self._publish_pending is not None:
            return
        self._publish_pending = asyncio.get_running_loop().call_later(PUBLISH_INTERVAL, self._publish)

    def _publish(self) -> None:
        self._publish_pending = None
        if self._terminal is not None:
            self._terminal.show(self.model.view())

    def _notice(self, text: str) -> None:
        self.model.set_notice(text)
        self._redraw()
