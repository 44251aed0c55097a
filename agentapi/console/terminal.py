"""The terminal driver: draws the console full-screen from its own thread, never from the event loop.

Rules:
- The terminal is written only by this thread. A terminal that stops reading (a paused `ssh`, an
  XOFF, a suspended tmux client) blocks this thread's write and nothing else: the proxy and the API
  on the loop never wait on the screen.
- The loop hands over frozen `ConsoleView` values (`show`), which costs one attribute store and
  one Event.set; the thread draws the newest one and drops the ones it never got to.
- Redraws are bounded: at most one per `min_interval` (0.1 s, ten a second), however fast views
  or resizes come, and one every `idle_interval` (1 s) when nothing changed, which also follows a
  resize when no SIGWINCH reached us.
- Full screen as ngrok's console (rich's Live in screen mode: the alternate screen, cursor hidden);
  the size is read from the terminal on every frame (an ioctl on the file drawn to, never the
  COLUMNS/LINES variables, which go stale at the first resize), so the layout follows the window.
  Typed keys are not echoed while the console is up (termios ECHO off, ISIG kept, so Ctrl-C still
  sends SIGINT); `close` leaves the alternate screen and restores the terminal's modes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.style import Style

from .model import ConsoleView
from .render import ConsoleScreen

MIN_INTERVAL = 0.1  # seconds between two frames at most ten a second
IDLE_INTERVAL = 1.0  # a frame at least this often


class FramePacer:
    """When the next frame may be drawn: never sooner than `min_interval` after the last one, and
    no later than `idle_interval` after it when nothing asks. Times are the `clock`'s seconds."""

    def __init__(self, min_interval: float, idle_interval: float) -> None:
        self.min_interval = min_interval
        self.idle_interval = idle_interval
        self._last: float | None = None

    def drawn(self, now: float) -> None:
        """A frame was drawn at `now`."""
        self._last = now

    def idle_wait(self, now: float) -> float:
        """Seconds to wait for a reason to draw before drawing anyway (>= 0)."""
        return 0.0 if self._last is None else max(0.0, self._last + self.idle_interval - now)

    def hold_off(self, now: float) -> float:
        """Seconds to wait, once asked to draw, before the frame is allowed (>= 0)."""
        return 0.0 if self._last is None else max(0.0, self._last + self.min_interval - now)


class TerminalConsole:
    """Draws `ConsoleView`s on `file` (a terminal) from a daemon thread.

    `start()` and `close()` are called on the loop; `show(view)` and `wake()` from anywhere.
    """

    def __init__(
        self,
        file: TextIO,
        *,
        style: Style | None,
        stdin: TextIO | None = None,
        tz: dt.tzinfo | None = None,
        min_interval: float = MIN_INTERVAL,
        idle_interval: float = IDLE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._file = file
        self._console = Console(file=file, force_terminal=True)
        self._stdin = stdin
        self._style = style
        self._tz = tz
        self._min_interval = min_interval
        self._idle_interval = idle_interval
        self._clock = clock
        self._view: ConsoleView | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_modes: list[int | list[bytes | int]] | None = None
        self.frames = 0  # frames drawn (tests read it)

    def start(self, view: ConsoleView) -> None:
        """Enter the full-screen console showing `view`."""
        self._view = view
        self._saved_modes = _echo_off(self._stdin)
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)
        self._thread.start()

    def show(self, view: ConsoleView) -> None:
        """Draw `view` at the next frame (the newest view wins)."""
        self._view = view
        self._wake.set()

    def wake(self) -> None:
        """Redraw soon with the current view (the window was resized)."""
        self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        """Leave the full screen and restore the terminal. Waits at most `timeout` seconds for the
        thread: a terminal that no longer reads must not hold up the agent's shutdown."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        _restore(self._stdin, self._saved_modes)
        self._saved_modes = None

    def _measure(self) -> None:
        # Asked of the terminal on every frame, never of COLUMNS/LINES (which rich would prefer): an
        # exported value goes stale at the first resize.
        size = terminal_size(self._file)
        if size is not None:
            self._console.size = size

    def _run(self) -> None:
        live = Live(
            console=self._console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        pacer = FramePacer(self._min_interval, self._idle_interval)
        with live:
            while True:  # the first frame is always drawn, even when close() came at once
                view = self._view
                if view is not None:
                    self._measure()
                    live.update(ConsoleScreen(view, style=self._style, tz=self._tz), refresh=True)
                    self.frames += 1
                pacer.drawn(self._clock())
                self._wake.wait(pacer.idle_wait(self._clock()))
                self._wake.clear()
                # However often views or resizes come, no two frames closer than min_interval.
                if self._stopping.is_set() or self._stopping.wait(pacer.hold_off(self._clock())):
                    break


def terminal_size(file: TextIO) -> tuple[int, int] | None:
    """(columns, lines) of the terminal `file` writes to, from the terminal itself; None if not one."""
    try:
        size = os.get_terminal_size(file.fileno())
    except (AttributeError, ValueError, OSError):
        return None
    return (size.columns, size.lines) if size.columns > 0 and size.lines > 0 else None


def _echo_off(stdin: TextIO | None) -> list[int | list[bytes | int]] | None:
    """Turn off echo of typed keys on a terminal stdin; the modes to restore, or None."""
    try:
        import termios
    except ImportError:  # not a POSIX terminal
        return None
    if stdin is None or not stdin.isatty():
        return None
    fd = stdin.fileno()
    with contextlib.suppress(termios.error):
        saved = termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
        quiet[3] = int(quiet[3]) & ~termios.ECHO  # lflags: no echo; ISIG stays, Ctrl-C still interrupts
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        return saved
    return None


def _restore(stdin: TextIO | None, saved: list[int | list[bytes | int]] | None) -> None:
    if stdin is None or saved is None:
        return
    import termios

    with contextlib.suppress(termios.error, ValueError, OSError):
        termios.tcsetattr(stdin.fileno(), termios.TCSANOW, saved)
