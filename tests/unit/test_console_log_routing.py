"""While the console is up nothing else writes to the terminal; warnings become its notice line."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from agentapi.console.log_routing import NoticeHandler, console_owns_terminal
from agentapi.logfmt import AgentLog, AgentLogHandler, open_log_target


@pytest.fixture
def tty() -> Iterator[tuple[int, TextIO]]:
    """A terminal to write to (a pty's slave) and the fd its output can be read from."""
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    yield master, stream
    stream.close()
    os.close(master)


def read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 65536).decode().replace("\r\n", "\n")
    except BlockingIOError:
        return ""


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("agentapi.test_console_routing")
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers, logger.propagate, logger.level = saved[0], saved[1], saved[2]


def test_a_warnings_to_stderr_handler_is_taken_off_while_the_console_is_up_and_put_back_after(
    tty: tuple[int, TextIO], logger: logging.Logger
) -> None:
    master, terminal = tty
    handler = logging.StreamHandler(terminal)
    logger.addHandler(handler)
    notices: list[str] = []
    with console_owns_terminal(AgentLog(None), notices.append):
        assert handler not in logger.handlers
        logger.warning("capture queue full: %d captures dropped so far", 1)
    assert notices == ["warn: capture queue full: 1 captures dropped so far"]
    assert read_all(master) == ""
    assert logger.handlers == [handler]


def test_the_agents_log_on_the_terminal_keeps_warnings_for_after_and_drops_the_rest(
    tty: tuple[int, TextIO], logger: logging.Logger
) -> None:
    master, terminal = tty
    log = AgentLog(terminal)
    logger.addHandler(AgentLogHandler(log))
    notices: list[str] = []
    with console_owns_terminal(log, notices.append):
        log.line("info", "started tunnel", obj="tunnels")
        logger.error("storing captures failed", exc_info=RuntimeError("disk full"))
        assert read_all(master) == ""
    written = read_all(master)
    assert "started tunnel" not in written
    assert 'lvl=eror msg="storing captures failed" obj=agentapi.test_console_routing' in written
    assert notices == ["error: storing captures failed: RuntimeError('disk full')"]
    log.line("info", "agent stopped", obj="app")
    assert "agent stopped" in read_all(master)


def test_a_log_file_gets_every_line_while_the_console_is_up(tmp_path: Path, logger: logging.Logger) -> None:
    log = open_log_target(str(tmp_path / "agent.log"), "logfmt")
    logger.addHandler(AgentLogHandler(log))
    notices: list[str] = []
    with console_owns_terminal(log, notices.append):
        log.line("info", "started tunnel", obj="tunnels")
        logger.warning("upstream slow")
    log.close()
    lines = (tmp_path / "agent.log").read_text().splitlines()
    assert [line.split(" msg=")[1].split(" ")[0] for line in lines] == ['"started', '"upstream']
    assert notices == ["warn: upstream slow"]


def test_handlers_that_write_elsewhere_stay(tmp_path: Path, logger: logging.Logger) -> None:
    file_handler = logging.FileHandler(tmp_path / "x.log")
    logger.addHandler(file_handler)
    with console_owns_terminal(AgentLog(None), lambda text: None):
        assert file_handler in logger.handlers
    file_handler.close()


def test_a_warning_of_a_logger_without_handlers_reaches_the_notice_through_the_root() -> None:
    notices: list[str] = []
    with console_owns_terminal(AgentLog(None), notices.append):
        logging.getLogger("some.library").warning("deprecated call")
    assert notices == ["warn: deprecated call"]


def test_info_records_never_become_a_notice(logger: logging.Logger) -> None:
    notices: list[str] = []
    logger.addHandler(NoticeHandler(notices.append))
    logger.info("agent ready")
    logger.critical("out of file descriptors")
    assert notices == ["crit: out of file descriptors"]
