"""The terminal driver: bounded frame pacing, the full screen entered and left, typed keys not echoed."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import termios
from collections.abc import Iterator

import pytest

from agentapi.console.model import ConsoleView
from agentapi.console.terminal import FramePacer, TerminalConsole, terminal_size

VIEW = ConsoleView(title="tunnel-agent", version="3.30.0", web_url="http://127.0.0.1:4040")


def test_the_first_frame_is_drawn_at_once() -> None:
    pacer = FramePacer(min_interval=0.1, idle_interval=1.0)
    assert pacer.hold_off(now=5.0) == 0.0 and pacer.idle_wait(now=5.0) == 0.0


def test_no_two_frames_are_closer_than_the_minimum_interval() -> None:
    pacer = FramePacer(min_interval=0.1, idle_interval=1.0)
    pacer.drawn(10.0)
    assert pacer.hold_off(10.03) == pytest.approx(0.07)
    assert pacer.hold_off(10.1) == 0.0
    assert pacer.hold_off(12.0) == 0.0


def test_an_idle_console_still_redraws_every_idle_interval() -> None:
    pacer = FramePacer(min_interval=0.1, idle_interval=1.0)
    pacer.drawn(10.0)
    assert pacer.idle_wait(10.25) == pytest.approx(0.75)
    assert pacer.idle_wait(11.5) == 0.0


@pytest.fixture
def pty() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_the_console_takes_the_alternate_screen_draws_the_view_and_gives_the_screen_back(
    pty: tuple[int, int],
) -> None:
    master, slave = pty
    with open(slave, "w", closefd=False) as terminal:
        console = TerminalConsole(terminal, style=None)
        console.start(VIEW)
        console.close()
    written = read_all(master)
    entered, left = written.index("\x1b[?1049h"), written.rindex("\x1b[?1049l")
    assert entered < written.index("Session Status") < left
    assert console.frames >= 1
    assert written.index("\x1b[?25l") < written.index("Session Status") < written.rindex("\x1b[?25h")  # cursor


def test_typed_keys_are_not_echoed_while_the_console_is_up_and_ctrl_c_still_interrupts(pty: tuple[int, int]) -> None:
    master, slave = pty
    with open(slave, "w", closefd=False) as terminal, open(slave, closefd=False) as stdin:
        before = termios.tcgetattr(slave)
        console = TerminalConsole(terminal, style=None, stdin=stdin)
        console.start(VIEW)
        during = termios.tcgetattr(slave)
        console.close()
        after = termios.tcgetattr(slave)
    assert before[3] & termios.ECHO and not during[3] & termios.ECHO
    assert during[3] & termios.ISIG
    assert after == before
    read_all(master)


def test_a_stdin_that_is_not_a_terminal_is_left_alone(pty: tuple[int, int], tmp_path) -> None:
    master, slave = pty
    with open(slave, "w", closefd=False) as terminal, open(tmp_path / "in", "w+") as stdin:
        console = TerminalConsole(terminal, style=None, stdin=stdin)
        console.start(VIEW)
        console.close()
    read_all(master)


def test_the_size_comes_from_the_terminal_not_from_stale_columns_and_lines(
    pty: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, slave = pty
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 12, 50, 0, 0))  # 12 lines of 50 columns
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    with open(slave, "w", closefd=False) as terminal:
        assert terminal_size(terminal) == (50, 12)
        console = TerminalConsole(terminal, style=None)
        console.start(VIEW)
        console.close()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", read_all(master))  # the escape sequences taken out
    assert re.search(r"tunnel-agent {22}\(Ctrl\+C to quit\)\r\n", shown)
