"""Who may write to the terminal while the console is up: nobody but the console.

What ngrok does (`agent/config/v3.mdx`, `log` and `console_ui`; `agent/changelog.mdx` 3.0.x): its
console takes the whole terminal and its log goes nowhere by default (`log: false`); `log: stdout`
turns the console off (the command line maps that onto `ServeOptions.log_to_stdout`), and a log
file keeps receiving every line. Our rules, the same where ngrok says, and for what it does not:
- A log to a file: untouched, every level, console or not.
- The agent's log bound for the terminal (`--log stderr` on a tty): held (`AgentLog.hold`): info
  and debug lines are dropped, warnings and errors kept and written once the console has closed.
- Python logging handlers that write to a terminal (the command line's warnings-to-stderr handler
  when there is no log): taken off their loggers while the console is up, and put back after.
- Every warning or error logged meanwhile, wherever it also goes, becomes the console's notice line
  (the latest one), so nothing important happens unseen.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from ..logfmt import AgentLog, AgentLogHandler

NOTICE_LEVELS = {logging.WARNING: "warn", logging.ERROR: "error", logging.CRITICAL: "crit"}


class NoticeHandler(logging.Handler):
    """Hands each warning or error to `notice(text)` as one line (`error: <message>`).

    `notice` is called on the thread that logged; it must be thread-safe (the console's posts the
    text to the loop).
    """

    def __init__(self, notice: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._notice = notice

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = NOTICE_LEVELS.get(record.levelno, "error" if record.levelno > logging.ERROR else "warn")
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {record.exc_info[1]!r}"
            self._notice(f"{level}: {message}")
        except Exception:
            self.handleError(record)


def writes_to_terminal(handler: logging.Handler) -> bool:
    """Whether `handler` writes to a terminal: a StreamHandler on a tty, or the agent's log on one."""
    if isinstance(handler, AgentLogHandler):
        return handler.log.to_terminal
    if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            return bool(handler.stream.isatty())
    return False


@contextlib.contextmanager
def console_owns_terminal(log: AgentLog, notice: Callable[[str], None]) -> Iterator[None]:
    """For the duration: hold `log` if it writes to the terminal, take terminal handlers off every
    logger, and route warnings to `notice`. Everything is put back on exit."""
    notice_handler = NoticeHandler(notice)
    removed: list[tuple[logging.Logger, logging.Handler]] = []
    noticed: list[logging.Logger] = []
    loggers = [logging.getLogger(), *_named_loggers()]
    for logger in loggers:
        for handler in list(logger.handlers):
            # The agent's own log handler stays (a held log keeps its warnings for later).
            if writes_to_terminal(handler) and not isinstance(handler, AgentLogHandler):
                logger.removeHandler(handler)
                removed.append((logger, handler))
        keeps_own = bool(logger.handlers or _removed_from(logger, removed)) and not logger.propagate
        if logger is logging.getLogger() or keeps_own:  # where a warning ends its journey
            logger.addHandler(notice_handler)
            noticed.append(logger)
    held = log.to_terminal
    if held:
        log.hold()
    try:
        yield
    finally:
        for logger in noticed:
            logger.removeHandler(notice_handler)
        for logger, handler in removed:
            logger.addHandler(handler)
        if held:
            log.release()


def _removed_from(logger: logging.Logger, removed: list[tuple[logging.Logger, logging.Handler]]) -> bool:
    return any(owner is logger for owner, _ in removed)


def _named_loggers() -> list[logging.Logger]:
    return [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
